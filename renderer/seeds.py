"""Every Mitsuba seed n2n-live renders with: one range per stream, and no two streams ever share a seed.

A seed fixes a render's random numbers, so two renders with one seed have the same noise, not independent noise
(renders of one camera would be identical; of nearby cameras, correlated). Mitsuba's seeds are 32-bit. The map:

    stream                                         seeds                    range
    live noisy pair of frame n (n = frame + seed)  2n, 2n + 1               [0, 2**31)
    clean-target reference (every frame)           2**31 + k, k < spp       [2**31, 2**31 + 2**20)
    export --seed s: noisy pairs, feature passes   block s of 16            [2**31 + 2**20, 2**31 + 2**29)
    evaluation reference (two halves)              2**31 + 2**29 + k        [2**31 + 2**29, + 2**20)
    export --seed s: references, their features    block s of 16            [2**31 + 2**29 + 2**20, 3 * 2**30)
    live feature pass of frame n                   3 * 2**30 + n            [3 * 2**30, 2**32)

Inside its blocks, an export's view v takes 3 seeds per (spp level, pair) i at 3 (v * pairs + i) (noisy a, b, the
feature pass), its reference's colour `spp` seeds at 2 v spp and its reference's features the next `spp`.

A reference of `spp` samples renders at most `spp` chunks, chunk k with seed first + k, so it owns a range of
`spp` seeds. The live streams keep the values they had before this map was gathered in one place (reference
caches on disk are keyed by them). Every function here is increasing in each argument, so a stream's seeds over a
box of inputs lie between its values at the box's corners (tests/test_seeds.py checks the map that way).
"""
from __future__ import annotations

SEED_SPACE = 2**32
MAX_SPP = 2**20  # the most samples of a reference (n2n_live.validate.MAX_SPP must not exceed it)

# Live frame numbers n = frame + --seed run over [0, LIVE_FRAMES); --seed leaves the other half to the frames.
LIVE_FRAMES = 2**30
MAX_LIVE_SEED = 2**29

_CLEAN_TARGET = 2**31
_EVALUATION = 2**31 + 2**29
_LIVE_FEATURES = 3 * 2**30

# Exports: each --seed owns one block of each region, whatever its view count and settings, so datasets exported
# with different seeds (a training and a validation set) share no seed.
EXPORT_SEEDS = 16
_EXPORT_PAIRS = range(2**31 + 2**20, 2**31 + 2**29)
_EXPORT_REFERENCES = range(2**31 + 2**29 + 2**20, 3 * 2**30)
EXPORT_BLOCK = len(_EXPORT_PAIRS) // EXPORT_SEEDS


def _check_spp(spp: int, least: int = 1) -> int:
    spp = int(spp)
    if not least <= spp <= MAX_SPP:
        raise ValueError(f"a reference takes {least} to {MAX_SPP} spp, got {spp}")
    return spp


# --- live streams ---

def live_pair(n: int) -> tuple[int, int]:
    """Seeds of noisy_a and noisy_b of live frame number n (frame + seed offset): 2n and 2n + 1."""
    n = int(n)
    if not 0 <= n < LIVE_FRAMES:
        raise ValueError(f"frame + seed offset must be in [0, 2**30), got {n}")
    return 2 * n, 2 * n + 1


def live_features(n: int) -> int:
    """Seed of the albedo/normal pass of live frame number n: independent of both noisy images."""
    live_pair(n)  # the same domain check
    return _LIVE_FEATURES + int(n)


def clean_target(spp: int) -> range:
    """Seeds of the clean-target network's per-frame reference: the same range for every frame, because one per
    frame would need frames x spp seeds (2**50), far beyond 32 bits (and a still camera's target stays cached)."""
    return range(_CLEAN_TARGET, _CLEAN_TARGET + _check_spp(spp))


def evaluation_halves(spp: int) -> tuple[range, range]:
    """Seeds of the two independent halves (spp // 2 and the rest) of a converged evaluation reference."""
    spp = _check_spp(spp, least=2)
    half = spp // 2
    return range(_EVALUATION, _EVALUATION + half), range(_EVALUATION + half, _EVALUATION + spp)


# --- exports ---

def export_blocks(seed: int) -> tuple[range, range]:
    """The two blocks export --seed `seed` owns: (noisy pairs and their feature passes, references)."""
    seed = int(seed)
    if not 0 <= seed < EXPORT_SEEDS:
        raise ValueError(f"export seed must be in [0, {EXPORT_SEEDS - 1}], got {seed}")
    first = seed * EXPORT_BLOCK
    return tuple(range(r.start + first, r.start + first + EXPORT_BLOCK) for r in (_EXPORT_PAIRS, _EXPORT_REFERENCES))


def check_export(seed: int, views: int, pairs_per_view: int, ref_spp: int) -> None:
    """ValueError (a sentence naming the cause) when a dataset needs more seeds than its --seed owns (ref_spp 0: a
    dataset without references)."""
    export_blocks(seed)
    ref_spp = _check_spp(ref_spp) if ref_spp else 0
    if 3 * views * pairs_per_view > EXPORT_BLOCK:
        raise ValueError(f"{views} views of {pairs_per_view} noisy pairs need {3 * views * pairs_per_view} seeds, "
                         f"more than the {EXPORT_BLOCK} each export seed owns")
    if 2 * views * ref_spp > EXPORT_BLOCK:
        raise ValueError(f"{views} views with {ref_spp}-spp references need {2 * views * ref_spp} seeds, more "
                         f"than the {EXPORT_BLOCK} each export seed owns: use fewer views or a lower reference spp")


def export_pair(seed: int, view: int, index: int, pairs_per_view: int) -> tuple[int, int, int]:
    """(noisy_a, noisy_b, feature pass) seeds of pair `index` (spp level x pair) of dataset view `view`."""
    if not 0 <= index < pairs_per_view or view < 0:
        raise ValueError(f"pair {index} of {pairs_per_view} of view {view}")
    block = export_blocks(seed)[0]
    first = block.start + 3 * (view * pairs_per_view + index)
    if first + 3 > block.stop:
        raise ValueError(f"export seed {seed}: view {view} leaves its block of seeds")
    return first, first + 1, first + 2


def _export_reference(seed: int, view: int, spp: int, part: int) -> range:
    spp = _check_spp(spp)
    block = export_blocks(seed)[1]
    first = block.start + (2 * view + part) * spp
    if view < 0 or first + spp > block.stop:
        raise ValueError(f"export seed {seed}: the reference of view {view} leaves its block of seeds")
    return range(first, first + spp)


def export_reference(seed: int, view: int, spp: int) -> range:
    """Seeds of the colour reference of dataset view `view`."""
    return _export_reference(seed, view, spp, 0)


def export_reference_features(seed: int, view: int, spp: int) -> range:
    """Seeds of the albedo/normal pass of view `view`'s reference: independent of its colour."""
    return _export_reference(seed, view, spp, 1)
