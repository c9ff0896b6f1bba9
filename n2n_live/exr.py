"""Multi-layer OpenEXR files: `{layer: HxWxC float array}` in, the same out.

The layer "" is the main RGB image (channels R, G, B: what OIDN's tools and image viewers read); any other
layer `name` is stored as `name.R`, `name.G`, `name.B` (or `name.Y` for one channel).
"""
from __future__ import annotations

import gc
import os
import sys
import tempfile
from contextlib import contextmanager
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


@contextmanager
def _captured():
    """OpenEXR's core prints its complaints about a damaged file straight to file descriptors 1 and 2, before the one
    line a command prints: hold them back. Yields {fd: text}, filled on exit with what was printed meanwhile."""
    said: dict[int, str] = {}
    streams = {1: sys.stdout, 2: sys.stderr}
    saved = {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        bufs = {1: out, 2: err}
        for fd, stream in streams.items():
            stream.flush()
            saved[fd] = os.dup(fd)
            os.dup2(bufs[fd].fileno(), fd)
        try:
            yield said
        finally:
            gc.collect()  # a half-read file's destructor prints too
            for fd, stream in streams.items():
                stream.flush()
                os.dup2(saved[fd], fd)
                os.close(saved[fd])
                bufs[fd].seek(0)
                said[fd] = bufs[fd].read().decode(errors="replace")


def _read_channels(path: Path) -> dict[str, np.ndarray]:
    channels = OpenEXR.File(str(path), separate_channels=True).channels()
    return {name: np.asarray(ch.pixels, dtype=np.float32) for name, ch in channels.items()}


def read_exr(path) -> dict[str, np.ndarray]:
    """Read every layer as HxWxC float32. A missing, corrupt or truncated file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such EXR file")
    error = None
    with _captured() as said:
        try:
            flat = _read_channels(path)
        except Exception as e:  # OpenEXR raises RuntimeError/ValueError with varying texts for damaged files
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
    if error is not None:
        raise UserError(f"{path}: not a readable EXR file ({error})")
    sys.stdout.write(said[1])  # a readable file: pass on what was printed meanwhile (another thread's lines)
    sys.stderr.write(said[2])
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
