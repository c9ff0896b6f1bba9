"""The viewer in a real GLFW window: Xvfb + Mesa (llvmpipe) when there is no screen.

The tests start their own Xvfb (so that nothing pops up on a desktop and synthetic key events reach only our
window); they skip only when Xvfb is missing and no display is set. Keys and the window's close button are driven
through X11 itself (XSendEvent, the same events a window manager or xdotool would send), so nothing but libX11 is
needed; assertions are on pixels of the screenshots and on the per-frame stats log.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from viewer_harness import WINDOW, PANEL, X11, start_viewer, logs, rows, rendered, wait_until, image_rect, load_png, stop

pytestmark = pytest.mark.window


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


@pytest.mark.parametrize("sig,code,line", [(signal.SIGINT, 130, "n2n-live: interrupted"),
                                           (signal.SIGTERM, 143, "n2n-live: interrupted (SIGTERM)")])
def test_ctrl_c_and_sigterm_stop(x_display, tmp_path, sig, code, line):
    """Ctrl-C, and SIGTERM alike (timeout, systemd): the frame loop ends at the next frame, one line, exit code."""
    stats = tmp_path / "stats.jsonl"
    proc = start_viewer(x_display, tmp_path, "--scene", "cornell-box", "--size", "64", "--crop", "64",
                        "--stats-jsonl", str(stats))
    try:
        wait_until(lambda: len(rendered(stats)) >= 3 and (rendered(stats)[-1]["train_steps"] or 0) > 0,
                   proc, tmp_path, 180, "frames and training")
        t0 = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(120)
        print(f"stopped {time.monotonic() - t0:.2f} s after {sig.name}")
    finally:
        stop(proc)
    assert rc == code, logs(tmp_path)
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err and [x for x in err.splitlines() if "interrupted" in x] == [line], logs(tmp_path)
