"""Screenshots: the window as PNG (glReadPixels) and the frame's HDR buffers as one multi-layer EXR."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..exr import write_exr
from ..io_utils import atomic_path


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
