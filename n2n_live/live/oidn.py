"""Intel Open Image Denoise (pyoidn, CPU) as a production baseline; cleanly absent when pyoidn is not installed.

OIDN's RT filter with albedo and normal, HDR colour, quality 'high'. It is compared on two inputs (`denoise_pair`):
this frame's raw pair ("OIDN, this frame") and, under temporal reuse, the two per-stream histories the network
itself reads ("OIDN, same samples").
"""
from __future__ import annotations

import importlib.util

import numpy as np
import torch

from ..errors import UserError
from ..features import sanitize


def available() -> bool:
    """True when pyoidn can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("pyoidn") is not None
    except (ImportError, ValueError):
        return False


def _np(t) -> np.ndarray:
    """float32 numpy with NaN/Inf replaced by 0 (features.sanitize)."""
    return np.ascontiguousarray(sanitize(torch.as_tensor(t).detach().float().cpu()).numpy())


def denoise(colour, albedo=None, normal=None, quality: str = "high") -> torch.Tensor:
    """HWC linear colour (+ optional albedo in [0,1], normal in [-1,1]) -> denoised HWC float32 CPU tensor."""
    try:
        import pyoidn
    except ImportError:
        raise UserError("OIDN comparison needs pyoidn (pip install 'n2n-live[oidn]')") from None
    c = np.maximum(_np(colour), 0.0)
    a = None if albedo is None else np.clip(_np(albedo), 0.0, 1.0)
    n = None if normal is None else np.clip(_np(normal), -1.0, 1.0)
    out = pyoidn.denoise(c, a, n, hdr=True, quality=quality)
    return torch.from_numpy(np.asarray(out, np.float32))


def denoise_pair(pair, quality: str = "high") -> torch.Tensor:
    """OIDN on the average of a pair's two noisy images, with the pair's albedo and normal: a FramePair gives
    "OIDN, this frame", a TemporalPair (live/temporal.py: the two histories) "OIDN, same samples"."""
    return denoise(0.5 * (pair.noisy_a.float() + pair.noisy_b.float()), pair.albedo, pair.normal, quality)
