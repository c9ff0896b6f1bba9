"""renderer/seeds.py: no two seed streams ever meet over the whole input domain the commands accept, and the
tracer and the live loop render with the seeds the map gives them.

Every seed function is increasing in each argument, so a stream's seeds over a box of inputs lie between its
values at the box's corners: the ranges below are exact bounds (interval arithmetic), not samples.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from renderer import seeds
from n2n_live.errors import UserError
from n2n_live.validate import MAX_SPP

MAX_FRAMES = 10**8  # --frames of a headless run (the viewer runs on: the tracer refuses n >= LIVE_FRAMES)


def hull(first: int, last: int) -> range:
    return range(first, last + 1)


def live_streams() -> dict[str, range]:
    last = seeds.LIVE_FRAMES - 1
    h1_small, _ = seeds.evaluation_halves(2)
    _, h2_large = seeds.evaluation_halves(seeds.MAX_SPP)
    assert seeds.clean_target(1).start == seeds.clean_target(seeds.MAX_SPP).start  # nested: one start for all spp
    return {
        "live noisy pairs": hull(seeds.live_pair(0)[0], seeds.live_pair(last)[1]),
        "live feature passes": hull(seeds.live_features(0), seeds.live_features(last)),
        "clean-target references": seeds.clean_target(seeds.MAX_SPP),
        "evaluation references": range(h1_small.start, h2_large.stop),
    }


def export_streams() -> dict[str, range]:
    streams = {}
    for s in range(seeds.EXPORT_SEEDS):
        pairs, refs = seeds.export_blocks(s)
        streams[f"export {s} pairs"], streams[f"export {s} references"] = pairs, refs
    return streams


def test_the_domain_the_commands_accept_is_the_domain_checked_here(tmp_path):
    from n2n_live.commands import cli, export

    assert MAX_SPP <= seeds.MAX_SPP
    assert seeds.MAX_LIVE_SEED + MAX_FRAMES <= seeds.LIVE_FRAMES  # a headless run at the largest --seed
    live = cli.build_parser()
    assert live.parse_args(["--seed", str(seeds.MAX_LIVE_SEED)]).seed == seeds.MAX_LIVE_SEED
    with pytest.raises(UserError, match="--seed"):
        live.parse_args(["--seed", str(seeds.MAX_LIVE_SEED + 1)])
    base = ["--scene", "cornell-box", "--out", str(tmp_path / "x")]
    assert export.parse_args([*base, "--seed", str(seeds.EXPORT_SEEDS - 1)]).seed == seeds.EXPORT_SEEDS - 1
    with pytest.raises(UserError, match="--seed"):
        export.parse_args([*base, "--seed", str(seeds.EXPORT_SEEDS)])
    with pytest.raises(ValueError):
        seeds.live_pair(seeds.LIVE_FRAMES)
    with pytest.raises(ValueError):
        seeds.clean_target(seeds.MAX_SPP + 1)


def test_every_export_seed_stays_in_its_blocks_at_the_largest_dataset_it_admits():
    for s in range(seeds.EXPORT_SEEDS):
        pairs, refs = seeds.export_blocks(s)
        # noisy pairs: 3 seeds per (view, pair); the largest admitted dataset ends inside the block
        for per_view in (1, 7):
            views = seeds.EXPORT_BLOCK // (3 * per_view)
            seeds.check_export(s, views, per_view, 1)
            assert seeds.export_pair(s, 0, 0, per_view)[0] == pairs.start
            assert seeds.export_pair(s, views - 1, per_view - 1, per_view)[2] < pairs.stop
            with pytest.raises(ValueError):
                seeds.check_export(s, views + 1, per_view, 1)
        # references: the colour and the features of each view, `spp` seeds each
        for spp in (1, 4096, seeds.MAX_SPP):
            views = min(seeds.EXPORT_BLOCK // (2 * spp), seeds.EXPORT_BLOCK // 3)  # whichever block fills first
            seeds.check_export(s, views, 1, spp)
            assert seeds.export_reference(s, 0, spp).start == refs.start
            assert seeds.export_reference_features(s, views - 1, spp).stop <= refs.stop
            with pytest.raises(ValueError):
                seeds.check_export(s, views + 1, 1, spp)


def test_no_two_streams_meet_and_all_are_32_bit():
    streams = {**live_streams(), **export_streams()}
    for name, r in streams.items():
        assert 0 <= r.start < r.stop <= seeds.SEED_SPACE, (name, r)
    for (a, ra), (b, rb) in itertools.combinations(streams.items(), 2):
        assert ra.stop <= rb.start or rb.stop <= ra.start, f"{a} {ra} meets {b} {rb}"


def test_evaluation_halves_are_independent_and_keep_their_seeds():
    h1, h2 = seeds.evaluation_halves(2048)
    assert (h1.start, len(h1), h2.start, len(h2)) == (2**31 + 2**29, 1024, 2**31 + 2**29 + 1024, 1024)
    h1, h2 = seeds.evaluation_halves(5)
    assert h1.stop == h2.start and len(h1) + len(h2) == 5
    # the live streams keep the values reference caches and earlier results were made with
    assert seeds.live_pair(7) == (14, 15) and seeds.live_features(7) == 3 * 2**30 + 7
    assert seeds.clean_target(256) == range(2**31, 2**31 + 256)


# ------------------------------------------------------------------------------------------------ the renderer

@pytest.fixture(scope="module")
def loaded():
    pytest.importorskip("mitsuba")
    from renderer.scene import load_scene
    from renderer.variant import choose_variant

    choose_variant()
    return load_scene("cornell-box", 32, 32)


@pytest.fixture(scope="module")
def tracer(loaded):
    from renderer.tracer import PathTracer

    return PathTracer(loaded, spp=8)


def test_seeds_are_never_reused_across_frames(tracer):
    used = [s for f in range(2000) for s in tracer.seeds_for(f)]
    assert len(set(used)) == len(used)
    assert max(used) < seeds.live_features(0) and max(used) < seeds.clean_target(1).start
    with pytest.raises(ValueError):
        tracer.seeds_for(-1)


def test_explicit_pair_seeds_and_reference_features(tracer, loaded):
    cam = loaded.path.at(9)
    pair = tracer.render_pair(cam, 0, (10, 11, 12))  # an export's seeds instead of the live frame's
    assert pair.seeds == (10, 11) and torch.equal(pair.noisy_a, tracer.render_pair(cam, 5).noisy_a)
    albedo, normal = tracer.render_reference_features(cam, spp=32, chunk_spp=8, first_seed=2**31 + 2**28)
    assert albedo.shape == normal.shape == (32, 32, 3)
    assert 0 <= albedo.min() and albedo.max() <= 1 and albedo.mean() > 0
    # more samples than the pair's feature pass: the reference's features are smoother at edges, not different
    assert (albedo - pair.albedo).abs().mean() < 0.05 and normal.norm(dim=-1).max() <= 1.0 + 1e-4
    # its cache entry is its own: the colour reference of the same seeds is another image
    assert not torch.equal(tracer.render_reference(cam, spp=32, chunk_spp=8, first_seed=2**31 + 2**28), albedo)


def test_live_loop_renders_each_reference_from_its_own_stream():
    pytest.importorskip("mitsuba")
    from n2n_live.live.config import LiveConfig
    from n2n_live.live.loop import LiveLoop

    cfg = LiveConfig(scene="cornell-box", width=16, height=16, crop=16, iters_per_frame=1, sync=True, model="paper",
                     temporal=False, reference_spp=16, reference_cache="off", clean_target_spp=4,
                     compare=("clean",))
    with LiveLoop(cfg) as loop:
        calls = []
        render = loop.tracer.render_reference

        def recording(cam, spp, chunk_spp=64, first_seed=None):
            calls.append(range(first_seed, first_seed + spp))
            return render(cam, spp, chunk_spp, first_seed)

        loop.tracer.render_reference = recording
        result = loop.step(evaluate=True)
    clean, evaluation = seeds.clean_target(4), seeds.evaluation_halves(16)
    assert sorted(calls, key=lambda r: r.start) == [clean, *evaluation]
    frame = seeds.live_pair(0) + (seeds.live_features(0),)
    assert all(s not in r for r in calls for s in frame) and result.clean is not None
