"""Baseline results cached on disk: BM3D is slow on a CPU core, so a method's output for one
corrupted eval image is computed once and reused by later runs, by the other target type (`--targets noisy` then
`--targets clean`) and by other presets that evaluate the same image.

The key is the method with its parameters (e.g. "BM3D, sigma 25"), the image (its set, file name and a hash of
its pixels) and a hash of the corrupted input itself, which fixes the noise level and the corruption seed exactly:
a changed seed, level or image never meets an old entry. The folder is $N2N_BASELINE_CACHE, else
~/.cache/n2n-live/baselines; entries are written atomically, and an unreadable entry is recomputed and replaced. A
folder that cannot be written is warned about once (errors.warn_cache_unwritable) and only read from after that.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from n2n_live.errors import UserError, warn_cache_unwritable
from n2n_live.io_utils import atomic_path, user_cache_dir

CACHE_VERSION = 1
ENV = "N2N_BASELINE_CACHE"


def default_cache_dir() -> Path:
    return user_cache_dir("baselines", ENV)


def _digest(t: torch.Tensor) -> str:
    a = np.ascontiguousarray(t.detach().float().cpu().numpy())
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()


def cache_key(method: str, item) -> str:
    """The file stem of `method`'s result on the eval item (set, name, clean pixels, corrupted pixels)."""
    parts = [str(CACHE_VERSION), method, item.set, item.name, _digest(item.clean), _digest(item.noisy)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class BaselineCache:
    """`get(method, item, compute)`: the cached output of `method` on `item`, or `compute(item)`, stored.
    `cache_dir=None` keeps nothing. `hits`/`misses` count what happened."""

    def __init__(self, cache_dir: Path | str | None):
        self.dir = Path(cache_dir) if cache_dir else None
        self.hits = self.misses = 0
        self._writable = True

    def get(self, method: str, item, compute: Callable) -> torch.Tensor:
        path = self.dir / f"{cache_key(method, item)}.npy" if self.dir else None
        if path is not None:
            try:
                out = torch.from_numpy(np.load(path))
                if out.shape == item.noisy.shape:
                    self.hits += 1
                    return out
            except (OSError, ValueError):
                pass  # missing or damaged entry: compute (and overwrite)
        self.misses += 1
        out = compute(item)
        if path is not None and self._writable:
            try:
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as f:  # a file object: np.save would append '.npy' to the temporary name
                        np.save(f, out.detach().float().cpu().numpy())
            except (OSError, UserError) as e:  # a full disk is a UserError from atomic_path
                warn_cache_unwritable("baseline", self.dir, e)
                self._writable = False
        return out
