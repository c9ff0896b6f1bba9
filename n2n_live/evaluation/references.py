"""Evaluation: converged references, their own noise floor, and the PSNR of everything shown against them.

Shared by the headless command, the viewer's graphs and the benchmarks, so that every quality figure in the
project is measured one way:

- The input a denoised image is judged against is this frame's *pair average* (A + B) / 2: the denoised output
  averages the two denoised noisy images, so it saw both. Image A alone is kept as a secondary figure. Under
  temporal reuse the network reads more than that: the two per-stream histories (~max_history frames each), whose
  own PSNR is `psnr_history`. OIDN is therefore scored on both inputs: "OIDN, this frame" (`oidn`, the raw pair)
  and "OIDN, same samples" (`oidn_same`, the histories the network reads).
- A reference must be far cleaner than what it judges. It is rendered in two independent halves of `spp / 2`
  samples each (seeds of their own, never those of the noisy pairs or of the clean-target network's per-frame
  targets); the reference is their mean, and the PSNR between the halves says how noisy it still is:
  mse(h1, h2) = 2 var(half) = 4 var(mean), so the reference's own PSNR against the truth is
  PSNR(h1, h2) + 10 log10(4) = +6.02 dB (test_evaluation checks the prediction against the truth). A method
  scoring near that floor is capped by it.
- Converged references are expensive (thousands of samples per pixel), so they are rendered
  only every `eval_every` frames and cached on disk, keyed by scene content, camera, size, spp, seeds and
  variant: a benchmark that flies the same path with several models renders each reference once.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from renderer import seeds

from ..errors import UserError, warn_cache_unwritable
from ..io_utils import atomic_path, user_cache_dir
from ..metrics import psnr_hdr

HALVES_TO_FULL_DB = 10.0 * math.log10(4.0)  # PSNR(h1, h2) -> the mean's PSNR against the truth
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """$N2N_REFERENCE_CACHE, else $XDG_CACHE_HOME/n2n-live/references (~/.cache/n2n-live/references)."""
    return user_cache_dir("references", "N2N_REFERENCE_CACHE")


@dataclass
class Reference:
    """A converged estimate of one camera's image and how much noise it still has."""

    image: torch.Tensor  # (H, W, 3) linear HDR, the mean of both halves
    spp: int
    halves_psnr: float  # PSNR between the two independent halves (tonemapped)
    noise_floor: float  # estimated PSNR of `image` itself against the true image: halves_psnr + 6.02 dB
    ms: float = 0.0  # render time; 0 when it came from the cache
    cached: bool = False


class ReferenceStore:
    """Converged references of the scene a `PathTracer` renders, cached in memory (the tracer) and on disk.

    Call from the thread that renders (Mitsuba's thread). `cache_dir=None` disables the disk cache; a folder that
    cannot be written is warned about once (errors.warn_cache_unwritable) and only read from after that.
    """

    def __init__(self, tracer, spp: int, cache_dir: Path | str | None = None, exposure: float = 1.0):
        if int(spp) < 2:
            raise ValueError(f"a reference needs at least 2 spp (two halves), got {spp}")
        self.tracer = tracer
        self.spp = int(spp)
        self.exposure = exposure
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._fingerprint = None
        self._writable = True

    def _key(self, cam) -> str:
        import mitsuba as mi

        if self._fingerprint is None:
            self._fingerprint = self.tracer.loaded.fingerprint()  # the scene's content (renderer.scene)
        parts = [CACHE_VERSION, self._fingerprint, list(cam.key()), self.tracer.width, self.tracer.height,
                 self.spp, seeds.evaluation_halves(self.spp)[0].start, self.tracer.variant, mi.__version__]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]

    def get(self, cam) -> Reference:
        """The reference of camera `cam` at the tracer's current size (rendered, or read from the cache)."""
        path = self.cache_dir / f"{self._key(cam)}.npz" if self.cache_dir else None
        if path is not None:
            halves = _read_halves(path)
            if halves is not None and halves[0].shape[:2] == (self.tracer.height, self.tracer.width):
                return self._reference(*halves, ms=0.0, cached=True)
        t0 = time.perf_counter()
        h1, h2 = (self.tracer.render_reference(cam, len(r), first_seed=r.start)
                  for r in seeds.evaluation_halves(self.spp))
        ms = (time.perf_counter() - t0) * 1000.0
        if path is not None and self._writable:
            try:
                _write_halves(path, h1, h2)
            except (OSError, UserError) as e:  # a full disk is a UserError from atomic_path
                warn_cache_unwritable("reference", self.cache_dir, e)
                self._writable = False
        return self._reference(h1, h2, ms=ms, cached=False)

    def _reference(self, h1: torch.Tensor, h2: torch.Tensor, ms: float, cached: bool) -> Reference:
        device = self.tracer.device
        h1, h2 = h1.to(device), h2.to(device)
        halves = psnr_hdr(h1, h2, self.exposure)
        return Reference(image=0.5 * (h1 + h2), spp=self.spp, halves_psnr=halves,
                         noise_floor=halves + HALVES_TO_FULL_DB, ms=ms, cached=cached)


def _read_halves(path: Path):
    """(h1, h2) from a cache file, or None if it is missing or unreadable (a cache is never trusted over a fresh
    render)."""
    try:
        with np.load(path) as z:
            return torch.from_numpy(z["half1"].copy()), torch.from_numpy(z["half2"].copy())
    except Exception:  # noqa: BLE001 - a damaged cache entry is re-rendered and overwritten
        return None


def _write_halves(path: Path, h1: torch.Tensor, h2: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append '.npz' to the temporary name
            np.savez(f, half1=h1.cpu().numpy(), half2=h2.cpu().numpy())


def should_evaluate(frame: int, every: int) -> bool:
    """Frames are evaluated when their 1-based number is a multiple of `every` (frames 10, 20, ... for 10)."""
    return every > 0 and (frame + 1) % every == 0


@dataclass
class Scores:
    """PSNR (dB, tonemapped) of each image of a frame against one reference; None where there is no image."""

    input: float  # the pair average (A + B) / 2
    input_a: float  # image A alone
    denoised: float | None = None
    clean: float | None = None
    oidn: float | None = None  # OIDN, this frame (the raw pair)
    oidn_same: float | None = None  # OIDN, same samples (the temporal histories the network reads)


def score_frame(pair, reference: torch.Tensor, exposure: float, **outputs) -> Scores:
    """Scores of a frame's pair average, image A and each given output (denoised=, clean=, oidn=, oidn_same=)."""
    ref = reference
    a = pair.noisy_a.to(ref.device)
    b = pair.noisy_b.to(ref.device)
    s = Scores(input=psnr_hdr(0.5 * (a + b), ref, exposure), input_a=psnr_hdr(a, ref, exposure))
    for name, img in outputs.items():
        if img is not None:
            setattr(s, name, psnr_hdr(img.to(ref.device), ref, exposure))
    return s
