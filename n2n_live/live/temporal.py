"""Temporal reuse: each noisy stream accumulates over frames in its own history, reprojected with the camera.

    pair (noisy A, noisy B, albedo, normal, position, each stream's shape index) + camera
      -> reproject each stream's last history into this view (known camera motion, per-pixel world position)
      -> reject history where the geometry disagrees (disocclusion: plane-distance and normal tests, off-screen,
         silhouette pixels, and a shape index other than the one this stream's own samples saw)
      -> hist_X = lerp(reprojected hist_X, noisy X, 1/n), n = frames accumulated per stream, clamped at
         `max_history`; when the renderer gave each stream's directly seen emission, the history holds only what
         surfaces reflect, and this frame's own emission is added back: a light's edge never lags the camera
      -> a TemporalPair: the same fields as a FramePair, colours replaced by the histories, plus `history` (n per
         stream) and `raw` (this frame's own pair, which the default network reads beside the history and trains
         towards)

History A only ever receives image A's samples and history B only image B's: the two stay independent noisy
estimates of the same image, which is what keeps Noise2Noise valid (test_temporal checks their noise is
uncorrelated). The rejection tests read only geometry (position, normal) and each stream's own shape index,
never colour, for the same reason.
Histories reset on a new scene (`reset()`), on a new frame size, and on a camera jump (too few pixels survive).

Reprojection itself (camera geometry, disocclusion tests) is n2n_live/reprojection.py, shared with the flicker
measurement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..features import sanitize
from ..reprojection import PLANE_TOL, Geometry, reproject


@dataclass
class TemporalPair:
    """A FramePair whose colours are the per-stream histories. `history`: frames accumulated per pixel and stream,
    (2, H, W, 1) [A, B]; `raw`: the frame's own FramePair (what was rendered this frame)."""

    noisy_a: torch.Tensor
    noisy_b: torch.Tensor
    albedo: torch.Tensor
    normal: torch.Tensor
    frame: int
    seeds: tuple
    render_ms: float
    history: torch.Tensor
    position: torch.Tensor | None = None
    raw: object = None


class TemporalAccumulator:
    """Per-stream histories of the noisy pair (see the module docstring). `update(pair, camera)` once per frame.

    max_history: the clamp on n (history weight at most 1 - 1/max_history: old samples fade, so lighting
    changes and reprojection blur do not linger). 4 by default, a balance: every bilinear reprojection blurs the
    history a little and glossy shading lags, so long histories cost more than their extra samples bring, while
    short ones flicker more. reset_below: if fewer pixels than this fraction keep their history, the camera
    jumped: everything starts afresh.
    """

    def __init__(self, max_history: int = 4, plane_tol: float = PLANE_TOL, normal_cos: float = 0.9,
                 reset_below: float = 0.25, filter: str = "bilinear", clamp: bool = False):
        if max_history < 1:
            raise ValueError(f"max_history must be >= 1, got {max_history}")
        self.max_history = int(max_history)
        self.plane_tol, self.normal_cos, self.reset_below = float(plane_tol), float(normal_cos), float(reset_below)
        self.filter = filter
        self.clamp = bool(clamp)
        self._prev: tuple[list[Geometry], list[torch.Tensor]] | None = None  # per stream
        self.resets = 0  # camera jumps detected
        self.valid_fraction = 0.0  # of the last update

    def reset(self) -> None:
        """Forget the histories (a new scene)."""
        self._prev = None

    def update(self, pair, camera) -> TemporalPair:
        position = getattr(pair, "position", None)
        if position is None:
            raise ValueError("temporal reuse needs the renderer's position AOV (FramePair.position)")
        shapes = getattr(pair, "shape", None)  # (2, H, W): each stream's own shape index, from its own samples
        geoms = [Geometry(camera, position.float(), pair.normal.float(),
                          None if shapes is None else shapes[k].float()) for k in (0, 1)]
        raws = [sanitize(c.float()).clamp(min=0.0) for c in (pair.noisy_a, pair.noisy_b)]
        emission = getattr(pair, "emission", None)
        emitted = [sanitize(e.float()).clamp(min=0.0) for e in emission] if emission is not None else [0.0, 0.0]
        raws = [(r - e).clamp(min=0.0) for r, e in zip(raws, emitted)]
        states = [torch.cat([r, torch.ones_like(r[..., :1])], dim=-1) for r in raws]  # colour | n, per stream
        valid_fraction = 0.0
        if self._prev is not None and self._prev[0][0].shape == geoms[0].shape:
            carried = [self._carry(prev_state, prev_geom, geom, raw)
                       for prev_state, prev_geom, geom, raw in zip(self._prev[1], self._prev[0], geoms, raws)]
            valid_fraction = sum(float(valid.float().mean()) for _, valid in carried) / 2
            if valid_fraction >= self.reset_below:
                states = [self._accumulate(old, valid, fresh) for (old, valid), fresh in zip(carried, states)]
            else:
                self.resets += 1
        self.valid_fraction = valid_fraction
        self._prev = (geoms, states)
        (ha, na), (hb, nb) = ((st[..., :3] + e, st[..., 3:4]) for st, e in zip(states, emitted))
        return TemporalPair(ha, hb, pair.albedo, pair.normal, pair.frame, getattr(pair, "seeds", ()),
                            getattr(pair, "render_ms", float("nan")), torch.stack([na, nb]), position, pair)

    def _carry(self, prev_state, prev_geom, geom, raw):
        """One stream's history (colour | n) brought into this view, clamped by its own raw frame when asked."""
        old, valid = reproject(prev_state, prev_geom, geom, self.plane_tol, self.normal_cos, self.filter)
        if self.clamp:
            old = torch.cat([neighbourhood_clamp(old[..., :3], raw), old[..., 3:]], dim=-1)
        return old, valid

    def _accumulate(self, old, valid, fresh):
        n = torch.where(valid, torch.clamp(old[..., 3] + 1.0, max=float(self.max_history)),
                        torch.ones_like(old[..., 3]))[..., None]
        alpha = 1.0 / n
        return torch.cat([(1 - alpha) * old[..., :3] + alpha * fresh[..., :3], n], dim=-1)


def neighbourhood_clamp(history: torch.Tensor, raw: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Clamp a reprojected HWC history into the per-channel [min, max] of its own stream's raw frame over a
    (2 radius + 1)^2 neighbourhood (temporal anti-aliasing's clamp): where the history lags the image (an edge
    moved, a light's border resampled) this frame's samples bound it; elsewhere noisy bounds are wide. Reads one
    stream only, so A and B stay independent."""
    x = raw.permute(2, 0, 1)[None]
    k = 2 * radius + 1
    hi = F.max_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)
    lo = -F.max_pool2d(F.pad(-x, (radius,) * 4, mode="replicate"), k, stride=1)
    return torch.minimum(torch.maximum(history, lo[0].permute(1, 2, 0)), hi[0].permute(1, 2, 0))


def noise_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two residual images (any shape), for the independence checks."""
    a = np.asarray(x.detach().double().cpu()).ravel()
    b = np.asarray(y.detach().double().cpu()).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))
