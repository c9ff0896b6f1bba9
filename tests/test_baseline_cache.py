"""The on-disk cache of baseline results: a hit returns exactly what was computed, and nothing that
differs in method, image, level or seed ever meets an old entry."""
from __future__ import annotations

import torch

from offline_experiments.baseline_cache import BaselineCache
from offline_experiments.corruptions import gaussian
from offline_experiments.training import EvalItem


def _item(seed: int = 0, sigma: float = 25.0, name: str = "a.png", clean: torch.Tensor | None = None) -> EvalItem:
    clean = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(1)) if clean is None else clean
    noisy = gaussian(clean[None], sigma, torch.Generator().manual_seed(seed))[0]
    return EvalItem("kodak", name, clean, noisy)


class Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, item: EvalItem) -> torch.Tensor:
        self.calls += 1
        return item.noisy * 0.5 + self.calls  # a different answer each call: a recomputation shows


def test_hit_returns_the_stored_result(tmp_path):
    f = Counting()
    first = BaselineCache(tmp_path).get("BM3D at 25", _item(), f)
    again = BaselineCache(tmp_path).get("BM3D at 25", _item(), f)  # a later run: a new cache object
    assert f.calls == 1 and torch.equal(first, again)


def test_a_different_seed_level_image_or_method_misses(tmp_path):
    cache, f = BaselineCache(tmp_path), Counting()
    cache.get("BM3D at 25", _item(), f)
    cache.get("BM3D at 25", _item(seed=1), f)  # another noise realisation
    cache.get("BM3D at 25", _item(sigma=50.0), f)  # another level, however the method is named
    cache.get("BM3D at 25", _item(clean=torch.zeros(3, 12, 10)), f)  # another image under the same name
    cache.get("BM3D at 25", _item(name="b.png"), f)  # another file
    cache.get("Anscombe+BM3D at 25", _item(), f)  # another method
    assert f.calls == 6 and cache.hits == 0 and cache.misses == 6
    cache.get("BM3D at 25", _item(), f)
    assert f.calls == 6 and cache.hits == 1


def test_damaged_entry_is_recomputed_and_no_dir_keeps_nothing(tmp_path):
    cache, f = BaselineCache(tmp_path), Counting()
    cache.get("m", _item(), f)
    for entry in tmp_path.iterdir():
        entry.write_bytes(b"not an array")
    out = cache.get("m", _item(), f)
    assert f.calls == 2 and torch.equal(out, _item().noisy * 0.5 + 2)
    assert torch.equal(BaselineCache(tmp_path).get("m", _item(), f), out)  # rewritten whole
    off = BaselineCache(None)
    off.get("m", _item(), f)
    off.get("m", _item(), f)
    assert f.calls == 4 and not list(tmp_path.glob(".*tmp*"))
