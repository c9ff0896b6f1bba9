"""The viewer's UI in process, in a real GLFW window under Xvfb, driven by a fake live loop: panels, keys,
split views and messages without rendering or training."""
from __future__ import annotations

import argparse
import time
import types

import numpy as np
import pytest
import torch
from viewer_harness import load_png

pytestmark = pytest.mark.window


# ---------------------------------------------------------------------------------------------- in process
class _FakeTracer:
    def __init__(self, spp):
        self.spp = spp


class FakeLoop:
    """LiveLoop's interface with synthetic images and the real trainer: the UI logic without Mitsuba."""

    def __init__(self, width=64, height=48):
        from n2n_live.live.config import LiveConfig
        from n2n_live.models.unet import UNet
        from n2n_live.live.trainer import OnlineTrainer
        from renderer.camera import Camera, CameraPath

        self.cfg = LiveConfig(scene="fake", width=width, height=height, crop=32, iters_per_frame=1)
        start = Camera([0, 0, 4], [0, 0, 0], [0, 1, 0], 40)
        keys = [start, Camera([1, 0, 4], [0, 0, 0], [0, 1, 0], 40)]
        self.loaded = types.SimpleNamespace(path=CameraPath(keys, 20), start=start, width=width, height=height)
        self.tracer = _FakeTracer(8)
        self.trainer = OnlineTrainer(UNet(), self.cfg, "cpu").start()
        self.frame = 0
        self.resized = []
        self.steps_called = 0

    def step(self, camera=None, pair_filter=None):
        from n2n_live.live.loop import FrameResult

        h, w = self.loaded.height, self.loaded.width
        g = torch.Generator().manual_seed(self.frame)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        shift = float(camera.origin[0])
        base = torch.stack([0.2 + 0.6 * ((xx + shift) % 1.0), 0.3 * yy, 0.1 + 0.0 * xx], -1)
        pair = types.SimpleNamespace(
            noisy_a=base * torch.empty(h, w, 3).exponential_(generator=g),
            noisy_b=base * torch.empty(h, w, 3).exponential_(generator=g),
            albedo=torch.tensor([0.9, 0.1, 0.1]).expand(h, w, 3).clone(),  # red
            normal=torch.tensor([0.0, 0.0, 1.0]).expand(h, w, 3).clone(),  # towards the camera: (0.5, 0.5, 1) shown
            frame=self.frame)
        self.fresh_std = float(pair.noisy_a.std())
        if pair_filter is not None:
            pair = pair_filter(pair)
        self.trainer.submit(pair)
        self.frame += 1
        self.steps_called += 1
        return FrameResult(frame=self.frame, camera=camera, pair=pair, denoised=base.clone(), render_ms=1.0)

    def set_scene(self, spec):
        from n2n_live.errors import UserError

        raise UserError(f"{spec}: no such file")

    def resize(self, w, h):
        self.resized.append((w, h))
        self.loaded.width, self.loaded.height = w, h

    def set_spp(self, spp):
        self.tracer.spp = spp

    def close(self):
        return self.trainer.stop(2.0)


def test_viewer_ui_in_process(x_display, tmp_path, monkeypatch):
    """GLFW key callbacks switch modes; textures are reused; the split divider drags; errors show in the UI;
    keyframes record and play; pacing waits for the trainer without blocking the UI; the wheel sets the fly speed;
    a window resize changes the render size in 'window x scale' mode; Esc quits."""
    monkeypatch.setenv("DISPLAY", x_display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    import glfw
    from imgui_bundle import imgui

    from n2n_live.commands.cli import build_parser
    from n2n_live.viewer.app import Viewer
    from n2n_live.viewer.modes import MODES
    from n2n_live.viewer.window import Window

    win = Window(900, 500, "n2n-live test")
    loop = FakeLoop()
    args = build_parser().parse_args(["--still", "--size", "64x48", "--preset", "cpu", "--stats-jsonl",
                                      str(tmp_path / "s.jsonl"), "--screenshot-dir", str(tmp_path)])
    v = Viewer(loop, loop.cfg, args, win)
    io = imgui.get_io()

    def frames(n=1):
        for _ in range(n):
            win.poll()
            v.frame()

    def key(glfw_key, mods=0):
        for action in (glfw.PRESS, glfw.RELEASE):
            win.imgui.keyboard_callback(win.handle, glfw_key, 0, action, mods)
            frames(1)  # ImGui sees the press in one frame and the release in the next

    def shot(name) -> np.ndarray:
        v.request_screenshot(tmp_path / name)
        frames(1)
        a = load_png(tmp_path / name)
        x, y, w, h = (int(round(c)) for c in v.image_rect)
        return a[y + h // 5: y + 4 * h // 5, x + w // 5: x + 4 * w // 5]

    try:
        frames(3)
        assert v.result is not None and v.display.has("denoised")
        uploads = v.display.uploads
        frames(3)
        assert v.display.uploads == uploads  # same size: textures reused, not reallocated
        # still camera: the streams accumulate (6 frames: the newest ceil(sqrt(6)) = 3 in the streams, 3 older ones
        # in the reference) and what is shown and trained on is the accumulated pair
        assert (v.reference.still_frames, v.reference.stream_spp, v.reference.images) == (6, 24, 6)
        assert v.result.pair.noisy_a.std() < 0.8 * loop.fresh_std

        pictures = {}
        for i, mode in enumerate(MODES[:4]):
            key(getattr(glfw, f"KEY_{i + 1}"))
            assert v.mode == mode
            pictures[mode] = shot(f"{mode}.png").reshape(-1, 3).mean(0)
        assert pictures["albedo"][0] > 150 and pictures["albedo"][1] < 110  # red albedo
        assert pictures["normal"][2] > 200 and 120 < pictures["normal"][0] < 220  # (0.5, 0.5, 1) in sRGB-ish
        assert np.abs(pictures["denoised"] - pictures["albedo"]).max() > 40
        assert (tmp_path / "normal.exr").exists()

        # the split view's divider follows a mouse drag
        key(glfw.KEY_7)
        assert v.mode == "split"
        frames(1)
        x, y, w, h = v.image_rect
        io.add_mouse_pos_event(x + 0.5 * w, y + 0.5 * h)
        frames(1)
        io.add_mouse_button_event(0, True)
        frames(1)
        io.add_mouse_pos_event(x + 0.25 * w, y + 0.5 * h)
        frames(1)
        io.add_mouse_button_event(0, False)
        frames(1)
        assert abs(v.split_pos - 0.25) < 0.03

        # W moves the camera (fly-through stays off: --still)
        origin = v.camera.origin.copy()
        win.imgui.keyboard_callback(win.handle, glfw.KEY_W, 0, glfw.PRESS, 0)
        frames(3)
        win.imgui.keyboard_callback(win.handle, glfw.KEY_W, 0, glfw.RELEASE, 0)
        frames(1)
        assert v.camera.origin[2] < origin[2]

        # a bad scene path and a bad checkpoint: messages in the UI, a red banner over the image, still running
        key(glfw.KEY_1)
        v.load_scene("missing/scene.xml")
        v.attempt("load network", loop.trainer.load, str(tmp_path / "missing.ckpt"))
        errors = [t for _, lvl, t in v.messages.items if lvl == "error"]
        assert any("missing/scene.xml" in t for t in errors) and any("missing.ckpt" in t for t in errors)
        n = loop.steps_called
        frames(2)
        assert loop.steps_called == n + 2
        full = load_png(tmp_path / "denoised.png")
        v.request_screenshot(tmp_path / "error.png")
        frames(1)
        err = load_png(tmp_path / "error.png")
        banner = (err[..., 0] > 200) & (err[..., 1] > 100) & (err[..., 1] < 150) & (err[..., 2] < 140)
        assert banner.sum() > 50 and banner.sum() > 5 * ((full[..., 0] > 200) & (full[..., 1] < 150) & (full[..., 1] > 100) & (full[..., 2] < 140)).sum()

        # keyframes: record two, play them back
        v.add_keyframe()
        v.fly.move(0, 1, 0, dt=2.0)
        frames(1)
        v.add_keyframe()
        v.recorder.frames_per_loop = 4
        v.path_source, v.path_frame, v.playing = "recorded", 0.0, True
        frames(3)
        assert v.path_frame == 3 and v.camera == v.recorder.path().at(2)

        # pause/resume training with T
        key(glfw.KEY_T)
        assert loop.trainer.paused
        key(glfw.KEY_T)
        assert not loop.trainer.paused

        # pacing: no new frame while the trainer is busy with the last one; the UI keeps drawing meanwhile
        v.pace = True
        busy = True
        monkeypatch.setattr(loop.trainer, "wait_idle", lambda timeout=None: not busy)
        n, ui = loop.steps_called, v.frames
        frames(3)
        assert loop.steps_called == n and v.frames == ui + 3 and v.waiting_for_training
        busy = False
        frames(2)
        assert loop.steps_called == n + 2 and not v.waiting_for_training
        v.pace = False

        # the mouse wheel over the image changes the fly speed
        speed = v.fly.speed
        x, y, w, h = v.image_rect
        io.add_mouse_pos_event(x + 0.5 * w, y + 0.5 * h)
        io.add_mouse_wheel_event(0.0, 2.0)
        frames(2)
        assert abs(v.fly.speed / speed - 1.25 ** 2) < 1e-6

        # 'window x scale': the render size follows the window's image area once its size settles
        v.sizing.choose("window")
        v.sizing.scale = 0.25
        glfw.set_window_size(win.handle, 700, 400)
        deadline = time.monotonic() + 20
        while not loop.resized and time.monotonic() < deadline:
            frames(1)
        pw = v.panel.width(700)
        assert loop.resized and loop.resized[-1] == (int((700 - pw) * 0.25), 100)
        frames(2)
        assert tuple(v.result.denoised.shape[:2]) == (100, int((700 - pw) * 0.25))

        # 'auto': the size climbs the ladder towards the target frame rate (these frames take far less than the
        # 250 ms of 4 fps) and stops at the preset's bound; training goes on across sizes; 'pin' holds the size;
        # the frame rate is capped at the target: the CPU a faster display would take goes to the trainer
        glfw.set_window_size(win.handle, 900, 500)
        v.pin_size(64, 48)
        v.sizing.choose("auto")
        v.sizing.auto.target_fps = 4.0
        v.sizing.auto.settle, v.sizing.auto.window = 1, 2  # decide after few frames (the logic is tested in the units)
        n_resized, steps, rendered, t0 = len(loop.resized), loop.trainer.stats["steps"], v.rendered, time.monotonic()
        while v.sizing.size != (256, 192) and time.monotonic() < t0 + 90:
            frames(1)
        assert v.sizing.size == (256, 192), loop.resized
        n = v.rendered - rendered
        assert n >= 6 and (n - 1) / (time.monotonic() - t0) <= 4.0  # frames start >= 1/4 s apart
        from n2n_live.viewer.autosize import LADDER

        moves = loop.resized[n_resized:]  # along the ladder, the aspect kept, at most 2 rungs at a time
        assert all(s[0] in LADDER and abs(s[1] - 0.75 * s[0]) <= 4 for s in moves), moves
        rungs = [LADDER.index(s[0]) for s in [(64, 48)] + moves]
        assert all(0 < abs(b - a) <= 2 for a, b in zip(rungs, rungs[1:])), moves
        n = v.rendered
        while v.rendered == n and time.monotonic() < t0 + 120:  # the size applies from the next live frame
            frames(1)
        assert tuple(v.result.denoised.shape[:2]) == (192, 256)
        assert loop.trainer.stats["steps"] >= steps  # not reset by the size changes
        v.sizing.auto.target_fps = 1000.0  # now far too slow: it would shrink, but pinned it stays
        v.pin_size()
        frames(12)
        assert v.sizing.size == (256, 192) and not v.sizing.is_auto

        # Esc quits
        assert not v.quit
        key(glfw.KEY_ESCAPE)
        assert v.quit

        # --split denoised,oidn without pyoidn: a warning, and the reference instead of a mislabelled image
        import n2n_live.live.oidn

        monkeypatch.setattr(n2n_live.live.oidn, "available", lambda: False)
        v2 = Viewer(loop, loop.cfg, argparse.Namespace(**{**vars(args), "split": "denoised,oidn"}), win)
        assert (v2.split_left, v2.split_right) == ("denoised", "reference")
        assert any("OIDN" in t for _, lvl, t in v2.messages.items if lvl == "warn")
        v2.close()
    finally:
        loop.close()
        v.close()
        win.close()
