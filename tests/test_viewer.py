"""The viewer in a real GLFW window: Xvfb + Mesa (llvmpipe) when there is no screen.

The tests start their own Xvfb (so that nothing pops up on a desktop and synthetic key events reach only our
window); they skip only when Xvfb is missing and no display is set. Keys and the window's close button are driven
through X11 itself (XSendEvent, the same events a window manager or xdotool would send), so nothing but libX11 is
needed; assertions are on pixels of the screenshots and on the per-frame stats log.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import default_sigint
import torch

pytestmark = pytest.mark.window

REPO = Path(__file__).resolve().parents[1]
WINDOW = (1280, 720)  # the viewer's default window size
PANEL = 400  # the side panel's width at that size (panels.SidePanel.width)


# ---------------------------------------------------------------------------------------------- X server
@pytest.fixture(scope="module")
def x_display():
    for mod in ("glfw", "OpenGL", "imgui_bundle"):
        pytest.importorskip(mod, reason="the viewer extra is not installed (pip install 'n2n-live[viewer]')")
    if shutil.which("Xvfb") is None:
        if os.environ.get("DISPLAY"):
            yield os.environ["DISPLAY"]
            return
        pytest.skip("Xvfb is not installed (apt-get install xvfb libgl1-mesa-dri libglx-mesa0) and DISPLAY is unset")
    from n2n_live.viewer.xvfb import start_xvfb, stop_xvfb

    proc, display = start_xvfb()
    yield display
    stop_xvfb(proc)


class X11:
    """Just enough Xlib (ctypes) to find a window by title, send it keys and ask it to close."""

    KEYSYMS = {"escape": 0xFF1B, "f12": 0xFFC9, "space": 0x20}

    class _Key(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("root", ctypes.c_ulong),
                    ("subwindow", ctypes.c_ulong), ("time", ctypes.c_ulong), ("x", ctypes.c_int), ("y", ctypes.c_int),
                    ("x_root", ctypes.c_int), ("y_root", ctypes.c_int), ("state", ctypes.c_uint),
                    ("keycode", ctypes.c_uint), ("same_screen", ctypes.c_int)]

    class _Client(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

    class _Event(ctypes.Union):
        pass

    _Event._fields_ = [("xkey", _Key), ("xclient", _Client), ("pad", ctypes.c_long * 24)]

    def __init__(self, display: str):
        lib = ctypes.util.find_library("X11")
        if lib is None:
            pytest.skip("libX11 not found")
        x = self.x = ctypes.cdll.LoadLibrary(lib)
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XInternAtom.restype = ctypes.c_ulong
        x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x.XKeysymToKeycode.restype = ctypes.c_ubyte
        x.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        x.XFlush.argtypes = [ctypes.c_void_p]
        x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
                                 ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
                                 ctypes.POINTER(ctypes.c_uint)]
        x.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
        x.XFree.argtypes = [ctypes.c_void_p]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.dpy = x.XOpenDisplay(display.encode())
        assert self.dpy, f"cannot open X display {display}"
        self.root = x.XDefaultRootWindow(self.dpy)

    def find_window(self, title_prefix: str) -> int | None:
        root, parent, n = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_uint()
        children = ctypes.POINTER(ctypes.c_ulong)()
        self.x.XQueryTree(self.dpy, self.root, ctypes.byref(root), ctypes.byref(parent), ctypes.byref(children),
                          ctypes.byref(n))
        found = None
        for i in range(n.value):
            name = ctypes.c_char_p()
            if self.x.XFetchName(self.dpy, children[i], ctypes.byref(name)) and name.value:
                if name.value.decode(errors="replace").startswith(title_prefix):
                    found = children[i]
                self.x.XFree(name)
        if children:
            self.x.XFree(children)
        return found

    def key(self, window: int, key: str, down: bool) -> None:
        sym = self.KEYSYMS.get(key, ord(key) if len(key) == 1 else None)
        ev = self._Event()
        k = ev.xkey
        k.type = 2 if down else 3  # KeyPress / KeyRelease
        k.display, k.window, k.root, k.same_screen = self.dpy, window, self.root, 1
        k.keycode = self.x.XKeysymToKeycode(self.dpy, sym)
        self.x.XSendEvent(self.dpy, window, 1, 1 if down else 2, ctypes.byref(ev))  # Key{Press,Release}Mask
        self.x.XFlush(self.dpy)

    def tap(self, window: int, key: str) -> None:
        self.key(window, key, True)
        time.sleep(0.05)
        self.key(window, key, False)

    def close_window(self, window: int) -> None:
        """What a window manager's close button sends: WM_PROTOCOLS / WM_DELETE_WINDOW."""
        ev = self._Event()
        c = ev.xclient
        c.type, c.display, c.window, c.format = 33, self.dpy, window, 32  # ClientMessage
        c.message_type = self.x.XInternAtom(self.dpy, b"WM_PROTOCOLS", 0)
        c.data[0] = self.x.XInternAtom(self.dpy, b"WM_DELETE_WINDOW", 0)
        self.x.XSendEvent(self.dpy, window, 0, 0, ctypes.byref(ev))
        self.x.XFlush(self.dpy)

    def close(self) -> None:
        self.x.XCloseDisplay(self.dpy)


# ---------------------------------------------------------------------------------------------- helpers
def start_viewer(display: str, tmp: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, DISPLAY=display, PYTHONUNBUFFERED="1")
    env.pop("WAYLAND_DISPLAY", None)
    cmd = [sys.executable, "-c", "from n2n_live.commands.cli import main; main()", *args]
    return subprocess.Popen(cmd, cwd=tmp, env=env, stdout=open(tmp / "stdout.txt", "w"),
                            stderr=open(tmp / "stderr.txt", "w"), preexec_fn=default_sigint)


def logs(tmp: Path) -> str:
    return "".join(f"\n--- {n}\n" + (tmp / n).read_text()[-3000:] for n in ("stdout.txt", "stderr.txt")
                   if (tmp / n).exists())


def rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def rendered(path: Path) -> list[dict]:
    return [r for r in rows(path) if r["rendered"]]


def wait_until(cond, proc: subprocess.Popen, tmp: Path, timeout: float = 120.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        if proc.poll() is not None:
            pytest.fail(f"viewer exited ({proc.returncode}) while waiting for {what}{logs(tmp)}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}{logs(tmp)}")


def image_rect(size: tuple[int, int], window=WINDOW, panel=PANEL, inner: float = 0.6):
    """The central `inner` part of where the image sits in the window (rows, cols slices)."""
    aw, ah = window[0] - panel, window[1]
    iw, ih = size
    s = min(aw / iw, ah / ih)
    w, h = iw * s, ih * s
    x0, y0 = (aw - w) / 2, (ah - h) / 2
    m = (1 - inner) / 2
    return slice(int(y0 + m * h), int(y0 + (1 - m) * h)), slice(int(x0 + m * w), int(x0 + (1 - m) * w))


def load_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


# ---------------------------------------------------------------------------------------------- end to end
def test_screenshot_shows_render_and_panels(x_display, tmp_path):
    """`n2n-live --scene cornell-box --size 128 --exit-after-frames 30 --screenshot out.png` exits 0, and the
    screenshot holds the Cornell box (red and green walls) beside the ImGui panels."""
    proc = start_viewer(x_display, tmp_path, "--scene", "cornell-box", "--size", "128", "--exit-after-frames", "30",
                        "--screenshot", "out.png")
    try:
        rc = proc.wait(240)
    finally:
        stop(proc)
    assert rc == 0, logs(tmp_path)
    from PIL import Image

    from n2n_live.exr import read_exr
    from n2n_live.tonemap import T

    shot = load_png(tmp_path / "out.png")
    assert shot.shape == (WINDOW[1], WINDOW[0], 3)
    layers = read_exr(tmp_path / "out.exr")  # the frame's HDR buffers, saved with the screenshot
    assert {"", "noisy_a", "noisy_b", "albedo", "normal", "reference"} <= set(layers)
    assert all(layers[k].shape == (128, 128, 3) for k in ("", "noisy_a", "noisy_b", "albedo", "normal"))
    assert all(np.isfinite(layers[k]).all() for k in ("", "albedo", "normal"))

    # the render is the Cornell box seen from the front: the red wall on the left, the green wall on the right.
    # Judged on 4x4 block means of the tonemapped noisy input (one 8-spp pixel is too noisy to have a colour).
    # The green wall is a dark olive after T (about (53, 74, 26) of 255: albedo (0.11, 0.38, 0.08), less light),
    # so "green" means green well above blue and clearly above red; red is far above both.
    noisy = (T(np.nan_to_num(layers["noisy_a"])) * 255).reshape(32, 4, 32, 4, 3).mean(axis=(1, 3))
    red = (noisy[..., 0] > noisy[..., 1] + 40) & (noisy[..., 0] > noisy[..., 2] + 40)
    green = (noisy[..., 1] > noisy[..., 0] + 12) & (noisy[..., 1] > noisy[..., 2] + 25)
    assert red.mean() > 0.03 and green.mean() > 0.03, (red.mean(), green.mean())
    red_x, green_x = np.nonzero(red)[1].mean() / 32, np.nonzero(green)[1].mean() / 32  # mean column, 0..1
    assert red_x < 0.35 and green_x > 0.65, (red_x, green_x)  # not mirrored, no channels swapped

    # the window shows that frame (denoised, tonemapped, scaled to fit), whatever training has reached by now
    rows_, cols = image_rect((128, 128), inner=1.0)
    h, w = rows_.stop - rows_.start, cols.stop - cols.start
    expected = np.asarray(Image.fromarray((T(layers[""]) * 255 + 0.5).clip(0, 255).astype(np.uint8)).resize(
        (w, h), Image.BILINEAR)).astype(np.int16)
    inner = (slice(int(0.1 * h), int(0.85 * h)), slice(int(0.05 * w), int(0.95 * w)))  # not the status label
    on_screen = shot[rows_, cols][inner]
    assert on_screen.std() > 15  # a picture, not a flat colour
    assert np.abs(on_screen - expected[inner]).mean() < 8, np.abs(on_screen - expected[inner]).mean()

    # the ImGui panel on the right: white text on the dark style's blue headers, buttons and sliders
    panel = shot[:, WINDOW[0] - PANEL + 4:]
    pr, pg, pb = (panel[..., i] for i in range(3))
    text = ((pr > 200) & (pg > 200) & (pb > 200)).mean()
    ui_blue = ((pb > pr + 30) & (pb > 70)).mean()
    assert text > 0.005 and ui_blue > 0.02, (text, ui_blue)
    r, g = shot[..., 0], shot[..., 1]
    assert ((r[:, :60] < 40) & (g[:, :60] < 40)).mean() > 0.9  # the letterbox beside the square image is dark
    assert "frame time mean" in (tmp_path / "stdout.txt").read_text()


def test_keys_camera_training_pause_and_close(x_display, tmp_path):
    """Keys switch the mode (the screenshot changes), W moves the camera (the view changes), T pauses training
    (the step counter stops), and closing the window while training runs ends the process within 2 s."""
    stats = tmp_path / "stats.jsonl"
    shots = tmp_path / "shots"
    size = (64, 64)
    proc = start_viewer(x_display, tmp_path, "--scene", "cornell-box", "--size", "64", "--still", "--crop", "64",
                        "--stats-jsonl", str(stats), "--screenshot-dir", str(shots))
    x = X11(x_display)
    try:
        wait_until(lambda: len(rendered(stats)) >= 3, proc, tmp_path, 180, "the first frames")
        win = wait_until(lambda: x.find_window("n2n-live"), proc, tmp_path, 10, "the window")

        def shoot() -> np.ndarray:
            n = len(list(shots.glob("n2n-live-*.png"))) if shots.exists() else 0
            x.tap(win, "f12")
            wait_until(lambda: shots.exists() and len(list(shots.glob("n2n-live-*.png"))) > n, proc, tmp_path, 60, "F12")
            return load_png(sorted(shots.glob("n2n-live-*.png"), key=os.path.getmtime)[-1])[image_rect(size)]

        def frames_after(n_before: int, k: int = 2) -> list[dict]:
            return wait_until(lambda: (lambda r: r if len(r) >= n_before + k else None)(rendered(stats)),
                              proc, tmp_path, 60, f"{k} more frames")

        # a key switches the mode, and the picture with it
        denoised = shoot()
        x.tap(win, "4")
        wait_until(lambda: rows(stats)[-1]["mode"] == "normal", proc, tmp_path, 30, "mode 'normal'")
        frames_after(len(rendered(stats)), 1)
        normal = shoot()
        assert np.abs(normal - denoised).mean() > 15

        # moving the camera changes the view
        origin = rendered(stats)[-1]["origin"]
        x.key(win, "w", True)
        wait_until(lambda: rendered(stats)[-1]["origin"] != origin, proc, tmp_path, 30, "the camera to move")
        time.sleep(0.5)
        x.key(win, "w", False)
        moved_to = rendered(stats)[-1]["origin"]
        assert moved_to[2] < origin[2] - 1e-3  # the Cornell box camera looks down -z: W moves towards the box
        frames_after(len(rendered(stats)), 2)
        normal_moved = shoot()
        assert np.abs(normal_moved - normal).mean() > 3

        # T pauses training: the step counter stops (after the step in flight), T again resumes it
        wait_until(lambda: (rendered(stats)[-1]["train_steps"] or 0) >= 2, proc, tmp_path, 120, "training steps")
        x.tap(win, "t")
        wait_until(lambda: rows(stats)[-1]["paused"], proc, tmp_path, 30, "training to pause")
        n = len(rendered(stats))
        steps_a = frames_after(n, 3)[-1]["train_steps"]
        after = frames_after(len(rendered(stats)), 6)  # six more frames: a trainer ignoring the pause would step
        assert after[-1]["paused"] and after[-1]["train_steps"] == steps_a
        x.tap(win, "t")
        wait_until(lambda: rendered(stats)[-1]["train_steps"] > steps_a, proc, tmp_path, 60, "training to resume")

        # closing the window while training runs ends the process (the time is printed, not asserted: a loaded
        # machine is slow, not wrong)
        assert not rows(stats)[-1]["paused"]
        t0 = time.monotonic()
        x.close_window(win)
        rc = proc.wait(120)
        print(f"closed {time.monotonic() - t0:.2f} s after the close request")
        assert rc == 0, logs(tmp_path)
    finally:
        x.close()
        stop(proc)


def test_ctrl_c_stops(x_display, tmp_path):
    stats = tmp_path / "stats.jsonl"
    proc = start_viewer(x_display, tmp_path, "--scene", "cornell-box", "--size", "64", "--crop", "64",
                        "--stats-jsonl", str(stats))
    try:
        wait_until(lambda: len(rendered(stats)) >= 3 and (rendered(stats)[-1]["train_steps"] or 0) > 0,
                   proc, tmp_path, 180, "frames and training")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(120)
        print(f"stopped {time.monotonic() - t0:.2f} s after Ctrl-C")
    finally:
        stop(proc)
    assert rc == 130, logs(tmp_path)
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()


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
