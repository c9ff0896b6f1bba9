"""Reading 8- and 16-bit images (PNG, JPEG, BMP, TIFF) at their full precision, with one-line errors.

Pillow decodes 16-bit RGB PNGs to 8 bits and turns 16-bit greyscale into values Pillow's RGB conversion saturates,
so 16-bit PNGs go through pypng; everything else through Pillow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError

LDR_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, what Pillow's "L" conversion uses


def _png16(path: Path) -> np.ndarray | None:
    """HxWxC float32 in [0, 1] for a 16-bit PNG; None for any other PNG."""
    import png
    from PIL import Image

    reader = png.Reader(filename=str(path))
    width, height, rows, info = reader.asDirect()  # rows: a generator, nothing decoded yet
    if info["bitdepth"] != 16:
        return None
    if width * height > 2 * Image.MAX_IMAGE_PIXELS:  # Pillow's own limit against decompression bombs
        raise Image.DecompressionBombError(f"{width}x{height} pixels")
    planes = info["planes"]
    a = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, planes)
    return a.astype(np.float32) / 65535.0


def _pillow(path: Path, channels: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode.startswith("I;16"):  # 16-bit greyscale (PNG, TIFF)
            return np.asarray(im, np.float32)[..., None] / 65535.0
        if im.mode == "I":
            return np.asarray(im, np.float32)[..., None] / float(2**31 - 1)
        if im.mode == "F":
            return np.asarray(im, np.float32)[..., None]
        return np.asarray(im.convert("L" if channels == 1 else "RGB"), np.float32) / 255.0


def read_ldr(path, channels: int = 3) -> np.ndarray:
    """HxWx`channels` float32 in [0, 1] (`channels` 3: RGB, 1: luminance); alpha is dropped. A missing, damaged,
    unsupported or absurdly large file is a UserError naming it."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() not in LDR_SUFFIXES:
        raise UserError(f"{path}: unsupported image type {path.suffix or '(none)'} (use {', '.join(LDR_SUFFIXES)})")
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    try:
        a = _png16(path) if path.suffix.lower() == ".png" else None
        a = _pillow(path, channels) if a is None else a
    except Image.DecompressionBombError as e:
        raise UserError(f"{path}: refused: too many pixels to decode safely ({e})") from None
    except Exception as e:  # Pillow and pypng raise many types for damaged files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: not a readable image ({reason})") from None
    a = a[..., None] if a.ndim == 2 else a
    a = np.clip(a[..., :3] if a.shape[-1] >= 3 else a[..., :1], 0.0, 1.0)
    if channels == 1:
        return (a @ LUMA)[..., None] if a.shape[-1] == 3 else a
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a
