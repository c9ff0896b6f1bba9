"""Temporal stability (flicker) of a sequence of frames: what users notice before they notice PSNR.

    flicker_t(X) = RMS over pixels of ( T(X_t) - T(reprojected X_{t-1}) )

on tonemapped values, over the pixels whose previous view saw the same surface (reprojection.reproject's geometry
tests; a still camera compares pixel to pixel). Computed for the network's output, OIDN's and the input (the pair
average) on the same frames, and for the reference when one exists for both frames: the reference's figure is
the floor that reprojection (resampling, view-dependent shading) leaves, so X's flicker above it is X's own.
"OIDN, same samples" (on the temporal histories) runs only on evaluated frames, so its flicker exists only where two
frames in a row were evaluated.
"""
from __future__ import annotations

import math

import torch

from ..reprojection import Geometry, reproject
from ..tonemap import T


class FlickerMeter:
    """`update(camera, position, normal, images) -> {name: flicker or NaN}`, once per frame, in frame order.

    `images` maps a name (e.g. 'denoised', 'oidn', 'input', 'reference') to an HWC linear image or None. The first
    frame, a frame without position AOV, a new frame size, or an image missing on the previous frame gives NaN.
    """

    def __init__(self, exposure: float = 1.0):
        self.exposure = float(exposure)
        self._prev: tuple[Geometry, dict[str, torch.Tensor]] | None = None

    def reset(self) -> None:
        self._prev = None

    def update(self, camera, position, normal, images: dict) -> dict[str, float]:
        out = {name: float("nan") for name in images}
        if position is None:
            self._prev = None
            return out
        geom = Geometry(camera, position.float().cpu(), normal.float().cpu())
        mapped = {k: T(v.detach().float().cpu(), self.exposure).clamp(0, 1) for k, v in images.items() if v is not None}
        prev = self._prev
        self._prev = (geom, mapped)
        if prev is None or prev[0].shape != geom.shape:
            return out
        names = [k for k in mapped if k in prev[1]]
        if not names:
            return out
        stacked = torch.cat([prev[1][k] for k in names], dim=-1)
        old, valid = reproject(stacked, prev[0], geom)
        if not bool(valid.any()):
            return out
        for i, k in enumerate(names):
            d = (mapped[k] - old[..., 3 * i:3 * i + 3])[valid]
            out[k] = math.sqrt(float((d * d).mean()))
        return out
