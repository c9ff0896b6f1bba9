"""The progressive reference and the still camera's two accumulating streams.

`ProgressiveReference`: an equal-weight running mean of noisy images; `StillStreams` (below) feeds it the frames
its two streams no longer hold, so the streams (trained on, denoised, shown) and the reference never share samples
(a reference that contains the input would flatter it). Any camera, size, spp or scene change starts both over.
"""
from __future__ import annotations

import collections
import copy
import math

import torch

from ..features import sanitize
from ..metrics import psnr_hdr


class ProgressiveReference:
    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._sum: torch.Tensor | None = None
        self.images = 0  # 8-spp images accumulated (two per frame)
        self.spp = 0

    @property
    def mean(self) -> torch.Tensor | None:
        return None if self._sum is None else (self._sum / self.images).float()

    def add(self, image: torch.Tensor, spp: int = 1) -> None:
        image = sanitize(image.detach()).double()
        if self._sum is None or self._sum.shape != image.shape:
            self._sum, self.images, self.spp = torch.zeros_like(image), 0, 0
        self._sum += image
        self.images += 1
        self.spp += int(spp)

    def measure(self, noisy: torch.Tensor, denoised: torch.Tensor, exposure: float = 1.0):
        """(PSNR of the input, PSNR of the denoised image) against the current reference; None without one."""
        ref = self.mean
        if ref is None or ref.shape != noisy.shape:
            return None, None
        return psnr_hdr(noisy, ref, exposure), psnr_hdr(denoised, ref, exposure)


def window_frames(still_frames: int, cap: int) -> int:
    """How many of the newest still frames the two streams average: ceil(sqrt(n)), at most `cap`.

    The rest (the older frames) form the progressive reference. sqrt makes both grow without end: the streams (what
    the network trains on and denoises) keep converging, and the reference gets ever cleaner relative to them
    (n - sqrt(n) against sqrt(n) frames: 4x the samples of the streams' pair average from n = 25, 9x from n = 100)."""
    return max(1, min(int(cap), math.isqrt(max(0, still_frames - 1)) + 1))


class StillStreams:
    """While the camera stands still: the two noisy streams accumulate (progressive) and the reference grows from
    the frames they no longer hold. Disjoint by construction, so nothing is measured against its own samples.

        frame n's images A_n, B_n -> stream A = mean of the newest W frames' A, stream B = same for B
                                     (W = window_frames(n); A and B never mix, so the pair stays independent)
        a frame leaving the window -> both its images join the reference (ProgressiveReference)

    `add(pair)` returns the pair with noisy_a/noisy_b replaced by the two stream means: the trainer trains on it
    (Noise2Noise on ever cleaner, still independent pairs) and the denoiser denoises it, so a still view converges.
    A moving camera starts over every frame: the window holds only the fresh pair, exactly today's live frame.
    `measure` compares the streams' pair average and the denoised image with the reference once the reference holds
    at least `min_ratio` x the samples of that pair average (the project's rule: references far cleaner than what
    they judge); before that it returns (None, None).
    """

    def __init__(self, cap: int = 64, min_ratio: float = 4.0, memory_mb: float = 256.0):
        self.cap = int(cap)
        self.memory_mb = float(memory_mb)  # the window's frames are kept (float32) to move them on later
        self.min_ratio = float(min_ratio)
        self.reference = ProgressiveReference()
        self.reset()

    def reset(self) -> None:
        self._key = None
        self._frames: collections.deque = collections.deque()  # (A, B, spp) of the frames in the window
        self._sum_a = self._sum_b = None
        self.still_frames = 0  # frames since the camera (size, spp, scene) last changed
        self.reference.reset()

    def follow(self, key) -> bool:
        """Start over when `key` (camera, size, spp, scene) differs from the last frame's; True if it did."""
        if key != self._key:
            self.reset()
            self._key = key
            return True
        return False

    # the reference, under the names the viewer's panels, images and screenshots read
    @property
    def mean(self) -> torch.Tensor | None:
        return self.reference.mean

    @property
    def spp(self) -> int:
        return self.reference.spp

    @property
    def images(self) -> int:
        return self.reference.images

    @property
    def window(self) -> int:
        """Frames the two streams hold now."""
        return len(self._frames)

    @property
    def stream_spp(self) -> int:
        """Samples per pixel of each stream."""
        return sum(s for _, _, s in self._frames)

    def add(self, pair, spp: int):
        """Take frame n's fresh pair; return a copy whose noisy_a/noisy_b are the streams' means."""
        a = sanitize(pair.noisy_a.detach().float())
        b = sanitize(pair.noisy_b.detach().float())
        if self._sum_a is None or self._sum_a.shape != a.shape:
            self._frames.clear()
            self._sum_a, self._sum_b = torch.zeros_like(a, dtype=torch.float64), torch.zeros_like(b, dtype=torch.float64)
        self.still_frames += 1
        self._frames.append((a, b, int(spp)))
        self._sum_a += a  # float64 sums: adding and later subtracting the same values leaves no drift to speak of
        self._sum_b += b
        cap = max(1, min(self.cap, int(self.memory_mb * 2**20 // (2 * a.numel() * 4))))
        while len(self._frames) > window_frames(self.still_frames, cap):
            old_a, old_b, old_spp = self._frames.popleft()  # ages out of the streams, into the reference
            self._sum_a -= old_a
            self._sum_b -= old_b
            self.reference.add(old_a, old_spp)
            self.reference.add(old_b, old_spp)
        n = len(self._frames)
        if n == 1:
            return pair  # nothing accumulated: the fresh pair itself (no copy)
        out = copy.copy(pair)
        out.noisy_a = (self._sum_a / n).to(pair.noisy_a.dtype)
        out.noisy_b = (self._sum_b / n).to(pair.noisy_b.dtype)
        return out

    def measure(self, pair_average: torch.Tensor, denoised: torch.Tensor, exposure: float = 1.0):
        """(PSNR of the streams' pair average, PSNR of the denoised image) against the reference, or (None, None)
        while the reference is missing or not yet `min_ratio` x cleaner (in samples) than that pair average."""
        if self.reference.spp < self.min_ratio * 2 * self.stream_spp:
            return None, None
        return self.reference.measure(pair_average, denoised, exposure)
