"""Network inference on images of any size: whole when they fit in a tile, else overlapping tiles blended with
linear ramps, so memory stays bounded (n2n-denoise, n2n-train's validation, the live Denoiser)."""
from __future__ import annotations

import torch

from .models.unet import run_padded


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weights: linear ramps over `overlap` pixels on sides that meet another tile."""
    w = torch.ones(n)
    r = min(overlap, n // 2)
    if r > 0:
        ramp = torch.arange(1, r + 1, dtype=torch.float32) / (r + 1)
        if not at_start:
            w[:r] = ramp
        if not at_end:
            w[n - r:] = ramp.flip(0)
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


@torch.no_grad()
def denoise_tiled(net: torch.nn.Module, x: torch.Tensor, tile: int | None = 512, overlap: int = 32,
                  amp: bool = False) -> torch.Tensor:
    """Network output for an NCHW input of any size: whole if it fits in `tile` (or `tile` is None), else
    overlapping tiles.

    Tiles are `tile` pixels square (a multiple of 32 avoids padding), overlap by `overlap` pixels and are
    blended with linear ramps; the output is float32 on x's device.
    """
    if tile is not None and overlap >= tile:
        raise ValueError(f"tile overlap ({overlap}) must be smaller than the tile ({tile})")
    net.eval()
    n, _, h, w = x.shape

    def run(t):
        with torch.autocast(t.device.type, dtype=torch.bfloat16, enabled=amp):
            return run_padded(net, t).float()

    if tile is None or (h <= tile and w <= tile):
        return run(x)
    out = None
    weight = torch.zeros(1, 1, h, w, device=x.device)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    for y in ys:
        for xx in xs:
            th, tw = min(tile, h - y), min(tile, w - xx)
            y_out = run(x[:, :, y:y + th, xx:xx + tw])
            if out is None:
                out = torch.zeros(n, y_out.shape[1], h, w, device=x.device)
            wy = _ramp(th, overlap, y == 0, y + th >= h).to(x.device)
            wx = _ramp(tw, overlap, xx == 0, xx + tw >= w).to(x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, y:y + th, xx:xx + tw] += y_out * wt
            weight[:, :, y:y + th, xx:xx + tw] += wt
    return out / weight
