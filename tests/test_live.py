"""LiveLoop with the real renderer on tiny frames: one frame's outputs, threads, sizes, scenes, NaN/Inf."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from n2n_live.checkpoint import nonfinite_tensors
from n2n_live.errors import UserError
from n2n_live.live import oidn
from n2n_live.live.config import PRESETS, LiveConfig, preset
from n2n_live.live.loop import LiveLoop

from conftest import wait_for

pytestmark = pytest.mark.numeric  # make test reruns these under ATEN_CPU_CAPABILITY=default


def tiny(**kw) -> LiveConfig:
    base = dict(scene="cornell-box", width=32, height=32, crop=32, iters_per_frame=2, sync=True, lr=1e-3,
                model="paper", temporal=False)  # the loop's mechanics on the paper's model (test_temporal: the rest)
    base.update(kw)
    return LiveConfig(**base)


def test_one_sync_frame_has_every_output():
    compare = ("oidn",) if oidn.available() else ()
    with LiveLoop(tiny(reference_spp=16, compare=compare)) as loop:
        r = loop.step()
        assert r.frame == 0 and loop.frame == 1
        assert r.denoised.shape == (32, 32, 3) and torch.isfinite(r.denoised).all()
        assert r.reference.shape == (32, 32, 3)
        assert r.train_steps == 2 and r.train_ms > 0 and r.infer_ms > 0 and r.render_ms > 0
        assert math.isfinite(r.loss)
        for v in (r.psnr_input, r.psnr_denoised, r.psnr_input_a):
            assert 0 < v < 100
        if compare:
            assert r.oidn.shape == (32, 32, 3) and r.psnr_oidn > r.psnr_input
        assert r.clean is None and r.psnr_clean_target is None
        # the denoised frame is the denoiser's pair average with the weights the trainer published
        assert torch.allclose(r.denoised, loop.denoiser.denoise_pair(r.pair), atol=1e-5)
        r2 = loop.step()
        assert r2.frame == 1 and r2.pair.seeds != r.pair.seeds and r2.train_steps == 4


def test_no_reference_means_no_metrics():
    with LiveLoop(tiny()) as loop:
        r = loop.step()
    assert r.reference is None and r.psnr_input is None and r.psnr_denoised is None


def test_clean_target_network_trains_on_references():
    with LiveLoop(tiny(reference_spp=16, compare=("clean",))) as loop:
        r = loop.step()
        assert r.clean.shape == (32, 32, 3) and r.psnr_clean_target is not None
        assert loop.clean_trainer.stats["steps"] == 2


def test_n2n_compare_replays_recorded_pairs_through_the_loop(tmp_path):
    """LiveLoop(render_pair=...) trains and denoises the pairs it is handed (n2n-compare's recorded frames), in the
    frames' order, while references still come from the loop's own tracer."""
    from n2n_live.commands.compare import COLUMNS, record, run_variant

    cfg = tiny(width=16, height=16, crop=16, spp=2, frames=3, reference_spp=8, reference_cache="off")
    pairs, _ = record(cfg)
    asked = []

    def replay(cam, frame):
        asked.append(frame)
        return pairs[frame]

    with LiveLoop(cfg, render_pair=replay) as loop:
        results = [loop.step(evaluate=True) for _ in range(2)]
    assert asked == [0, 1] and all(r.pair is p for r, p in zip(results, pairs))
    assert all(r.psnr_input is not None and r.train_steps > 0 for r in results)
    rows = run_variant(cfg, pairs, tmp_path / "run.csv")
    assert [row["frame"] for row in rows] == [0, 1, 2] and set(rows[0]) == set(COLUMNS)
    assert rows[-1]["psnr_denoised"] is not None  # the last frame is evaluated


def test_the_initial_weights_follow_the_seed():
    """Same cfg.seed, same initial network (a run can be repeated); another seed, another network. Mutant caught:
    LiveLoop's network initialisation left unseeded."""
    before = iter(range(100, 103))

    def initial(seed):
        torch.manual_seed(next(before))  # whatever the global generator held before: the loop must seed it itself
        with LiveLoop(tiny(width=16, height=16, crop=16, seed=seed)) as loop:
            return {k: v.clone() for k, v in loop.trainer.net.state_dict().items()}

    first, again, other = initial(0), initial(0), initial(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first if k.endswith("weight"))


def test_oidn_sees_this_frames_raw_pair_not_the_temporal_history(monkeypatch):
    """With temporal reuse on, the network trains on the accumulated histories, but OIDN (a single-frame denoiser)
    is handed this frame's own pair average. pyoidn is faked: the test holds whether or not it is installed.
    Mutant caught: OIDN fed the histories."""
    seen = []

    def fake_denoise(colour, albedo=None, normal=None, quality="high"):
        seen.append(colour.clone())
        return colour.clone()

    monkeypatch.setattr(oidn, "available", lambda: True)
    monkeypatch.setattr(oidn, "denoise", fake_denoise)
    with LiveLoop(tiny(width=16, height=16, crop=16, spp=2, iters_per_frame=1, temporal=True,
                       compare=("oidn",))) as loop:
        update, histories = loop.temporal.update, []
        loop.temporal.update = lambda pair, cam: histories.append(update(pair, cam)) or histories[-1]
        results = [loop.step() for _ in range(3)]
    assert len(seen) == 3
    for r, x in zip(results, seen):
        raw_pair = torch.equal(x, 0.5 * (r.pair.noisy_a + r.pair.noisy_b))
        assert raw_pair, f"frame {r.frame}: OIDN was not handed this frame's raw pair average"
        assert torch.equal(r.oidn, x)
    # the histories did differ from the raw pairs after the first frame, so the check above could fail
    h, r = histories[-1], results[-1]
    assert h.history.max() > 1 and not torch.allclose(h.noisy_a + h.noisy_b, r.pair.noisy_a + r.pair.noisy_b)


def test_oidn_same_samples_sees_the_histories_on_evaluated_frames_only(monkeypatch):
    """"OIDN, same samples" is handed the average of the two temporal histories the network read (with the pair's
    albedo/normal) beside "OIDN, this frame" on the raw pair, only on evaluated frames; with temporal reuse off it is
    left empty (no second call). The fake OIDN returns its input, so each PSNR must equal that of what it was handed.
    Mutants caught: OIDN-same handed the raw pair; OIDN-same on every frame; OIDN-same computed with temporal off;
    psnr_oidn_same scored on the this-frame image."""
    calls = []

    def fake_denoise(colour, albedo=None, normal=None, quality="high"):
        calls.append((colour.clone(), albedo))
        return colour.clone()

    monkeypatch.setattr(oidn, "available", lambda: True)
    monkeypatch.setattr(oidn, "denoise", fake_denoise)
    cfg = tiny(width=16, height=16, crop=16, spp=2, iters_per_frame=1, temporal=True, compare=("oidn",),
               reference_spp=8, reference_cache="off", eval_every=2)
    with LiveLoop(cfg) as loop:
        per_frame = []
        for _ in range(4):
            calls.clear()
            per_frame.append((loop.step(), list(calls)))
    for r, seen in per_frame:
        raw_avg = 0.5 * (r.pair.noisy_a + r.pair.noisy_b)
        assert torch.equal(seen[0][0], raw_avg) and torch.equal(r.oidn, raw_avg), f"frame {r.frame}: this frame"
        if r.frame % 2 == 0:  # not evaluated: no reference, no second OIDN call
            assert len(seen) == 1 and r.oidn_same is None and r.psnr_oidn_same is None, r.frame
            continue
        h = r.history
        hist_avg = 0.5 * (h.noisy_a + h.noisy_b)
        assert len(seen) == 2 and torch.equal(seen[1][0], hist_avg), f"frame {r.frame}: not the histories"
        assert seen[1][1] is r.pair.albedo and torch.equal(r.oidn_same, hist_avg)
        assert not torch.allclose(hist_avg, raw_avg)  # so the checks above tell the two inputs apart
        assert r.psnr_oidn_same == r.psnr_history and r.psnr_oidn == r.psnr_input
    # temporal reuse off: the two inputs are one; the same-samples figures stay empty, one OIDN call per frame
    with LiveLoop(dataclasses.replace(cfg, temporal=False)) as loop:
        calls.clear()
        r = loop.step(evaluate=True)
    assert len(calls) == 1 and r.history is None and r.oidn_same is None and r.psnr_oidn_same is None
    assert r.psnr_oidn is not None


def test_compare_clean_needs_a_reference():
    with pytest.raises(UserError):
        LiveLoop(tiny(reference_spp=0, compare=("clean",)))


def test_async_loop_trains_in_background_and_closes():
    loop = LiveLoop(tiny(sync=False, iters_per_frame=10_000))
    try:
        assert loop.trainer.running
        loop.step()
        assert wait_for(lambda: loop.trainer.stats["steps"] >= 2)
        r = loop.step()
        assert r.train_steps >= 1  # the display used whatever the trainer had published
    finally:
        ok = loop.close(timeout=120.0)  # the thread ends after the step in flight, however loaded the machine
    assert ok and not loop.trainer.running


def test_odd_size_and_oversized_crop():
    with LiveLoop(tiny(width=37, height=21, crop=256)) as loop:
        r = loop.step()
        assert r.denoised.shape == (21, 37, 3)
        assert r.pair.noisy_a.shape == (21, 37, 3)
        loop.resize(33, 19)
        r = loop.step()
        assert r.denoised.shape == (19, 33, 3) and r.train_steps == 4


def test_nan_inf_samples_keep_weights_finite():
    with LiveLoop(tiny(iters_per_frame=3)) as loop:
        render = loop.tracer.render_pair

        def poisoned(cam, frame):
            pair = render(cam, frame)
            pair.noisy_a[1, 2] = float("nan")
            pair.noisy_b[3, 4, 0] = float("inf")
            pair.noisy_b[5, 5, 1] = 1e38  # finite, but overflows the loss
            pair.normal[0, 0] = float("nan")
            return pair

        loop.tracer.render_pair = poisoned
        for _ in range(3):
            r = loop.step()
        s = loop.trainer.stats
        assert s["sanitized_frames"] == 3 and s["nonfinite_values"] > 0
        assert not nonfinite_tensors(loop.trainer.net.state_dict())
        assert not nonfinite_tensors(loop.denoiser.net.state_dict())
        assert torch.isfinite(r.denoised).all()


def test_nan_inf_samples_with_the_trainer_thread():
    """The asynchronous path (trainer thread, paced like the headless command): every sample that is not finite
    is replaced and counted per value, and the published weights stay finite."""
    with LiveLoop(tiny(sync=False, pace=True, iters_per_frame=2, reference_spp=4)) as loop:
        render = loop.tracer.render_pair

        def poisoned(cam, frame):
            pair = render(cam, frame)
            pair.noisy_a[3, 4] = float("nan")  # a whole pixel: 3 values
            pair.noisy_b[7, 8, 2] = float("-inf")
            pair.albedo[1, 1, 0] = float("inf")
            return pair

        loop.tracer.render_pair = poisoned
        results = [loop.step() for _ in range(3)]
        assert loop.trainer.wait_idle(120)
        s = loop.trainer.stats
    assert s["sanitized_frames"] == 3 and s["nonfinite_values"] == 3 * 5
    assert s["steps"] + s["skipped"] == 3 * 2 and not nonfinite_tensors(loop.trainer.net.state_dict())
    assert torch.isfinite(results[-1].denoised).all() and results[-1].sanitized_frames >= 2


def test_set_scene_error_keeps_the_current_scene(tmp_path):
    with LiveLoop(tiny()) as loop:
        loop.step()
        with pytest.raises(ValueError) as e:  # SceneError (a ValueError) naming the problem
            loop.set_scene("no-such-scene")
        assert "no-such-scene" in str(e.value)
        bad = tmp_path / "bad.xml"
        bad.write_text("<scene version='3.0.0'><shape type='sphere'/></scene>")
        with pytest.raises(ValueError) as e:
            loop.set_scene(str(bad))
        assert "sensor" in str(e.value)
        r = loop.step()
        assert loop.cfg.scene == "cornell-box" and r.frame == 1


def test_presets_and_validation():
    assert PRESETS["cpu"].width <= 256 and PRESETS["cpu"].crop <= PRESETS["cpu"].width
    assert (PRESETS["gpu"].width, PRESETS["gpu"].crop) == (512, 256)
    p = preset("cpu", frames=3)
    assert p.frames == 3 and PRESETS["cpu"].frames != 3  # a copy
    for bad in (dict(width=0), dict(spp=0), dict(compare=("foo",)), dict(device="tpu"), dict(lr=0.0)):
        with pytest.raises(UserError):
            dataclasses.replace(LiveConfig(), **bad).validate()
    with pytest.raises(UserError):
        preset("nope")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_live_loop_on_cuda():
    with LiveLoop(tiny(device="cuda", reference_spp=16)) as loop:
        r = loop.step()
    assert r.denoised.is_cuda and r.psnr_denoised is not None
