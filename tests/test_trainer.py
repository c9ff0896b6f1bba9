"""OnlineTrainer and Denoiser on synthetic frame pairs (no renderer): threads, mailbox, weights, NaN/Inf, sizes."""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import pytest
import torch

from n2n_live.checkpoint import nonfinite_tensors
from n2n_live.live.batch import frame_tensors, training_batch
from n2n_live.live.config import SPIKE_CLIP, WEIGHT_AVERAGE, LiveConfig
from n2n_live.live.denoiser import Denoiser
from n2n_live.errors import UserError
from n2n_live.metrics import psnr_hdr
from n2n_live.models.unet import UNet
from n2n_live.live import trainer as trainer_module
from n2n_live.live.trainer import OnlineTrainer

from conftest import wait_for

pytestmark = pytest.mark.numeric  # make test reruns these under ATEN_CPU_CAPABILITY=default


@dataclass
class Pair:  # the fields of renderer.tracer.FramePair that the trainer and denoiser read
    noisy_a: torch.Tensor
    noisy_b: torch.Tensor
    albedo: torch.Tensor
    normal: torch.Tensor
    frame: int = 0
    seeds: tuple = (0, 1)
    render_ms: float = 0.0


def clean_image(h: int, w: int) -> torch.Tensor:
    y = torch.linspace(0, 1, h)[:, None, None]
    x = torch.linspace(0, 1, w)[None, :, None]
    image = 0.2 + 0.8 * (x * torch.tensor([1.0, 0.6, 0.3]) + y * torch.tensor([0.2, 0.5, 0.9]))
    return image.expand(h, w, 3).contiguous()


def make_pair(h=32, w=32, frame=0, seed=0, clean=None) -> Pair:
    g = torch.Generator().manual_seed(seed)
    clean = clean_image(h, w) if clean is None else clean

    def noisy():  # Monte Carlo-like: unbiased, heavy-tailed (a few bright samples)
        return clean * torch.empty(h, w, 3).exponential_(1.0, generator=g)

    albedo = torch.full((h, w, 3), 0.5)
    normal = torch.zeros(h, w, 3)
    normal[..., 2] = 1.0
    return Pair(noisy(), noisy(), albedo, normal, frame=frame)


def cfg(**kw) -> LiveConfig:
    base = dict(iters_per_frame=2, crop=32, lr=1e-3, seed=0)
    base.update(kw)
    return LiveConfig(**base)


def test_stop_while_training_ends_after_the_step_in_flight():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=10_000, crop=64), "cpu").start()
    tr.submit(make_pair(64, 64))
    assert wait_for(lambda: tr.stats["steps"] >= 1)
    n = tr.stats["steps"]
    assert tr.stop(timeout=120.0) and not tr.running
    assert tr.stats["steps"] <= n + 1  # at most the step that was running: no frame is finished first


def test_stop_idle_thread_and_restart():
    tr = OnlineTrainer(UNet(), cfg(), "cpu").start()
    assert tr.stop(120.0) and not tr.running
    tr.start()
    tr.submit(make_pair())
    assert wait_for(lambda: tr.stats["frames_trained"] == 1)
    assert tr.stop(120.0)


def test_newest_wins_and_copies_submitted_tensors():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=1), "cpu")
    tr.pause()
    tr.start()
    pairs = [make_pair(frame=i, seed=i) for i in range(5)]
    for p in pairs:
        tr.submit(p)
        p.noisy_a.fill_(float("nan"))  # the renderer reuses its buffers: the trainer must hold a copy
    assert tr.stats["frames_dropped"] == 4
    tr.resume()
    assert wait_for(lambda: tr.stats["frames_trained"] == 1)
    assert tr.wait_idle(timeout=120)
    s = tr.stats
    tr.stop()
    assert s["frames_trained"] == 1 and s["last_frame"] == 4
    assert s["sanitized_frames"] == 0  # the NaNs written after submit never reached the trainer


def test_weights_versioning_without_races():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=10_000), "cpu")
    v0, s0 = tr.weights()
    first = {k: v.clone() for k, v in s0.items()}
    tr.start()
    tr.submit(make_pair())
    seen_by, errors = [[], []], []

    def reader(seen):
        den = Denoiser(UNet, "cpu")
        try:
            while len(seen) < 200 and tr.running:
                v, s = tr.weights()
                seen.append(v)
                den.update(v, s)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(seen,)) for seen in seen_by]
    for t in threads:
        t.start()
    assert wait_for(lambda: tr.stats["steps"] >= 3)
    for t in threads:
        t.join(20)
    assert tr.stop(120.0)
    v1, s1 = tr.weights()
    assert not errors
    assert v1 > v0 and v1 >= tr.stats["steps"]
    # a published snapshot never changes afterwards
    assert all(torch.equal(first[k], s0[k]) for k in first)
    assert any(not torch.equal(first[k], s1[k]) for k in first)
    # each reader saw non-decreasing versions
    for seen in seen_by:
        assert seen and all(b >= a for a, b in zip(seen, seen[1:]))


def test_nan_inf_never_reach_the_weights():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=3), "cpu")
    p = make_pair(32, 32)
    p.noisy_a[3, 4] = float("nan")
    p.noisy_a[5, 6, 1] = float("inf")
    p.noisy_b[7, 8, 2] = float("-inf")
    p.albedo[1, 1] = float("nan")
    p.normal[2, 2] = float("inf")
    tr.train_now(p)
    s = tr.stats
    assert s["sanitized_frames"] == 1 and s["nonfinite_values"] == 3 + 1 + 1 + 3 + 3
    assert not nonfinite_tensors(tr.net.state_dict()) and not nonfinite_tensors(tr.weights()[1])
    # a finite but absurd firefly overflows the loss: the step is skipped and counted, weights stay finite
    q = make_pair(32, 32, seed=1)
    q.noisy_b[:] = 3e38
    q.noisy_a[:] = 3e38
    before = s["skipped"]
    tr.train_now(q)
    assert tr.stats["skipped"] > before
    assert not nonfinite_tensors(tr.net.state_dict())
    # and training goes on normally afterwards
    tr.train_now(make_pair(32, 32, seed=2))
    assert not nonfinite_tensors(tr.net.state_dict()) and tr.stats["steps"] >= 3


def test_pause_stops_the_step_counter():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=10_000), "cpu").start()
    tr.submit(make_pair())
    assert wait_for(lambda: tr.stats["steps"] >= 2)
    tr.pause()
    assert tr.paused
    assert tr.wait_idle(timeout=120)  # paused and the step in flight finished
    n = tr.stats["steps"]
    assert not wait_for(lambda: tr.stats["steps"] != n, timeout=0.3)  # an absence check: load cannot fail it
    tr.resume()
    assert wait_for(lambda: tr.stats["steps"] > n)
    assert tr.stop(120.0)


def test_runtime_changes_and_reset():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=2), "cpu")
    tr.train_now(make_pair())
    assert tr.stats["steps"] == 2
    tr.iters_per_frame = 3
    tr.crop = 16
    tr.set_lr(1e-4)
    tr.train_now(make_pair(seed=3))
    assert tr.stats["steps"] == 5 and tr._step.lr == pytest.approx(1e-4)
    v = tr.version
    tr.reset()
    assert tr.version == v + 1 and tr.stats["steps"] == 0
    assert tr._step.spike_clip == SPIKE_CLIP and "clipped" in tr.stats  # the fresh optimiser keeps the setting
    for off in (cfg(spike_clip=False), cfg(model="paper")):  # the paper's model trains with the paper's Adam
        assert OnlineTrainer(UNet(), off, "cpu")._step.spike_clip is None
    # reset while the thread runs is applied between two steps
    tr.start()
    tr.submit(make_pair(seed=4))
    assert wait_for(lambda: tr.stats["frames_trained"] >= 3)
    v = tr.version
    tr.reset()
    assert wait_for(lambda: tr.version > v)
    assert tr.stop(120.0)


@pytest.mark.parametrize("h,w,crop", [(37, 23, 256), (24, 40, 16), (1, 5, 8)])
def test_crop_clamping_and_odd_sizes(h, w, crop):
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=2, crop=crop), "cpu")
    tr.train_now(make_pair(h, w))
    assert tr.stats["steps"] == 2
    den = Denoiser(UNet, "cpu")
    den.update(*tr.weights())
    p = make_pair(h, w)
    assert den.denoise_pair(p).shape == (h, w, 3)
    assert den.denoise(p.noisy_a, p.albedo, p.normal).shape == (h, w, 3)


def test_sync_training_is_deterministic():
    def run():
        torch.manual_seed(0)
        tr = OnlineTrainer(UNet(), cfg(iters_per_frame=2, crop=16), "cpu")
        for i in range(2):
            tr.train_now(make_pair(frame=i, seed=i))
        return tr.weights()[1]

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_denoise_pair_is_mean_of_both():
    torch.manual_seed(1)
    den = Denoiser(UNet(), "cpu")
    p = make_pair(40, 24)
    both = den.denoise_pair(p)
    a = den.denoise(p.noisy_a, p.albedo, p.normal)
    b = den.denoise(p.noisy_b, p.albedo, p.normal)
    assert torch.allclose(both, 0.5 * (a + b), atol=1e-5)
    assert both.min() >= 0


def test_denoiser_update_only_on_new_version():
    tr = OnlineTrainer(UNet(), cfg(), "cpu")
    den = Denoiser(UNet, "cpu")
    assert den.update(*tr.weights())
    assert not den.update(*tr.weights())
    tr.train_now(make_pair())
    assert den.update(*tr.weights())
    assert all(torch.equal(den.net.state_dict()[k], v) for k, v in tr.weights()[1].items())


def test_clean_target_trainer_needs_reference():
    tr = OnlineTrainer(UNet(), cfg(), "cpu", target="clean")
    p = make_pair()
    with pytest.raises(ValueError):
        tr.submit(p)
    tr.train_now(p, reference=clean_image(32, 32))
    assert tr.stats["steps"] == 2


def test_save_load_roundtrip(tmp_path):
    tr = OnlineTrainer(UNet(), cfg(), "cpu")
    tr.train_now(make_pair())
    tr.save(tmp_path / "net.pt")
    other = OnlineTrainer(UNet(), cfg(), "cpu")
    other.load(tmp_path / "net.pt")
    assert all(torch.equal(other.weights()[1][k], v) for k, v in tr.weights()[1].items())
    other.train_now(make_pair(seed=5))  # the restored optimiser state works
    with pytest.raises(UserError):
        other.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError):
        other.load(tmp_path / "junk.pt")


def textured_scene(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(albedo, clean image): 4x4-pixel blocks of random colours under smooth light. Smoothing alone blurs the
    texture away; the network must use the albedo and the pair's statistics to denoise it."""
    g = torch.Generator().manual_seed(0)
    blocks = 0.1 + 0.9 * torch.rand(h // 4 + 1, w // 4 + 1, 3, generator=g)
    albedo = blocks.repeat_interleave(4, 0).repeat_interleave(4, 1)[:h, :w].contiguous()
    return albedo, albedo * clean_image(h, w)


@pytest.fixture(scope="module")
def online_runs():
    """The same 25 synthetic frames (x 4 iterations, 32x32) trained with noisy targets (Noise2Noise) and with the
    clean image as the target; PSNRs (dB) on 4 held-out pairs, with the pair average and image A as inputs."""
    albedo, clean = textured_scene(32, 32)

    def pair(seed, frame=0):
        p = make_pair(32, 32, frame=frame, seed=seed, clean=clean)
        p.albedo = albedo
        return p

    out = {}
    for target in ("noisy", "clean"):
        torch.manual_seed(0)
        tr = OnlineTrainer(UNet(), cfg(iters_per_frame=4, crop=32, lr=1e-3), "cpu", target=target)
        for i in range(25):
            tr.train_now(pair(100 + i, i), reference=clean if target == "clean" else None)
        den = Denoiser(UNet, "cpu")
        den.update(*tr.weights())
        held_out = [pair(999 + k) for k in range(4)]
        out[target] = sum(psnr_hdr(den.denoise_pair(p), clean) for p in held_out) / 4
        out["pair_average"] = sum(psnr_hdr(0.5 * (p.noisy_a + p.noisy_b), clean) for p in held_out) / 4
        out["image_a"] = sum(psnr_hdr(p.noisy_a, clean) for p in held_out) / 4
    return out


def test_noise2noise_learns_on_synthetic_pairs(online_runs):
    """Noisy targets only, on a textured image: the denoised pair beats the pair average (what the output saw) by
    a margin that averaging without a network (+0 dB) and training with target = input (measured +5.0 dB; it
    learns towards the identity) both fail. Measured with the right targets: +7.8 dB."""
    gain = online_runs["noisy"] - online_runs["pair_average"]
    assert gain > 6.5, online_runs


def test_noisy_targets_end_near_clean_targets(online_runs):
    """The paper's online claim (Figure 8) on a small case: Noise2Noise ends within 1.5 dB of the clean-target
    network trained on the same frames (measured 0.7 dB; with target = input it lands 3.5 dB below). On another
    texture (generator seed 7) the gap measured 1.7 dB at this budget, 2.8 dB after 40 frames: with this heavy
    noise the clean target learns faster early on, so keep the budget and texture when changing this test."""
    assert online_runs["noisy"] > online_runs["pair_average"] + 3.0, online_runs
    assert abs(online_runs["clean"] - online_runs["noisy"]) < 1.5, online_runs


def _target_recorder(tr: OnlineTrainer) -> list[float]:
    """Wrap the trainer's loss to record each step's target: image A is all 1, image B all 2."""
    seen, loss = [], tr._step.loss_fn

    def recording(pred, target):
        seen.append(round(target.mean().item()))
        return loss(pred, target)

    tr._step.loss_fn = recording
    return seen


def constant_pair(frame: int) -> Pair:
    p = make_pair(frame=frame)
    return Pair(torch.ones(32, 32, 3), torch.full((32, 32, 3), 2.0), p.albedo, p.normal, frame=frame)


@pytest.mark.parametrize("iters", [1, 3])
def test_directions_alternate_across_frames(iters):
    """A->B (target 2) and B->A (target 1) alternate over all steps, so with one iteration per frame, or an odd
    number, both directions train equally."""
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=iters, crop=8), "cpu")
    seen = _target_recorder(tr)
    for f in range(4):
        tr.train_now(constant_pair(f))
    assert seen == [2, 1] * (2 * iters)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trainer_on_cuda_thread_and_stream():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=4), "cuda").start()
    p = make_pair()
    tr.submit(Pair(*(t.cuda() for t in (p.noisy_a, p.noisy_b, p.albedo, p.normal))))
    assert wait_for(lambda: tr.stats["frames_trained"] == 1)
    den = Denoiser(UNet, "cuda")
    den.update(*tr.weights())
    out = den.denoise_pair(p)
    assert out.is_cuda and torch.isfinite(out).all()
    assert tr.stop(120.0)


def test_batch_assembly_directions_targets_and_crops():
    """batch.py alone: index 0 is A -> B, index 1 is B -> A (both -> the reference for clean targets), and a step's
    batch is one direction on a crop clamped to the frame, drawn from the given rng only."""
    net, p = UNet(), constant_pair(0)
    frame = frame_tensors(net, p.noisy_a, p.noisy_b, p.albedo, p.normal)
    inputs, targets = frame
    assert inputs.shape == (2, 9, 32, 32) and targets.shape == (2, 3, 32, 32)
    assert targets[0].eq(2).all() and targets[1].eq(1).all()  # A -> B, then B -> A
    assert not torch.equal(inputs[0], inputs[1])
    ref = torch.full((32, 32, 3), 5.0)
    _, clean_targets = frame_tensors(net, p.noisy_a, p.noisy_b, p.albedo, p.normal, reference=ref)
    assert clean_targets.eq(5).all()
    x, t = training_batch(frame, 1, 8, random.Random(0))
    assert x.shape == (1, 9, 8, 8) and t.shape == (1, 3, 8, 8) and t.eq(1).all()
    again = training_batch(frame, 1, 8, random.Random(0))
    assert torch.equal(x, again[0])  # the crop comes from the rng alone
    whole, _ = training_batch(frame, 0, 100, random.Random(0))
    assert whole.shape == (1, 9, 32, 32)  # clamped to the frame


def test_the_published_weights_are_a_running_average_of_the_trained_ones(monkeypatch):
    def weights(tr):
        return {k: v.clone() for k, v in tr.net.state_dict().items()}

    monkeypatch.setattr(trainer_module, "WEIGHT_AVERAGE_RAMP", 0)  # the full decay from the first step
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=1), "cpu")
    w0 = weights(tr)
    tr.train_now(make_pair())
    w1 = weights(tr)
    _, published = tr.weights()
    k = "enc_conv0.weight"
    assert not torch.equal(w1[k], w0[k])
    assert torch.allclose(published[k], w0[k] + (1 - WEIGHT_AVERAGE) * (w1[k] - w0[k]), atol=1e-7)
    tr.reset()  # a fresh network starts a fresh average
    assert all(torch.equal(tr.weights()[1][k], v) for k, v in tr.net.state_dict().items())
    for off in (cfg(iters_per_frame=1, weight_average=False), cfg(iters_per_frame=1, model="paper")):
        tr = OnlineTrainer(UNet(), off, "cpu")
        tr.train_now(make_pair())
        assert torch.equal(tr.weights()[1][k], tr.net.state_dict()[k])
