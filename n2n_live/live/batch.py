"""What one training step of the online trainer sees, as functions of their arguments alone (no thread, no lock):

    frame_tensors(net, A, B, albedo, normal, ...)  ->  both directions of a frame, full size: input A -> target B
        (index 0) and input B -> target A (index 1), or A -> reference and B -> reference for clean targets
    training_batch(frame, k, crop, rng)  ->  direction k on a random square crop: one step's (input, target)

Inputs come from the pair or from its temporal histories (the history length is then an extra channel,
features.network_input); targets are linear HDR with NaN/Inf replaced (features.target).
"""
from __future__ import annotations

import random

import torch

from .. import features


def frame_tensors(net, colour_a, colour_b, albedo, normal, exposure: float = 1.0, history=None,
                  reference=None, raw=None, temporal_target: str = "history", emission=None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), NCHW batches of two: index 0 = input A -> target B, index 1 = input B -> target A; with a
    `reference` both targets are the reference. Colours, albedo, normal (and history) are HWC tensors; `raw` is
    this frame's own (A, B) under temporal reuse (the colours are then the histories): read beside the history by
    a network that takes it, and the targets when `temporal_target` is "raw" (unbiased where a history lags the
    camera), or half of each with "mix". `emission`: each stream's directly seen emission (2, H, W, 3), for a
    network that reads it."""
    raw_a, raw_b = raw if raw is not None else (None, None)
    emitted_a, emitted_b = (emission[0], emission[1]) if emission is not None else (None, None)
    with torch.no_grad():
        hist_a, hist_b = (history[0], history[1]) if history is not None and history.dim() == 4 else (history,) * 2
        a, b = (features.network_input(net, c, albedo, normal, exposure, h, r, e)
                for c, r, h, e in ((colour_a, raw_a, hist_a, emitted_a), (colour_b, raw_b, hist_b, emitted_b)))
        if reference is not None:
            ta = tb = features.target(reference)
        elif temporal_target == "raw" and raw is not None:
            ta, tb = features.target(raw_b), features.target(raw_a)
        elif temporal_target == "mix" and raw is not None:
            ta, tb = (0.5 * (features.target(r) + features.target(h)) for r, h in ((raw_b, colour_b), (raw_a, colour_a)))
        else:
            ta, tb = features.target(colour_b), features.target(colour_a)
        inputs = torch.cat([a, b]).contiguous(memory_format=torch.channels_last)
        targets = torch.cat([ta, tb]).contiguous()
    return inputs, targets


def crop_window(h: int, w: int, crop: int, rng: random.Random) -> tuple[slice, slice]:
    """A random `crop` x `crop` window of an h x w frame (clamped to the frame), drawn from `rng`: y, then x."""
    c = max(1, int(crop))
    ch, cw = min(c, h), min(c, w)
    y = rng.randint(0, h - ch)
    x = rng.randint(0, w - cw)
    return slice(y, y + ch), slice(x, x + cw)


def training_batch(frame: tuple[torch.Tensor, torch.Tensor], direction: int, crop: int,
                   rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's (input, target), batches of one: `direction` 0 = A -> B, 1 = B -> A of `frame` (frame_tensors'
    result), on a random crop drawn from `rng`. Views of `frame`, no copy."""
    inputs, targets = frame
    k = int(direction)
    inputs, targets = inputs[k:k + 1], targets[k:k + 1]
    ys, xs = crop_window(*inputs.shape[-2:], crop, rng)
    return inputs[..., ys, xs], targets[..., ys, xs]
