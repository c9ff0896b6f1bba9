"""The paper's losses. Each takes (pred, target) NCHW tensors and returns a scalar mean.

Which loss recovers which statistic of the noisy targets (Section 2): L2 -> mean, L1 -> median,
annealed L0 -> mode. L_HDR is L2 made relative, for HDR Monte Carlo targets with heavy-tailed noise.
"""
from __future__ import annotations

import torch

HDR_EPS = 0.01  # the paper's 0.01 in (f(x) + 0.01)^2
L0_EPS = 1e-8


def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((pred - target) ** 2)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(pred - target))


def l0_gamma(progress: float) -> float:
    """The paper's annealing schedule for the "L0" loss: gamma goes linearly from 2 to 0 over training."""
    return 2.0 * (1.0 - min(max(progress, 0.0), 1.0))


def l0_annealed(pred: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """(|f(x) - y| + 1e-8)^gamma: approaches the mode of the targets as gamma -> 0."""
    return torch.mean((torch.abs(pred - target) + L0_EPS) ** gamma)


def l_hdr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_HDR = (f(x) - y)^2 / (f(x) + 0.01)^2, the denominator's gradient stopped.

    The denominator uses the per-pixel luminance (mean over channels) of the detached output clamped at 0: with
    the raw output, a freshly initialised network (outputs near or below zero, where (f + 0.01)^2 vanishes) falls
    into a degenerate solution with huge outputs (docs/design-notes.md). Clamping keeps the loss relative to the
    predicted brightness without that singularity; its minimiser is still the mean of the noisy targets, because
    the weight does not depend on y.
    """
    denom = torch.clamp(pred.detach(), min=0.0).mean(dim=1, keepdim=True) + HDR_EPS
    return torch.mean((pred - target) ** 2 / denom**2)


def masked_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L2 over valid pixels only (Bernoulli noise: the target's missing pixels carry no information)."""
    mask = mask.expand_as(pred).to(pred.dtype)
    return torch.sum(mask * (pred - target) ** 2) / torch.clamp(mask.sum(), min=1.0)


LOSSES = {"l2": l2, "l1": l1, "l0": l0_annealed, "l_hdr": l_hdr, "masked_l2": masked_l2}
"""Every loss by name: the experiments' RunSpec.loss and the trainers look them up here."""
