"""The progressive reference: while the camera stands still, the noisy frames accumulate into a converging image.

Noisy A and B of every frame enter an equal-weight running mean; any camera or size change starts it over.
PSNR is measured against the reference *before* the current frame is added, so input and reference never share
samples (a reference that contains the input would flatter it).
"""
from __future__ import annotations

import torch

from ..metrics import psnr_hdr


class ProgressiveReference:
    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._key = None
        self._sum: torch.Tensor | None = None
        self.images = 0  # 8-spp images accumulated (two per frame)
        self.spp = 0

    def follow(self, key) -> bool:
        """Start over when the camera key (or anything else that changes the image) differs; True if it did."""
        if key != self._key:
            self.reset()
            self._key = key
            return True
        return False

    @property
    def mean(self) -> torch.Tensor | None:
        return None if self._sum is None else (self._sum / self.images).float()

    def add(self, image: torch.Tensor, spp: int = 1) -> None:
        image = torch.nan_to_num(image.detach(), nan=0.0, posinf=0.0, neginf=0.0).double()
        if self._sum is None or self._sum.shape != image.shape:
            self._sum, self.images, self.spp = torch.zeros_like(image), 0, 0
        self._sum += image
        self.images += 1
        self.spp += int(spp)

    def seed(self, image: torch.Tensor, spp: int, image_spp: int) -> None:
        """Replace the mean with a converged render of `spp` samples, weighted as spp / image_spp images."""
        weight = max(1, round(spp / max(1, image_spp)))
        self._sum = torch.nan_to_num(image.detach(), nan=0.0, posinf=0.0, neginf=0.0).double() * weight
        self.images, self.spp = weight, int(spp)

    def measure(self, noisy: torch.Tensor, denoised: torch.Tensor, exposure: float = 1.0):
        """(PSNR of the input, PSNR of the denoised image) against the current reference; None without one."""
        ref = self.mean
        if ref is None or ref.shape != noisy.shape:
            return None, None
        return psnr_hdr(noisy, ref, exposure), psnr_hdr(denoised, ref, exposure)
