"""A private X server (Xvfb + Mesa) for running the real viewer window without a display: the window tests and the
soak benchmark start one the same way."""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

INSTALL_HINT = "apt-get install xvfb libgl1-mesa-dri libglx-mesa0"


def start_xvfb(screen: str = "1280x800x24", timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """(the Xvfb process, its display name ':N'). Xvfb picks a free display number and writes it to a pipe
    (-displayfd), so parallel runs never collide. RuntimeError when Xvfb is missing or does not start."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise RuntimeError(f"Xvfb is not installed ({INSTALL_HINT})")
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", screen, "-nolisten", "tcp", "-noreset"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    number, deadline = b"", time.monotonic() + timeout
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        if select.select([r], [], [], 1.0)[0]:
            chunk = os.read(r, 16)
            if not chunk:
                break
            number += chunk
    os.close(r)
    if not number.strip():
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number.decode().strip()}"


def stop_xvfb(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
