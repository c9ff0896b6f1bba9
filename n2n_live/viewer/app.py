"""The viewer: its state, its actions and the frame loop. One UI frame = input -> camera -> one live frame ->
textures -> panels -> draw.

    main thread: GLFW window, OpenGL, ImGui and every Mitsuba call (LiveLoop.step renders on the caller's thread)
    trainer thread (inside LiveLoop): trains on the newest pair; the display only reads its published weights

The display never waits for training: `LiveLoop.step` submits the pair without blocking and denoises with the
latest weights (stepping.py). Elsewhere: keyboard and mouse controls.py; the render size size_policy.py; the images
a mode shows and their textures images.py; the panels panels.py; opening the window, Ctrl-C and the shutdown
within 2 s of the last frame lifecycle.py.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import OpenGL.GL as gl
from imgui_bundle import imgui

from ..live import oidn
from ..live.config import default_preset_name
from ..errors import UserError
from ..numbers import fmt
from . import stepping
from .budget import share_cores
from .controls import Controls
from .fly_camera import FlyCamera
from .gl_display import ImageDisplay
from .history import FrameHistory, RateMeter
from .images import FrameImages
from .keyframes import KeyframeRecorder
from .lifecycle import Lifetime
from .messages import Messages
from . import modes
from .modes import MODES, SOURCES, parse_split
from .panels import Overlay, SidePanel
from .reference import StillStreams
from .screenshot import take_screenshots
from .size_policy import FIXED, SizePolicy
from .window import Window

# UI frames that render no live frame (pacing, typing, after an error) are drawn when input arrives (at most 60 per
# second), when a paced trainer becomes ready, and else 5 times a second to refresh the statistics: a UI frame costs
# CPU (software OpenGL draws on the CPU), which an idle window redrawn 60 times a second would take from training.
MIN_FRAME_S = 1.0 / 60.0
IDLE_FRAME_S = 0.2
IDLE_POLL_S = 0.01  # how often an idle viewer checks for input and for a paced trainer's readiness


class Viewer:
    """The viewer's state and actions; panels read it and call its methods (see panels.py)."""

    def __init__(self, loop, cfg, args, window: Window):
        self.loop, self.cfg, self.args, self.window = loop, cfg, args, window
        self.display = ImageDisplay()
        self.messages = Messages()
        self.history = FrameHistory(args.stats_jsonl)
        self.steps_rate = RateMeter()  # training steps per second (Statistics panel)
        self.reference = StillStreams()  # still camera: the accumulating streams and their disjoint reference
        self.recorder = KeyframeRecorder(frames_per_loop=240)

        # display
        self.mode = args.mode
        self.split_left, self.split_right = parse_split(args.split)
        self.split_pos = 0.5
        self.exposure_ev = math.log2(float(cfg.exposure))
        self.heat_gain = 4.0
        self.smooth = True
        self.image_rect = (0.0, 0.0, 1.0, 1.0)  # where the image is drawn, window pixels (x, y from top, w, h)
        self.image_area = (0.0, 0.0, 1.0, 1.0)  # the window left of the panel
        self.images = FrameImages(self.display, self.attempt)
        self.controls = Controls()

        # camera
        self.fly = FlyCamera(self._scene_start())
        self.playing = not args.still
        self.path_source = "scene"  # or "recorded"
        self.path_frame = 0.0
        if args.keyframes:
            self.recorder = KeyframeRecorder.load(args.keyframes)  # a bad file is a UserError: one line, exit 2
            self.path_source, self.playing = "recorded", True
        self.camera = self.fly.camera()

        # render size: auto (the preset's target frame rate) unless --size or --render-scale sets it
        self.preset = args.preset or default_preset_name()
        self.preset_auto = not args.preset  # chosen by the machine (CUDA or not)
        self.sizing = SizePolicy(self.preset, (cfg.width, cfg.height), pinned=args.size is not None,
                                 scale=args.render_scale)

        # frame state
        self.result = None
        self.result_id = 0
        self.frames = 0  # UI frames
        self.rendered = 0  # live frames rendered
        self.rendering = True  # False after a failed frame, until the user retries
        self.pace = args.pace  # render a new frame only when the trainer is idle
        self.waiting_for_training = False
        self.psnr_ref = (None, None)  # progressive-reference PSNR of the input and of the denoised image
        self.screenshot_requests: list[Path | None] = []
        self.quit = False
        self.interrupted = False  # Ctrl-C: leave the loop, then exit like the other commands (130)
        self.frame_ms = None  # interval between the last two live frames
        self.last_render_t = None
        self.ui_ms = None  # duration of the last UI frame
        self._last_ui_t = time.perf_counter()

        self.panel = SidePanel()
        self.overlay = Overlay()
        self.messages.info(f"{self.preset} preset{' (torch sees no CUDA GPU)' if self.preset_auto and self.preset == 'cpu' else ''}"
                           f", render size {self.sizing.label()}")
        if not self.loop.trainer.running and not cfg.sync:
            self.messages.warn("the trainer thread is not running")
        if args.pause_training:
            self.loop.trainer.pause()
        if set(modes.OIDN_SOURCES) & {self.split_left, self.split_right} and not oidn.available():
            self.messages.warn("OIDN is not installed (pip install pyoidn): the split view shows the reference instead")
            self.split_left, self.split_right = (("reference" if s in modes.OIDN_SOURCES else s)
                                                 for s in (self.split_left, self.split_right))

    # ------------------------------------------------------------------------------------------ actions
    @property
    def exposure(self) -> float:
        return 2.0 ** self.exposure_ev

    def _scene_start(self):
        loaded = self.loop.loaded
        try:
            return loaded.path.at(0)
        except Exception:
            return loaded.start

    def active_path(self):
        return self.recorder.path() if self.path_source == "recorded" else self.loop.loaded.path

    def set_mode(self, mode: str) -> None:
        if mode in MODES:
            self.mode = mode

    def toggle_training(self) -> None:
        tr = self.loop.trainer
        tr.resume() if tr.paused else tr.pause()
        self.messages.info("training paused" if tr.paused else "training resumed")

    def toggle_playing(self) -> None:
        if not self.playing:
            try:
                self.active_path()
            except UserError as e:
                self.messages.error(str(e))
                return
        self.playing = not self.playing

    def reset_view(self) -> None:
        """Back to the start of the active path (the scene's fly-through unless a recorded path is selected)."""
        self.playing = False
        self.path_frame = 0.0
        try:
            cam = self.active_path().at(0)
        except UserError:
            cam = self._scene_start()
        self.fly.reset(cam)

    def add_keyframe(self) -> None:
        self.recorder.add(self.camera)
        self.messages.info(f"keyframe {len(self.recorder)} added")

    def request_screenshot(self, path=None) -> None:
        self.screenshot_requests.append(Path(path) if path else None)

    def attempt(self, what: str, fn, *a, **kw):
        """Run a user action; an error shows in the UI (never a crash). Returns fn's result or None."""
        try:
            return fn(*a, **kw)
        except (UserError, ValueError, OSError, RuntimeError) as e:
            self.messages.error(f"{what}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            return None

    def load_scene(self, spec: str) -> None:
        spec = spec.strip()
        if not spec:
            self.messages.error("scene: type a bundled scene name or the path of a Mitsuba XML file")
            return
        ok = self.attempt(f"scene {spec!r}", lambda: (self.loop.set_scene(spec), True)[1])
        if ok:
            self.path_source = "scene"
            self.reset_view()
            self.playing = True
            self.reference.reset()
            self.sizing.hold()  # the new scene's first frame compiles its kernels
            self.rendering = True
            self.messages.info(f"scene {spec!r} loaded")

    def set_render_size(self, w: int, h: int) -> None:
        """Render at (w, h) from the next live frame (the still camera's streams start over)."""
        w, h = max(8, int(w)), max(8, int(h))
        if (w, h) == self.sizing.size:
            return
        if self.attempt("resize", lambda: (self.loop.resize(w, h), True)[1]):
            self.sizing.applied((w, h))
            self.reference.reset()

    def pin_size(self, w: int | None = None, h: int | None = None) -> None:
        """Stop the automatic sizes and render at (w, h) (default: the current size)."""
        self.sizing.choose(FIXED)
        if w is not None and h is not None:
            self.set_render_size(w, h)

    def set_spp(self, spp: int) -> None:
        """Samples per pixel of each noisy image (the reference starts over: its samples had another count)."""
        self.attempt("spp", self.loop.set_spp, int(spp))
        self.reference.reset()

    def retry_rendering(self) -> None:
        self.rendering = True

    # ------------------------------------------------------------------------------------------ frame
    def run(self) -> None:
        """UI frames until the window closes, Esc, Ctrl-C, or --exit-after-frames live frames were rendered."""
        limit = self.args.exit_after_frames or 0
        final_shot = self.args.screenshot
        while not self.quit:
            self.window.poll()
            if self.window.should_close():
                break
            # rendering stopped after an error: count UI frames instead, so that a scripted run still ends
            done = limit > 0 and (self.rendered >= limit or (not self.rendering and self.frames >= limit))
            if done:
                if final_shot:  # one more UI frame, without rendering, that draws the last frame and saves it
                    self.request_screenshot(final_shot)
                    self.frame(render=False)
                break
            self.frame()

    def frame(self, render: bool = True) -> None:
        t0 = time.perf_counter()
        imgui.new_frame()
        io = imgui.get_io()
        self._layout()
        self.controls.hotkeys(self, io)
        self.controls.camera(self, io)
        wanted = self.sizing.follow(*self.image_area[2:], now=t0)  # window x scale, once the window size holds
        if wanted:
            self.set_render_size(*wanted)

        # one live frame: render the pair -> submit to the trainer -> denoise with the latest weights
        typing = io.want_text_input  # keep typing responsive: no 100+ ms render per keystroke
        stepped = self.waiting_for_training = False
        if render and self.rendering and not typing:
            self.waiting_for_training = not stepping.trainer_ready(self)
            if not self.waiting_for_training and self.sizing.frame_due(t0):
                stepped = stepping.step(self)

        self.images.upload(self)
        self.panel.draw(self)
        self.overlay.draw(self, typing=typing)

        # draw: clear, the image through the tonemap shader, then ImGui on top
        fb_w, fb_h = self.window.clear()
        self._draw_image(fb_w, fb_h)
        self.window.render_imgui()
        if self.screenshot_requests:
            take_screenshots(self, fb_w, fb_h)
        self.window.swap()

        self.frames += 1
        now = time.perf_counter()
        self.ui_ms = (now - self._last_ui_t) * 1000.0
        self._last_ui_t = now
        self.history.add(stepping.stats_row(self, stepped), rendered=stepped)
        if stepped:
            new = self.sizing.after_frame(t0, (now - t0) * 1000.0, paced=self.pace)
            if new:
                self.set_render_size(*new)
        else:
            self._idle(t0)

    def _idle(self, t0: float) -> None:
        """Nothing was rendered: wait for input, a ready trainer (pacing) or the next refresh, not spin a core."""
        elapsed = time.perf_counter() - t0
        if elapsed < MIN_FRAME_S:
            time.sleep(MIN_FRAME_S - elapsed)
        events, deadline = self.window.events, t0 + IDLE_FRAME_S
        due = self.sizing.next_frame_at()  # the auto size's frame-rate cap: wake when the next frame is due
        if due is not None:
            deadline = min(deadline, due)
        while not self.quit and self.window.events == events:
            left = deadline - time.perf_counter()
            if left <= 0 or (self.waiting_for_training and stepping.trainer_ready(self)):
                return
            self.window.wait(min(IDLE_POLL_S, left))

    def spp(self) -> int:
        return int(self.loop.tracer.spp)

    # ------------------------------------------------------------------------------------------ layout
    def _layout(self) -> None:
        ww, wh = self.window.window_size()
        pw = self.panel.width(ww)
        aw, ah = max(ww - pw, 1), max(wh, 1)
        iw, ih = self.sizing.size
        if self.result is not None:
            ih, iw = self.result.denoised.shape[:2]
        s = min(aw / max(iw, 1), ah / max(ih, 1))
        w, h = iw * s, ih * s
        self.image_rect = ((aw - w) / 2.0, (ah - h) / 2.0, w, h)
        self.image_area = (0.0, 0.0, float(aw), float(ah))

    # ------------------------------------------------------------------------------------------ textures, drawing
    def sources_needed(self) -> tuple[str, ...]:
        if self.mode == "split":
            return tuple(dict.fromkeys((self.split_left, self.split_right)))
        return (self.mode,)

    def _draw_image(self, fb_w: int, fb_h: int) -> None:
        ww, wh = self.window.window_size()
        sx, sy = fb_w / max(ww, 1), fb_h / max(wh, 1)  # window -> framebuffer pixels (HiDPI)
        x, y, w, h = self.image_rect
        rect = (x * sx, fb_h - (y + h) * sy, w * sx, h * sy)
        sources = self.sources_needed()
        left = SOURCES[sources[0]]
        right = SOURCES[sources[-1]]
        self.display.draw(rect, left.name, left.kind, right.name, right.kind,
                          split=self.split_pos if self.mode == "split" else 1.0,
                          exposure=self.exposure, heat_gain=self.heat_gain, smooth=self.smooth)
        gl.glViewport(0, 0, fb_w, fb_h)

    def close(self) -> None:
        self.history.close()
        try:
            self.display.release()
        except Exception:
            pass

    def summary(self, closed_ms: float) -> str | None:
        """The exit line: frames, size, frame time and its parts, training; None when no frame was timed."""
        s = self.history.summary()
        if not s:
            return None
        ms = {k: fmt(s[k], 0, " ms", missing="n/a") for k in ("render_ms", "infer_ms", "train_ms")}
        w, h = self.sizing.size
        return (f"n2n-live viewer: {self.rendered} frames at {w}x{h}{', paced' if self.pace else ''}, frame time "
                f"mean {s['mean_ms']:.0f} ms (median {s['median_ms']:.0f} ms; render {ms['render_ms']}, inference "
                f"{ms['infer_ms']}; training {ms['train_ms']} per frame in its thread, "
                f"{self.loop.trainer.stats['steps']} steps, {fmt(s['steps_per_s'], 1, ' steps/s', 'n/a steps/s')}); "
                f"closed in {closed_ms:.0f} ms")


def run(cfg, args) -> int:
    """Open the window, run the live loop until closed (or --exit-after-frames), return the exit code."""
    with Lifetime(cfg, args.window_size) as life:
        shared = share_cores(life.loop)  # on a CPU: torch and Dr.Jit threads for the display and the trainer
        viewer = life.attach(Viewer(life.loop, cfg, args, life.window))
        if shared:
            viewer.messages.info(shared)
        viewer.run()
    if viewer.interrupted:
        return life.exit(130, "n2n-live: interrupted")
    line = viewer.summary(life.closed_ms)
    if line:
        print(line, flush=True)
    limit = args.exit_after_frames or 0
    if limit and viewer.rendered < limit:  # a scripted run whose rendering failed must not look like a success
        return life.exit(1, f"n2n-live: rendering stopped after {viewer.rendered} of {limit} frames")
    return life.exit(0)


__all__ = ["run", "Viewer"]
