"""Network input assembly for Monte Carlo frames: n = 9 channels in [-0.5, 0.5].

One place decides the encoding, so the live trainer, the batch trainer and the denoise command agree.
"""
from __future__ import annotations

import torch

from .models import linear_channels
from .tonemap import T

N_FEATURES = 9
N_TEMPORAL = N_FEATURES + 1  # + the history feature
N_TEMPORAL_RAW = N_FEATURES + 4  # + the history feature and this frame's raw colour
N_INPUTS = (N_FEATURES, N_TEMPORAL, N_TEMPORAL_RAW)  # every n_in network_input fills


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


def history_feature(history: torch.Tensor) -> torch.Tensor:
    """Frames accumulated per pixel (HW1/NHW1 or HW/NHW, >= 1) -> (N, 1, H, W) in (-0.5, 0.5]: 1/sqrt(n) - 0.5, the
    relative noise level of the accumulated colour (1 frame: 0.5; many frames: towards -0.5)."""
    h = torch.as_tensor(history, dtype=torch.float32)
    if h.dim() == 2 or (h.dim() == 3 and h.shape[-1] != 1):
        h = h.unsqueeze(-1)
    return to_nchw(h).clamp(min=1.0).rsqrt() - 0.5


def stream_emission(pair) -> torch.Tensor | None:
    """Each stream's directly seen emission, (2, H, W, 3) [A, B], of a FramePair or of a TemporalPair's own frame;
    None when the renderer gave none (renderer/tracer.py)."""
    emission = getattr(pair, "emission", None)
    return emission if emission is not None else getattr(getattr(pair, "raw", None), "emission", None)


def network_input(net, colour: torch.Tensor, albedo: torch.Tensor, normal: torch.Tensor, exposure: float = 1.0,
                  history: torch.Tensor | None = None, raw: torch.Tensor | None = None,
                  emission: torch.Tensor | None = None) -> torch.Tensor:
    """The whole NCHW input `net` takes: the 9 features (+ the history feature when `net.n_in` is 10 or more)
    (+ T(raw) - 0.5 when the network also reads this frame's raw colour beside the history, `net.n_in` 13) (+ the
    linear colour, then the linear raw colour, when the network filters them, models.linear_channels). Without a
    history (a single image, e.g. n2n-denoise) the history feature is that of one frame and `raw` is `colour`.
    A kernel net that keeps emitters out of its filter (`net.emission`) takes the stream's directly seen emission
    (HWC/NHWC linear) last; an image without one (a file) counts as emitting nothing."""
    x = assemble(colour, albedo, normal, exposure)
    parts = [x]
    n_in = getattr(net, "n_in", N_FEATURES)
    if n_in > N_FEATURES:
        if history is None:
            history = torch.ones(x.shape[0], x.shape[2], x.shape[3], device=x.device)
        hist = history_feature(history.to(x.device))
        parts.append(hist.expand(x.shape[0], 1, *x.shape[2:]))
    reads_raw = n_in == N_TEMPORAL_RAW
    raw = colour if raw is None else raw
    if reads_raw:
        parts.append(T(to_nchw(sanitize(raw)), exposure) - 0.5)
    if linear_channels(net):
        parts.append(target(colour))
        if reads_raw:
            parts.append(target(raw))
    if getattr(net, "emission", False):
        emitted = torch.zeros_like(x[:, :3]) if emission is None else target(torch.as_tensor(emission).to(x.device))
        parts.append(emitted.expand_as(x[:, :3]))
    return torch.cat(parts, dim=1) if len(parts) > 1 else x
