"""Screenshots (F12, --screenshot): the window as PNG (glReadPixels) and the HDR buffers as a multi-layer EXR."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..exr import write_exr
from ..io_utils import atomic_path
from .gl_display import read_framebuffer

DEFAULT_FOLDER = "out/screenshots"


def save_png(path, pixels: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def exr_layers(result, reference=None) -> dict:
    """The frame's HDR buffers: main RGB = the denoised image (average of the pair), plus named layers."""
    pair = result.pair
    layers = {"": result.denoised, "noisy_a": pair.noisy_a, "noisy_b": pair.noisy_b,
              "albedo": pair.albedo, "normal": pair.normal}
    if reference is not None:
        layers["reference"] = reference
    return layers


def save_screenshot(png_path, pixels: np.ndarray, result=None, reference=None) -> list[Path]:
    """Write the PNG and, when a frame exists, `<same name>.exr` beside it. Returns the written paths."""
    png_path = Path(png_path)
    save_png(png_path, pixels)
    written = [png_path]
    if result is not None:
        exr_path = png_path.with_suffix(".exr")
        write_exr(exr_path, exr_layers(result, reference))
        written.append(exr_path)
    return written


def take_screenshots(v, fb_w: int, fb_h: int) -> None:
    """Serve the viewer's pending requests from the back buffer just drawn (call before swapping)."""
    pixels = read_framebuffer(fb_w, fb_h)
    requests, v.screenshot_requests = v.screenshot_requests, []
    for path in dict.fromkeys(requests):
        path = path or next_screenshot_path(v.args.screenshot_dir or DEFAULT_FOLDER, v.rendered)
        # the reference layer is what the 'reference' mode shows: the progressive reference, else the pair average
        reference = v.images.reference(v) if v.result is not None else None
        written = v.attempt("screenshot", save_screenshot, path, pixels, v.result, reference)
        if written:
            names = " and ".join(str(p) for p in written)
            v.messages.info(f"wrote {names}")
            print(f"n2n-live: wrote {names}", flush=True)


def next_screenshot_path(folder, frame: int) -> Path:
    """An unused name for an F12 screenshot: n2n-live-<frame>.png, then -1, -2, ..."""
    folder = Path(folder)
    for i in range(100000):
        p = folder / f"n2n-live-{frame:05d}{'' if i == 0 else f'-{i}'}.png"
        if not p.exists():
            return p
    return folder / "n2n-live.png"
