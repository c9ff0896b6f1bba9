"""Image quality: PSNR on tonemapped, clipped values for Monte Carlo frames (as in the paper)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .tonemap import T


def psnr(a, b, peak: float = 1.0) -> float:
    """PSNR in dB of a against b (torch or numpy, any shape); both are clipped to [0, peak]."""
    a = a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float32)
    b = b.detach().float().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, np.float32)
    mse = float(np.mean((np.clip(a, 0, peak) - np.clip(b, 0, peak)) ** 2, dtype=np.float64))
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def psnr_hdr(x, reference, exposure: float = 1.0) -> float:
    """PSNR of linear HDR images after the tonemap T, the paper's measure for Monte Carlo denoising."""
    return psnr(T(x, exposure), T(reference, exposure))
