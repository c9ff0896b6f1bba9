"""What the viewer tests share: X11 input events, starting and stopping the viewer, its logs and screenshots
(the private X server is conftest's x_display fixture)."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import default_sigint


REPO = Path(__file__).resolve().parents[1]
WINDOW = (1280, 720)  # the viewer's default window size
PANEL = 400  # the side panel's width at that size (panels.SidePanel.width)


# ---------------------------------------------------------------------------------------------- X server
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
