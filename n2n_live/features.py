"""Network input assembly for Monte Carlo frames: n = 9 channels in [-0.5, 0.5].

One place decides the encoding, so the live trainer, the batch trainer and the denoise command agree.
"""
from __future__ import annotations

import torch

from .tonemap import T

N_FEATURES = 9


def sanitize(x: torch.Tensor) -> torch.Tensor:
    """Replace NaN by 0 and +-Inf by 0 (a firefly sample with no usable value), in a new tensor."""
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    """HWC or NHWC -> NCHW."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    return x.permute(0, 3, 1, 2)


def assemble(colour: torch.Tensor, albedo: torch.Tensor, normal: torch.Tensor, exposure: float = 1.0) -> torch.Tensor:
    """Tonemapped colour, albedo and normal (HWC or NHWC, linear) -> (N, 9, H, W) network input.

    Colour goes through T (inputs are tonemapped, outputs stay linear HDR); albedo in [0, 1] and normals in
    [-1, 1] are shifted/scaled into [-0.5, 0.5] like the colour.
    """
    colour, albedo, normal = (to_nchw(sanitize(t)) for t in (colour, albedo, normal))
    return torch.cat([T(colour, exposure) - 0.5, albedo.clamp(0, 1) - 0.5, 0.5 * normal.clamp(-1, 1)], dim=1)


def target(colour: torch.Tensor) -> torch.Tensor:
    """Linear HDR training target (HWC/NHWC -> NCHW), NaN/Inf replaced so that one firefly cannot poison a step."""
    return to_nchw(sanitize(colour)).clamp(min=0.0)
