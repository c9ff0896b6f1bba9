"""Comparison methods of Table 1 and Section 3.4, each mapping a corrupted (3, H, W) or (1, H, W) tensor to an
estimate of the clean image.

- Gaussian noise: BM3D (Dabov et al. 2007), the `bm3d` package, told the true sigma.
- Poisson noise: the Anscombe transform turns Poisson counts into approximately unit-variance Gaussian data,
  BM3D denoises that, and the closed-form approximation of the exact unbiased inverse (Makitalo & Foi 2011)
  maps back. The plain algebraic inverse would be biased at low counts.
- MRI: the zero-filled inverse FFT (`mri.zero_filled`).
- Text and impulse noise: a median filter, the classic remedy for outliers (the paper shows no baseline).
Bernoulli's comparison in the paper is Deep Image Prior, a per-image optimisation that is not reimplemented here.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().permute(1, 2, 0).numpy().astype(np.float64)


def _to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)


def bm3d_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D of a (3, H, W) image with noise standard deviation `sigma` (in the image's own units).

    Colour images go through `bm3d_rgb` (opponent colour space), the CBM3D setting. One thread: the bm3d package
    says results vary slightly from run to run otherwise (the order of its additions), and a cached baseline must
    be the same number every time; on a small CPU it also leaves the other core to a network in training.
    """
    import bm3d

    profile = bm3d.BM3DProfile()
    profile.num_threads = 1
    z = _to_hwc(noisy)
    if z.shape[2] == 1:
        return _to_chw(np.asarray(bm3d.bm3d(z[..., 0], sigma_psd=sigma, profile=profile))[..., None])
    return _to_chw(bm3d.bm3d_rgb(z, sigma_psd=sigma, profile=profile))


def bm3d_gaussian(noisy: torch.Tensor, sigma255: float) -> torch.Tensor:
    """BM3D for additive white Gaussian noise of standard deviation sigma255/255."""
    return bm3d_denoise(noisy, sigma255 / 255.0)


# ---------------------------------------------------------------------------------------------------------
# Poisson: Anscombe transform + BM3D + exact unbiased inverse.

def anscombe(z):
    """Variance stabilisation of Poisson counts: 2 sqrt(z + 3/8) has variance ~1 for counts above a few."""
    return 2.0 * np.sqrt(np.maximum(z, 0.0) + 3.0 / 8.0)


def inverse_anscombe_unbiased(d):
    """Makitalo & Foi (2011), closed-form approximation of the exact unbiased inverse:

    I(D) = D^2/4 + sqrt(3/2)/4 D^-1 - 11/8 D^-2 + 5/8 sqrt(3/2) D^-3 - 1/8.

    D is clipped at A(0) = 2 sqrt(3/8), the transform of a zero count, where the expansion is still sane.
    """
    d = np.maximum(np.asarray(d, dtype=np.float64), 2.0 * math.sqrt(3.0 / 8.0))
    s = math.sqrt(1.5)
    return np.maximum(0.25 * d**2 + 0.25 * s / d - 1.375 / d**2 + 0.625 * s / d**3 - 0.125, 0.0)


def anscombe_bm3d(noisy: torch.Tensor, lam: float) -> torch.Tensor:
    """Denoise y = Poisson(lambda x)/lambda: back to counts, stabilise, BM3D at sigma 1, invert, rescale.

    BM3D is run on the transformed image divided by its peak so that it sees data in its usual range.
    """
    counts = np.maximum(_to_hwc(noisy) * lam, 0.0)
    t = anscombe(counts)
    scale = max(float(t.max()), 1e-6)
    d = np.asarray(bm3d_denoise(_to_chw(t / scale), 1.0 / scale).permute(1, 2, 0).numpy(), np.float64) * scale
    return _to_chw(inverse_anscombe_unbiased(d) / lam)


# ---------------------------------------------------------------------------------------------------------
# Outliers (text, impulse): per-channel median filter.

def median_filter(noisy: torch.Tensor, size: int = 5) -> torch.Tensor:
    from scipy.ndimage import median_filter as mf

    return _to_chw(mf(_to_hwc(noisy), size=(size, size, 1), mode="reflect"))
