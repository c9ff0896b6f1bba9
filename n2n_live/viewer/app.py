"""The viewer's main loop: one UI frame = input -> camera -> one live frame -> textures -> panels -> draw.

    main thread: GLFW window, OpenGL, ImGui and every Mitsuba call (LiveLoop.step renders on the caller's thread)
    trainer thread (inside LiveLoop): trains on the newest pair; the display only reads its published weights

The display never waits for training: `LiveLoop.step` submits the pair without blocking and denoises with the
latest weights (stepping.py). Closing the window, Esc or Ctrl-C leave the loop after the frame in flight;
`LiveLoop.close()` stops the trainer within 2 s. Keyboard and mouse: controls.py; the images a mode shows and their
textures: images.py; the panels: panels.py.
"""
from __future__ import annotations

import gc
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import OpenGL.GL as gl
from imgui_bundle import imgui

from ..live import oidn
from ..live.config import default_preset_name
from ..errors import UserError
from . import stepping
from .autosize import TARGETS, AutoSize
from .budget import share_cores
from .controls import Controls
from .fly_camera import FlyCamera
from .gl_display import ImageDisplay
from .history import FrameHistory, RateMeter
from .images import FrameImages
from .keyframes import KeyframeRecorder
from .modes import MODES, SOURCES, parse_split
from .panels import Messages, Overlay, SidePanel
from .reference import StillStreams
from .screenshot import take_screenshots
from .window import Window

# UI frames that render no live frame (pacing, typing, after an error) are drawn when input arrives (at most 60 per
# second), when a paced trainer becomes ready, and else 5 times a second to refresh the statistics: with software
# OpenGL (Mesa llvmpipe) one UI frame of the 1280x720 window costs ~25-30 ms of CPU, so redrawing an idle window at
# 60 frames per second would take a core away from training.
MIN_FRAME_S = 1.0 / 60.0
IDLE_FRAME_S = 0.2
STOP_BUDGET_S = 1.5  # from leaving the loop to returning: window teardown + the trainer's step in flight
IDLE_POLL_S = 0.01  # how often an idle viewer checks for input and for a paced trainer's readiness
RESIZE_SETTLE_S = 0.3  # follow-window render size: wait until the window size has held this long


class Viewer:
    """The viewer's state and actions; panels read it and call its methods (see panels.py)."""

    def __init__(self, loop, cfg, args, window: Window):
        self.loop, self.cfg, self.args, self.window = loop, cfg, args, window
        self.display = ImageDisplay()
        self.messages = Messages()
        self.history = FrameHistory(getattr(args, "stats_jsonl", None))
        self.steps_rate = RateMeter()  # training steps per second (Statistics panel)
        self.reference = StillStreams()  # still camera: the accumulating streams and their disjoint reference
        self.recorder = KeyframeRecorder(frames_per_loop=240)

        # display
        self.mode = getattr(args, "mode", None) or "denoised"
        self.split_left, self.split_right = parse_split(getattr(args, "split", None) or "noisy,denoised")
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
        self.playing = not getattr(args, "still", False)
        self.path_source = "scene"  # or "recorded"
        self.path_frame = 0.0
        kf = getattr(args, "keyframes", None)
        if kf:
            self.recorder = KeyframeRecorder.load(kf)  # a bad file is a UserError: one line, exit 2
            self.path_source, self.playing = "recorded", True
        self.camera = self.fly.camera()

        # render size: dynamic (the preset's target frame rate) unless --size or --render-scale pins it
        self.preset = getattr(args, "preset", None) or default_preset_name()
        self.preset_auto = not getattr(args, "preset", None)  # chosen by the machine (CUDA or not)
        self.render_follow = getattr(args, "render_scale", None) is not None
        self.render_scale = float(getattr(args, "render_scale", None) or 0.5)
        self.render_size = (int(cfg.width), int(cfg.height))
        self._size_wanted, self._size_since = None, 0.0
        fps, lo, hi = TARGETS.get(self.preset, TARGETS["cpu"])
        self.autosize = AutoSize(fps, lo, hi, self.render_size)
        self.auto_size = not self.render_follow and getattr(args, "size", None) is None

        # frame state
        self.result = None
        self.result_id = 0
        self.frames = 0  # UI frames
        self.rendered = 0  # live frames rendered
        self.rendering = True  # False after a failed frame, until the user retries
        self.pace = bool(getattr(args, "pace", False))  # render a new frame only when the trainer is idle
        self.waiting_for_training = False
        self.psnr_ref = (None, None)  # progressive-reference PSNR of the input and of the denoised image
        self.screenshot_requests: list[Path | None] = []
        self.quit = False
        self.interrupted = False  # Ctrl-C: leave the loop, then exit like the other commands (130)
        self.frame_ms = None  # interval between the last two live frames
        self.last_render_t = None
        self.ui_ms = None  # duration of the last UI frame
        self._last_ui_t = time.perf_counter()
        self._last_frame_start = None  # when the last live frame's UI frame began (frame-rate cap)

        self.panel = SidePanel()
        self.overlay = Overlay()
        self.messages.info(f"{self.preset} preset{' (torch sees no CUDA GPU)' if self.preset_auto and self.preset == 'cpu' else ''}"
                           f", render size {'auto: target ' + format(self.autosize.target_fps, 'g') + ' fps' if self.auto_size else 'pinned'}")
        if not self.loop.trainer.running and not getattr(cfg, "sync", False):
            self.messages.warn("the trainer thread is not running")
        if getattr(args, "pause_training", False):
            self.loop.trainer.pause()
        if "oidn" in (self.split_left, self.split_right) and not oidn.available():
            self.messages.warn("OIDN is not installed (pip install pyoidn): the split view shows the reference instead")
            self.split_left, self.split_right = (("reference" if s == "oidn" else s)
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
            self.autosize.hold()  # the new scene's first frame compiles its kernels
            self.rendering = True
            self.messages.info(f"scene {spec!r} loaded")

    def set_render_size(self, w: int, h: int) -> None:
        w, h = max(8, int(w)), max(8, int(h))
        if (w, h) == tuple(self.render_size):
            return
        if self.attempt("resize", lambda: (self.loop.resize(w, h), True)[1]):
            self.render_size = (w, h)
            self.reference.reset()
            self.autosize.hold()  # the first frame at a size may compile kernels (once per distinct size)

    def pin_size(self, w: int | None = None, h: int | None = None) -> None:
        """Stop the dynamic resolution and render at (w, h) (default: the current size)."""
        self.auto_size = self.render_follow = False
        if w is not None and h is not None:
            self.set_render_size(w, h)

    @property
    def auto(self) -> bool:
        return self.auto_size and not self.render_follow

    def _auto_size(self, work_ms: float) -> None:
        """Dynamic resolution: after each live frame, let the controller move the size from the frame's own work
        (live frame + UI; not the interval, which the frame-rate cap stretches); not while paced (the trainer then
        sets the pace)."""
        if self.auto and not self.pace:
            new = self.autosize.update(work_ms)
            if new is not None:
                self.set_render_size(*new)

    def _frame_due(self, now: float) -> bool:
        """Auto size renders at most at the target frame rate: a faster display would only take the CPU (or GPU)
        from the trainer. Pinned sizes render as fast as they can."""
        return not self.auto or self._last_frame_start is None or now >= self._last_frame_start + 1.0 / self.autosize.target_fps

    def set_spp(self, spp: int) -> None:
        """Samples per pixel of each noisy image (the reference starts over: its samples had another count)."""
        tracer = self.loop.tracer
        if hasattr(self.loop, "set_spp"):
            self.attempt("spp", self.loop.set_spp, int(spp))
        else:
            tracer.spp = int(spp)
        self.reference.reset()

    def retry_rendering(self) -> None:
        self.rendering = True

    # ------------------------------------------------------------------------------------------ frame
    def run(self) -> None:
        """UI frames until the window closes, Esc, Ctrl-C, or --exit-after-frames live frames were rendered."""
        limit = int(getattr(self.args, "exit_after_frames", 0) or 0)
        final_shot = getattr(self.args, "screenshot", None)
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
        self._follow_window_size()

        # one live frame: render the pair -> submit to the trainer -> denoise with the latest weights
        typing = io.want_text_input  # keep typing responsive: no 100+ ms render per keystroke
        stepped = self.waiting_for_training = False
        if render and self.rendering and not typing:
            self.waiting_for_training = not stepping.trainer_ready(self)
            if not self.waiting_for_training and self._frame_due(t0):
                stepped = stepping.step(self)
                if stepped:
                    self._last_frame_start = t0

        self.images.upload(self)
        self.panel.draw(self)
        self.overlay.draw(self, typing=typing)

        # draw: clear, the image through the tonemap shader, then ImGui on top
        fb_w, fb_h = self.window.framebuffer_size()
        gl.glViewport(0, 0, fb_w, fb_h)
        gl.glClearColor(0.08, 0.08, 0.09, 1.0)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
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
            self._auto_size((now - t0) * 1000.0)
        if not stepped:
            self._idle(t0)

    def _idle(self, t0: float) -> None:
        """Nothing was rendered: wait for input, a ready trainer (pacing) or the next refresh, not spin a core."""
        elapsed = time.perf_counter() - t0
        if elapsed < MIN_FRAME_S:
            time.sleep(MIN_FRAME_S - elapsed)
        events, deadline = self.window.events, t0 + IDLE_FRAME_S
        if self.auto and self._last_frame_start is not None:  # the frame-rate cap: wake when the next frame is due
            deadline = min(deadline, self._last_frame_start + 1.0 / self.autosize.target_fps)
        while not self.quit and self.window.events == events:
            left = deadline - time.perf_counter()
            if left <= 0 or (self.waiting_for_training and stepping.trainer_ready(self)):
                return
            self.window.wait(min(IDLE_POLL_S, left))

    def spp(self) -> int:
        return int(getattr(self.loop.tracer, "spp", self.cfg.spp))

    # ------------------------------------------------------------------------------------------ layout
    def _layout(self) -> None:
        ww, wh = self.window.window_size()
        pw = self.panel.width(ww)
        aw, ah = max(ww - pw, 1), max(wh, 1)
        iw, ih = self.render_size
        if self.result is not None:
            ih, iw = self.result.denoised.shape[:2]
        s = min(aw / max(iw, 1), ah / max(ih, 1))
        w, h = iw * s, ih * s
        self.image_rect = ((aw - w) / 2.0, (ah - h) / 2.0, w, h)
        self.image_area = (0.0, 0.0, float(aw), float(ah))

    def _follow_window_size(self) -> None:
        if not self.render_follow:
            return
        _, _, aw, ah = self.image_area
        want = (max(8, int(aw * self.render_scale)), max(8, int(ah * self.render_scale)))
        now = time.perf_counter()
        if want != self._size_wanted:
            self._size_wanted, self._size_since = want, now
        elif want != tuple(self.render_size) and now - self._size_since >= RESIZE_SETTLE_S:
            self.set_render_size(*want)

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


def run(cfg, args) -> int:
    """Open the window, run the live loop until closed (or --exit-after-frames), return the exit code."""
    from ..live.loop import LiveLoop  # imports torch/Mitsuba: after argument parsing

    w, h = getattr(args, "window_size", None) or (1280, 720)
    window = Window(w, h, title=f"n2n-live: {cfg.scene}")
    _loading_frame(window, f"loading {cfg.scene} ...")
    try:
        loop = LiveLoop(cfg)
    except BaseException:
        window.close()
        raise
    viewer = None
    t_close = None
    previous_sigint = None
    stopped = True
    try:
        shared = share_cores(loop)
        viewer = Viewer(loop, cfg, args, window)
        if shared:
            viewer.messages.info(shared)
        previous_sigint = _quit_on_sigint(viewer)
        viewer.run()
    finally:
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
        # Closing (window, Esc, --exit-after-frames; Ctrl-C lands here too and re-raises after): ask the trainer
        # to stop first, so that its step in flight ends while the window goes away, then wait for it (<= 1.5 s).
        t_close = time.perf_counter()
        for t in getattr(loop, "trainers", [loop.trainer]):
            if hasattr(t, "request_stop"):
                t.request_stop()
        try:
            if viewer is not None:
                viewer.close()
            window.close()
        finally:
            # a training step cannot be interrupted: wait for it at most what is left of the budget, then leave
            # (the trainer is a daemon thread; it ends with the process)
            stopped = loop.close(timeout=max(0.1, STOP_BUDGET_S - (time.perf_counter() - t_close)))
        # The process ends next: exclude the millions of objects torch and Mitsuba created from the final garbage
        # collection at interpreter exit (measured: ~1 s -> ~0.25 s on 2 loaded cores).
        gc.freeze()
    if viewer is not None and viewer.interrupted:
        _exit_now_if(not stopped, 130, "n2n-live: interrupted")
        raise KeyboardInterrupt  # the CLI's convention: "interrupted", exit code 130
    s = viewer.history.summary()
    fw, fh = viewer.render_size
    if s:
        print(f"n2n-live viewer: {viewer.rendered} frames at {fw}x{fh}{', paced' if viewer.pace else ''}, frame time "
              f"mean {s['mean_ms']:.0f} ms (median {s['median_ms']:.0f} ms; render {_ms(s['render_ms'])}, inference "
              f"{_ms(s['infer_ms'])}; training {_ms(s['train_ms'])} per frame in its thread, "
              f"{loop.trainer.stats['steps']} steps, {_rate(s.get('steps_per_s'))}); closed in {(time.perf_counter() - t_close) * 1000:.0f} ms",
              flush=True)
    limit = int(getattr(args, "exit_after_frames", 0) or 0)
    if limit and viewer.rendered < limit:  # a scripted run whose rendering failed must not look like a success
        _exit_now_if(not stopped, 1, f"n2n-live: rendering stopped after {viewer.rendered} of {limit} frames")
        print(f"n2n-live: rendering stopped after {viewer.rendered} of {limit} frames", file=sys.stderr)
        raise SystemExit(1)
    _exit_now_if(not stopped, 0)
    return 0


def _exit_now_if(condition: bool, code: int, message: str | None = None) -> None:
    """End the process at once, without interpreter finalisation, when the trainer's step in flight outlived the
    stop budget: finalising the interpreter while a daemon thread is inside a torch operation crashes (measured: a
    segmentation fault at exit on 2 loaded cores at 256x256). Everything the viewer writes is closed by now."""
    if not condition:
        return
    if message:
        print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _quit_on_sigint(viewer: Viewer):
    """Ctrl-C ends the loop at the next frame boundary (a KeyboardInterrupt raised inside Mitsuba or a GLFW
    callback could be swallowed there); a second Ctrl-C interrupts at once. Returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if viewer.interrupted:
            raise KeyboardInterrupt
        viewer.interrupted = viewer.quit = True

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    return previous


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.0f} ms"


def _rate(v) -> str:
    return "n/a steps/s" if v is None else f"{v:.1f} steps/s"


def _loading_frame(window: Window, text: str) -> None:
    """One frame with a line of text while the scene loads and compiles (seconds on a CPU)."""
    window.poll()
    imgui.new_frame()
    imgui.get_background_draw_list().add_text(imgui.ImVec2(20, 20), 0xFFFFFFFF, text)
    fb_w, fb_h = window.framebuffer_size()
    gl.glViewport(0, 0, fb_w, fb_h)
    gl.glClearColor(0.08, 0.08, 0.09, 1.0)
    gl.glClear(gl.GL_COLOR_BUFFER_BIT)
    window.render_imgui()
    window.swap()


__all__ = ["run", "Viewer"]
