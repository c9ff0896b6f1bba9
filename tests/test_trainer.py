"""OnlineTrainer and Denoiser on synthetic frame pairs (no renderer): threads, mailbox, weights, NaN/Inf, sizes."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
import torch

from n2n_live.config import LiveConfig
from n2n_live.denoiser import Denoiser
from n2n_live.errors import UserError
from n2n_live.metrics import psnr_hdr
from n2n_live.network import UNet
from n2n_live.trainer import OnlineTrainer, finite_weights


@dataclass
class Pair:  # the fields of renderer.tracer.FramePair that the trainer and denoiser read
    noisy_a: torch.Tensor
    noisy_b: torch.Tensor
    albedo: torch.Tensor
    normal: torch.Tensor
    frame: int = 0
    seeds: tuple = (0, 1)
    render_ms: float = 0.0


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on shared, busy cores OpenMP teams spin-wait and a step gets ~10x slower (measured:
    the synthetic learning test took 65 s with two threads on the loaded 2-core machine, 5 s unloaded)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def wait_for(pred, timeout=20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_start_stop_while_training_returns_within_2s():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=10_000, crop=64), "cpu").start()
    tr.submit(make_pair(64, 64))
    assert wait_for(lambda: tr.stats["steps"] >= 1)
    t0 = time.monotonic()
    assert tr.stop(timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    assert not tr.running


def test_stop_idle_thread_and_restart():
    tr = OnlineTrainer(UNet(), cfg(), "cpu").start()
    t0 = time.monotonic()
    assert tr.stop(2.0) and time.monotonic() - t0 < 2.0
    tr.start()
    tr.submit(make_pair())
    assert wait_for(lambda: tr.stats["frames_trained"] == 1)
    assert tr.stop(2.0)


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
    time.sleep(0.2)
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
    assert tr.stop(2.0)
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
    assert finite_weights(tr.net) and finite_weights(tr.weights()[1])
    # a finite but absurd firefly overflows the loss: the step is skipped and counted, weights stay finite
    q = make_pair(32, 32, seed=1)
    q.noisy_b[:] = 3e38
    q.noisy_a[:] = 3e38
    before = s["skipped"]
    tr.train_now(q)
    assert tr.stats["skipped"] > before
    assert finite_weights(tr.net)
    # and training goes on normally afterwards
    tr.train_now(make_pair(32, 32, seed=2))
    assert finite_weights(tr.net) and tr.stats["steps"] >= 3


def test_pause_stops_the_step_counter():
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=10_000), "cpu").start()
    tr.submit(make_pair())
    assert wait_for(lambda: tr.stats["steps"] >= 2)
    tr.pause()
    assert tr.paused
    time.sleep(0.3)  # let the step in flight finish
    n = tr.stats["steps"]
    time.sleep(0.5)
    assert tr.stats["steps"] == n
    tr.resume()
    assert wait_for(lambda: tr.stats["steps"] > n)
    assert tr.stop(2.0)


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
    # reset while the thread runs is applied between two steps
    tr.start()
    tr.submit(make_pair(seed=4))
    assert wait_for(lambda: tr.stats["frames_trained"] >= 3)
    v = tr.version
    tr.reset()
    assert wait_for(lambda: tr.version > v)
    assert tr.stop(2.0)


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


def test_noise2noise_learns_on_synthetic_pairs():
    """Noisy targets only: the denoised image beats the noisy input against the clean image."""
    torch.manual_seed(0)
    tr = OnlineTrainer(UNet(), cfg(iters_per_frame=4, crop=32, lr=1e-3), "cpu")
    den = Denoiser(UNet, "cpu")
    clean = clean_image(32, 32)
    for i in range(25):
        tr.train_now(make_pair(frame=i, seed=100 + i, clean=clean))
    den.update(*tr.weights())
    p = make_pair(seed=999, clean=clean)
    gain = psnr_hdr(den.denoise_pair(p), clean) - psnr_hdr(p.noisy_a, clean)
    assert gain > 3.0, gain


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
    assert tr.stop(2.0)
