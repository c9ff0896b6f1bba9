"""Inference with the latest published weights: features -> pad -> network -> unpad, both noisy images averaged.

Any model of n2n_live.models works: `features.network_input` builds what the network takes (features, the history
feature of a temporal pair, the linear colour a kernel-predicting net filters).

The denoiser owns its own copy of the network, so the trainer thread can update its weights in place while the
display thread denoises; `update(version, state)` copies a published snapshot in when its version is new.
Runs under torch.no_grad (not inference_mode), so results are ordinary tensors the caller may modify in place.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .. import features
from ..models.unet import UNet
from ..tiling import denoise_tiled


def mc_output(net: nn.Module, x: torch.Tensor, tile: int | None = None, overlap: int = 32,
              amp: bool = False) -> torch.Tensor:
    """The one Monte Carlo inference seam (the live Denoiser, n2n-denoise, n2n-train's validation): assembled
    NCHW features -> network (in tiles when larger than `tile`) -> linear radiance clamped at 0. A network
    can output slightly negative values; radiance cannot be negative."""
    return denoise_tiled(net, x, tile, overlap, amp=amp).clamp_(min=0.0)


class Denoiser:
    """`Denoiser(net_or_factory=UNet, device="cpu", exposure=1.0)`.

    `net_or_factory` is a module (used as this denoiser's own network: do not share it with a trainer) or a
    callable returning one (e.g. `UNet`). Outputs are HWC linear radiance, clamped at 0.
    """

    def __init__(self, net_or_factory=UNet, device="cpu", exposure: float = 1.0):
        net = net_or_factory if isinstance(net_or_factory, nn.Module) else net_or_factory()
        self.device = torch.device(device)
        self.net = net.to(self.device, memory_format=torch.channels_last).eval()
        self.exposure = float(exposure)
        self.version = -1

    @classmethod
    def copy_of(cls, net: nn.Module, device="cpu", exposure: float = 1.0) -> "Denoiser":
        """A denoiser with a private copy of `net` (same weights)."""
        return cls(copy.deepcopy(net), device, exposure)

    def update(self, version: int, state: dict) -> bool:
        """Load a published snapshot unless `version` is already loaded; True when the weights changed."""
        if version == self.version:
            return False
        self.net.load_state_dict(state)
        self.version = version
        return True

    def _run(self, colour: torch.Tensor, albedo: torch.Tensor, normal: torch.Tensor, history=None,
             raw=None, emission=None) -> torch.Tensor:
        """NHWC/HWC in -> NCHW linear out (the inference seam)."""
        with torch.no_grad():
            colour, albedo, normal = (torch.as_tensor(t).to(self.device, torch.float32)
                                      for t in (colour, albedo, normal))
            history, raw, emission = (None if t is None else torch.as_tensor(t).to(self.device, torch.float32)
                                      for t in (history, raw, emission))
            x = features.network_input(self.net, colour, albedo, normal, self.exposure, history, raw, emission)
            return mc_output(self.net, x.contiguous(memory_format=torch.channels_last))

    def denoise(self, colour, albedo, normal, history=None) -> torch.Tensor:
        """One noisy HWC image (+ its albedo and normal, + frames accumulated per pixel) -> denoised HWC linear."""
        with torch.no_grad():
            return self._run(colour, albedo, normal, history)[0].permute(1, 2, 0).contiguous()

    def denoise_pair(self, pair) -> torch.Tensor:
        """Both noisy images of a FramePair in one batch of two, denoised and averaged (HWC)."""
        with torch.no_grad():
            colour = torch.stack([torch.as_tensor(pair.noisy_a), torch.as_tensor(pair.noisy_b)])
            aux = [torch.as_tensor(t).unsqueeze(0).expand(2, *t.shape) for t in (pair.albedo, pair.normal)]
            raw = getattr(pair, "raw", None)  # a TemporalPair's own frame, read beside the histories
            raw = torch.stack([torch.as_tensor(raw.noisy_a), torch.as_tensor(raw.noisy_b)]) if raw is not None else None
            out = self._run(colour, *aux, history=getattr(pair, "history", None), raw=raw,
                            emission=features.stream_emission(pair))
            return out.mean(dim=0).permute(1, 2, 0).contiguous()
