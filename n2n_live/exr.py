"""Multi-layer OpenEXR files: `{layer: HxWxC float array}` in, the same out.

The layer "" is the main RGB image (channels R, G, B: what OIDN's tools and image viewers read); any other
layer `name` is stored as `name.R`, `name.G`, `name.B` (or `name.Y` for one channel).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR

from .errors import UserError
from .io_utils import atomic_path

_RGB = ("R", "G", "B")


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().float().cpu().numpy()
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a[..., None] if a.ndim == 2 else a


def write_exr(path, layers: dict, half: bool = False) -> None:
    """Write layers atomically (ZIP compression; float32 unless `half`)."""
    channels = {}
    for layer, image in layers.items():
        a = _np(image)
        if half:
            a = a.astype(np.float16)
        names = _RGB if a.shape[-1] == 3 else ("Y",) if a.shape[-1] == 1 else tuple(f"C{i}" for i in range(a.shape[-1]))
        for i, c in enumerate(names):
            channels[f"{layer}.{c}" if layer else c] = np.ascontiguousarray(a[..., i])
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp:
        OpenEXR.File(header, channels).write(str(tmp))


def read_exr(path) -> dict[str, np.ndarray]:
    """Read every layer as HxWxC float32. A missing, corrupt or truncated file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such EXR file")
    try:
        channels = OpenEXR.File(str(path), separate_channels=True).channels()
        flat = {name: np.asarray(ch.pixels, dtype=np.float32) for name, ch in channels.items()}
    except Exception as e:  # OpenEXR raises RuntimeError/ValueError with varying texts for damaged files
        raise UserError(f"{path}: not a readable EXR file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    groups: dict[str, dict[str, np.ndarray]] = {}
    for name, pix in flat.items():
        layer, _, c = name.rpartition(".")
        groups.setdefault(layer, {})[c] = pix
    layers = {}
    for layer, chans in groups.items():
        if all(c in chans for c in _RGB):
            layers[layer] = np.stack([chans[c] for c in _RGB], axis=-1)
        else:
            layers[layer] = np.stack([chans[c] for c in sorted(chans)], axis=-1)
    return layers


def read_rgb(path, layer: str = "") -> np.ndarray:
    """The RGB image of one layer (main by default); a file without it is a UserError naming the file."""
    layers = read_exr(path)
    if layer not in layers or layers[layer].shape[-1] < 3:
        have = ", ".join(repr(k) for k in layers) or "none"
        raise UserError(f"{path}: no RGB channels{' in layer ' + repr(layer) if layer else ''} (layers: {have})")
    return layers[layer][..., :3]
