"""The viewer's main loop: one UI frame = input -> camera -> one live frame -> textures -> panels -> draw.

    main thread: GLFW window, OpenGL, ImGui and every Mitsuba call (LiveLoop.step renders on the caller's thread)
    trainer thread (inside LiveLoop): trains on the newest pair; the display only reads its published weights

The display never waits for training: `LiveLoop.step` submits the pair without blocking and denoises with the
latest weights. Closing the window, Esc or Ctrl-C leave the loop after the frame in flight; `LiveLoop.close()`
stops the trainer within 2 s.
"""
from __future__ import annotations

import gc
import math
import signal
import threading
import time
from pathlib import Path

import OpenGL.GL as gl
import torch
from imgui_bundle import imgui

from .. import oidn
from ..errors import UserError
from ..tonemap import T
from .fly_camera import FlyCamera
from .gl_display import ImageDisplay, read_framebuffer
from .history import FrameHistory
from .keyframes import KeyframeRecorder
from .modes import MODES, SOURCES, parse_split
from .panels import Messages, Overlay, SidePanel
from .reference import ProgressiveReference
from .screenshot import save_screenshot
from .window import Window

IDLE_FRAME_S = 1.0 / 60.0  # UI frame pacing when no live frame is rendered (typing, stopped after an error)
RESIZE_SETTLE_S = 0.3  # follow-window render size: wait until the window size has held this long


class Viewer:
    """The viewer's state and actions; panels read it and call its methods (see panels.py)."""

    def __init__(self, loop, cfg, args, window: Window):
        self.loop, self.cfg, self.args, self.window = loop, cfg, args, window
        self.display = ImageDisplay()
        self.messages = Messages()
        self.history = FrameHistory(getattr(args, "stats_jsonl", None))
        self.reference = ProgressiveReference()
        self.recorder = KeyframeRecorder(frames_per_loop=240)

        # display
        self.mode = getattr(args, "mode", None) or "denoised"
        self.split_left, self.split_right = parse_split(getattr(args, "split", None) or "noisy,denoised")
        self.split_pos = 0.5
        self.exposure_ev = math.log2(float(cfg.exposure))
        self.heat_gain = 4.0
        self.smooth = True
        self.image_rect = (0.0, 0.0, 1.0, 1.0)  # where the image is drawn, window pixels (x, y from top, w, h)
        self._uploaded = None  # what the textures hold: (result id, sources, exposure, reference spp)
        self._oidn_cache = (None, None)
        self._dragging_divider = False

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

        # render size
        self.render_follow = getattr(args, "render_scale", None) is not None
        self.render_scale = float(getattr(args, "render_scale", None) or 0.5)
        self.render_size = (int(cfg.width), int(cfg.height))
        self._size_wanted, self._size_since = None, 0.0

        # frame state
        self.result = None
        self.result_id = 0
        self.frames = 0  # UI frames
        self.rendered = 0  # live frames rendered
        self.rendering = True  # False after a failed frame, until the user retries
        self.psnr_ref = (None, None)  # progressive-reference PSNR of the input and of the denoised image
        self.screenshot_requests: list[Path | None] = []
        self.quit = False
        self.interrupted = False  # Ctrl-C: leave the loop, then exit like the other commands (130)
        self._last_frame_t = time.perf_counter()
        self._ui_ms = None

        self.panel = SidePanel()
        self.overlay = Overlay()
        if not self.loop.trainer.running and not getattr(cfg, "sync", False):
            self.messages.warn("the trainer thread is not running")
        if getattr(args, "pause_training", False):
            self.loop.trainer.pause()

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
            self.rendering = True
            self.messages.info(f"scene {spec!r} loaded")

    def set_render_size(self, w: int, h: int) -> None:
        w, h = max(8, int(w)), max(8, int(h))
        if (w, h) == tuple(self.render_size):
            return
        if self.attempt("resize", lambda: (self.loop.resize(w, h), True)[1]):
            self.render_size = (w, h)
            self.reference.reset()

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
        limit = int(getattr(self.args, "exit_after_frames", 0) or 0)
        final_shot = getattr(self.args, "screenshot", None)
        while not self.quit:
            self.window.poll()
            if self.window.should_close():
                break
            last = limit > 0 and self.frames + 1 >= limit
            if last and final_shot:
                self.request_screenshot(final_shot)
            self.frame()
            if last:
                break

    def frame(self) -> None:
        t0 = time.perf_counter()
        imgui.new_frame()
        io = imgui.get_io()
        self._layout()
        self._hotkeys(io)
        self._camera_input(io)
        self._follow_window_size()

        # one live frame: render the pair -> submit to the trainer -> denoise with the latest weights
        typing = io.want_text_input  # keep typing responsive: no 100+ ms render per keystroke
        stepped = False
        if self.rendering and not typing:
            stepped = self._step()

        self._upload_textures()
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
            self._take_screenshots(fb_w, fb_h)
        self.window.swap()

        self.frames += 1
        now = time.perf_counter()
        self._ui_ms = (now - self._last_frame_t) * 1000.0
        self._last_frame_t = now
        self._log(stepped)
        if not stepped:  # nothing rendered: do not spin a core at thousands of UI frames per second
            time.sleep(max(0.0, IDLE_FRAME_S - (time.perf_counter() - t0)))

    def _step(self) -> bool:
        if self.playing:
            try:
                cam = self.active_path().at(self.path_frame)
            except UserError as e:
                self.messages.error(str(e))
                self.playing = False
                cam = self.fly.camera()
            else:
                self.fly.reset(cam)  # pausing continues from here
        else:
            cam = self.fly.camera()
        self.camera = cam
        try:
            result = self.loop.step(cam)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a failing renderer/scene must not take the UI down
            self.rendering = False
            self.messages.error(f"rendering stopped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            return False
        self.result, self.result_id = result, self.result_id + 1
        self.rendered += 1
        if self.playing:
            self.path_frame += 1
        # progressive reference: measure against the samples so far, then add this frame's two images
        pair = result.pair
        h, w = pair.noisy_a.shape[:2]
        self.reference.follow((cam.key(), (w, h), self._spp(), id(self.loop.loaded)))
        self.psnr_ref = self.reference.measure(pair.noisy_a, result.denoised, self.exposure)
        spp = self._spp()
        self.reference.add(pair.noisy_a, spp)
        self.reference.add(pair.noisy_b, spp)
        return True

    def _spp(self) -> int:
        return int(getattr(self.loop.tracer, "spp", self.cfg.spp))

    # ------------------------------------------------------------------------------------------ input
    def _hotkeys(self, io) -> None:
        if imgui.is_key_pressed(imgui.Key.escape, False) and not io.want_text_input:
            self.quit = True
        if imgui.is_key_pressed(imgui.Key.f12, False):
            self.request_screenshot()
        if io.want_capture_keyboard:
            return
        for i, mode in enumerate(MODES):
            if imgui.is_key_pressed(getattr(imgui.Key, f"_{i + 1}"), False):
                self.set_mode(mode)
        if imgui.is_key_pressed(imgui.Key.t, False):
            self.toggle_training()
        if imgui.is_key_pressed(imgui.Key.p, False) or imgui.is_key_pressed(imgui.Key.space, False):
            self.toggle_playing()
        if imgui.is_key_pressed(imgui.Key.k, False):
            self.add_keyframe()
        if imgui.is_key_pressed(imgui.Key.r, False):
            self.reset_view()

    def _camera_input(self, io) -> None:
        dt = min(max(io.delta_time, 1e-3), 0.5)  # seconds since the last UI frame (slow frames: bounded jump)
        moved = False
        if not io.want_capture_keyboard:
            def axis(pos, neg):
                return float(imgui.is_key_down(pos)) - float(imgui.is_key_down(neg))

            fwd, right, up = axis(imgui.Key.w, imgui.Key.s), axis(imgui.Key.d, imgui.Key.a), axis(imgui.Key.e, imgui.Key.q)
            boost = 4.0 if io.key_shift else 1.0
            moved = self.fly.move(fwd, right, up, dt * boost)
        # mouse: drag the split divider, or drag in the image to look around
        x, y, w, h = self.image_rect
        mx, my = io.mouse_pos.x, io.mouse_pos.y
        inside = x <= mx < x + w and y <= my < y + h and not io.want_capture_mouse
        divider_x = x + self.split_pos * w
        if self.mode == "split" and inside and imgui.is_mouse_clicked(imgui.MouseButton_.left) and abs(mx - divider_x) < 8:
            self._dragging_divider = True
        if self._dragging_divider:
            if imgui.is_mouse_down(imgui.MouseButton_.left):
                self.split_pos = min(1.0, max(0.0, (mx - x) / max(w, 1.0)))
            else:
                self._dragging_divider = False
        elif (inside or self._looking) and (imgui.is_mouse_down(imgui.MouseButton_.left) or imgui.is_mouse_down(imgui.MouseButton_.right)):
            self._looking = True
            d = io.mouse_delta
            if abs(d.x) < 1e4 and abs(d.y) < 1e4:  # the first event after the cursor entered gives a huge delta
                moved |= self.fly.look(d.x, d.y)
        else:
            self._looking = False
        if moved and self.playing:
            self.playing = False  # the user took the camera

    _looking = False

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

    def _source_image(self, name: str):
        r = self.result
        pair = r.pair
        if name == "denoised":
            return r.denoised
        if name == "noisy":
            return pair.noisy_a
        if name == "albedo":
            return pair.albedo
        if name == "normal":
            return pair.normal
        ref = self.reference.mean
        if ref is None or ref.shape != pair.noisy_a.shape:
            ref = 0.5 * (pair.noisy_a + pair.noisy_b)
        if name == "reference":
            return ref
        if name in ("error", "error_noisy"):
            x = r.denoised if name == "error" else pair.noisy_a
            e = (T(x.float(), self.exposure) - T(ref.float(), self.exposure)).abs().mean(dim=-1, keepdim=True)
            return e.expand(*e.shape[:2], 3)
        if name == "oidn":
            return self._oidn_image()
        raise KeyError(name)

    def _oidn_image(self):
        r = self.result
        if getattr(r, "oidn", None) is not None:
            return r.oidn
        if self._oidn_cache[0] == self.result_id:
            return self._oidn_cache[1]
        if not oidn.available():
            return r.denoised
        pair = r.pair
        img = self.attempt("OIDN", oidn.denoise, 0.5 * (pair.noisy_a + pair.noisy_b), pair.albedo, pair.normal)
        img = r.denoised if img is None else img
        self._oidn_cache = (self.result_id, img)
        return img

    def _upload_textures(self) -> None:
        if self.result is None:
            return
        sources = self.sources_needed()
        key = (self.result_id, sources, self.exposure if any(s.startswith("error") for s in sources) else None)
        if key == self._uploaded:
            return
        for name in sources:
            img = self._source_image(name)
            self.display.upload(name, torch.nan_to_num(img.detach().float(), nan=0.0, posinf=0.0, neginf=0.0))
        self._uploaded = key

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

    def _take_screenshots(self, fb_w: int, fb_h: int) -> None:
        pixels = read_framebuffer(fb_w, fb_h)
        requests, self.screenshot_requests = self.screenshot_requests, []
        for path in dict.fromkeys(requests):
            path = path or self._next_screenshot_path()
            written = self.attempt("screenshot", save_screenshot, path, pixels, self.result, self.reference.mean)
            if written:
                names = " and ".join(str(p) for p in written)
                self.messages.info(f"wrote {names}")
                print(f"n2n-live: wrote {names}", flush=True)

    def _next_screenshot_path(self) -> Path:
        folder = Path(getattr(self.args, "screenshot_dir", None) or "out/screenshots")
        for i in range(100000):
            p = folder / f"n2n-live-{self.rendered:05d}{'' if i == 0 else f'-{i}'}.png"
            if not p.exists():
                return p
        return folder / "n2n-live.png"

    # ------------------------------------------------------------------------------------------ stats
    def _log(self, stepped: bool) -> None:
        r = self.result if stepped else None
        st = self.loop.trainer.stats
        row = {
            "frame": self.rendered, "ui_frame": self.frames, "rendered": stepped, "mode": self.mode,
            "ui_ms": self._ui_ms if stepped else None,
            "render_ms": getattr(r, "render_ms", None), "train_ms": st.get("train_ms"),
            "infer_ms": getattr(r, "infer_ms", None), "train_steps": st.get("steps"),
            "paused": bool(self.loop.trainer.paused), "loss": st.get("last_loss"),
            "psnr_input_ref": self.psnr_ref[0] if stepped else None,
            "psnr_denoised_ref": self.psnr_ref[1] if stepped else None,
            "psnr_input": getattr(r, "psnr_input", None), "psnr_denoised": getattr(r, "psnr_denoised", None),
            "reference_spp": self.reference.spp, "playing": self.playing,
            "origin": [round(float(v), 5) for v in self.camera.origin],
            "size": list(self.render_size),
        }
        self.history.add(row, rendered=stepped)

    def close(self) -> None:
        self.history.close()
        try:
            self.display.release()
        except Exception:
            pass


def run(cfg, args) -> int:
    """Open the window, run the live loop until closed (or --exit-after-frames), return the exit code."""
    from ..live import LiveLoop  # imports torch/Mitsuba: after argument parsing

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
    try:
        viewer = Viewer(loop, cfg, args, window)
        previous_sigint = _quit_on_sigint(viewer)
        viewer.run()
    finally:
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
        # Closing (window, Esc, --exit-after-frames; Ctrl-C lands here too and re-raises after): ask the trainer
        # to stop first, so that its step in flight ends while the window goes away, then wait for it (<= 2 s).
        t_close = time.perf_counter()
        for t in getattr(loop, "trainers", [loop.trainer]):
            if hasattr(t, "request_stop"):
                t.request_stop()
        try:
            if viewer is not None:
                viewer.close()
            window.close()
        finally:
            loop.close()
        # The process ends next: exclude the millions of objects torch and Mitsuba created from the final garbage
        # collection at interpreter exit (measured: ~1 s -> ~0.25 s on 2 loaded cores).
        gc.freeze()
    if viewer is not None and viewer.interrupted:
        raise KeyboardInterrupt  # the CLI's convention: "interrupted", exit code 130
    if viewer is not None:
        s = viewer.history.summary()
        if s:
            fw, fh = viewer.render_size
            print(f"n2n-live viewer: {s['frames']} frames at {fw}x{fh}, frame time mean {s['mean_ms']:.0f} ms "
                  f"(median {s['median_ms']:.0f} ms; render {_ms(s['render_ms'])}, inference {_ms(s['infer_ms'])}, "
                  f"training {_ms(s['train_ms'])} per frame in its thread); closed in "
                  f"{(time.perf_counter() - t_close) * 1000:.0f} ms", flush=True)
    return 0


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
