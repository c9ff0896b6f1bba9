"""The paper's tonemapping operator T and its inverse (one transfer function for data, training, display)."""
from __future__ import annotations

import numpy as np
import torch

GAMMA = 2.2


def T(v, exposure: float = 1.0):
    """T(v) = (v / (1 + v))^(1/2.2) for v >= 0 (negative radiance, e.g. from a network, maps to 0).

    Works on torch tensors and numpy arrays; maps [0, inf) onto [0, 1).
    """
    if isinstance(v, torch.Tensor):
        v = torch.clamp(v * exposure, min=0.0)
        return (v / (1.0 + v)) ** (1.0 / GAMMA)
    v = np.maximum(np.asarray(v, dtype=np.float32) * exposure, 0.0)
    return (v / (1.0 + v)) ** (1.0 / GAMMA)


def T_inverse(t, exposure: float = 1.0):
    """Inverse of T on [0, 1): v = t^2.2 / (1 - t^2.2) / exposure."""
    if isinstance(t, torch.Tensor):
        p = torch.clamp(t, 0.0, 1.0 - 1e-6) ** GAMMA
    else:
        p = np.clip(np.asarray(t, dtype=np.float32), 0.0, 1.0 - 1e-6) ** GAMMA
    return p / (1.0 - p) / exposure
