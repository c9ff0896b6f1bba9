"""Tests of offline_experiments: corruptions, MRI sampling, data, baselines, the paper's central claim on
a toy problem (the CLI end to end: test_experiment_cli.py). CPU only; tiny synthetic data in tmp_path."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from n2n_live.errors import UserError
from n2n_live.losses import l0_annealed, l0_gamma, l1, l2
from n2n_live.train_step import TrainStep, rampdown_lr
from offline_experiments import baselines, columns, corruptions as C, datasets, mri, training
from offline_experiments.report import Column, Result, table_markdown
from tests.experiment_data import image_folder, nifti_volume

pytestmark = pytest.mark.numeric  # make test reruns these under ATEN_CPU_CAPABILITY=default



def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------
# Corruption statistics

def test_gaussian_zero_mean_and_sigma():
    x = torch.full((16, 3, 64, 64), 0.5)
    n = C.gaussian(x, 25.0, gen()) - x
    assert abs(n.mean().item()) < 2e-3
    assert n.std().item() * 255 == pytest.approx(25.0, rel=0.02)
    # Per-example levels: example i gets its own sigma.
    n = C.gaussian(x[:2], torch.tensor([0.0, 50.0]), gen()) - x[:2]
    assert n[0].abs().max() == 0 and n[1].std().item() * 255 == pytest.approx(50.0, rel=0.03)


def test_brown_gaussian_keeps_sigma_and_correlates_pixels():
    x = torch.zeros((8, 3, 64, 64))
    for b in (1.0, 3.0):
        n = C.brown_gaussian(x, 25.0, gen(), bandwidth=b)
        assert n.std().item() * 255 == pytest.approx(25.0, rel=0.08)
        corr = torch.corrcoef(torch.stack([n[..., :-1].flatten(), n[..., 1:].flatten()]))[0, 1]
        assert corr > 0.5  # neighbours are strongly correlated, unlike white noise
    white = C.gaussian(x, 25.0, gen())
    assert abs(torch.corrcoef(torch.stack([white[..., :-1].flatten(), white[..., 1:].flatten()]))[0, 1]) < 0.02


def test_poisson_mean_equals_signal():
    x = (0.05 + 0.95 * torch.rand((1, 3, 32, 32), generator=gen(1))).expand(400, -1, -1, -1).contiguous()
    y = C.poisson(x, 30.0, gen())
    # E[Poisson(lambda x)/lambda] = x: every pixel's mean within 5 standard errors, no bias overall.
    se = torch.sqrt(x[0] / 30.0 / 400)
    assert ((y.mean(0) - x[0]).abs() / se).max() < 5
    assert abs((y.mean(0) - x[0]).mean().item()) < 1e-3
    assert y.var(0).mean().item() == pytest.approx(x[0].mean().item() / 30.0, rel=0.05)  # Var = x/lambda


def test_bernoulli_mask_rate_and_independence():
    x = torch.rand((8, 3, 64, 64))
    y, m = C.bernoulli(x, 0.5, gen())
    assert m.shape == (8, 1, 64, 64)
    assert 1 - m.mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.equal(y, x * m)  # a missing pixel is zero in every channel
    _, m2 = C.bernoulli(x, 0.5, gen(1))
    assert (m != m2).float().mean().item() == pytest.approx(0.5, abs=0.02)  # input and target masks differ


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_text_coverage_close_to_p(p):
    x = torch.full((4, 3, 128, 128), 0.5)
    y = C.text(x, p, gen())
    changed = ((y - x).abs().sum(1) > 0).float().mean().item()
    assert changed == pytest.approx(p, abs=0.04)  # a random colour can equal 0.5: "changed" <= covered


def test_impulse_rate():
    x = torch.full((8, 3, 64, 64), 0.5)
    y = C.impulse(x, 0.7, gen())
    assert ((y != x).any(1)).float().mean().item() == pytest.approx(0.7, abs=0.01)
    assert y.min() >= 0 and y.max() <= 1


def test_corruptions_are_reproducible_with_a_seed():
    x = torch.rand((2, 3, 32, 32))
    for c in C.CORRUPTIONS.values():
        a, b = c.apply(x, c.eval_level, gen(5)), c.apply(x, c.eval_level, gen(5))
        a, b = (a[0], b[0]) if c.masked else (a, b)
        assert torch.equal(a, b), c.name


# ---------------------------------------------------------------------------------------------------------
# MRI

def test_mri_expected_sampled_spectrum_is_the_spectrum():
    torch.manual_seed(0)
    x = torch.rand((1, 1, 16, 16))
    s = mri.KSpaceSampler(16, 16)
    n = 3000
    spec = torch.fft.fft2(x)[0, 0]
    total = torch.zeros_like(spec)
    g = gen(1)
    for _ in range(n // 500):
        total += s.sampled_spectrum(x.expand(500, -1, -1, -1), g)[:, 0].sum(0)
    avg = total / n
    # Each frequency's estimate has standard error |F| sqrt((1/q - 1)/n) (Russian roulette with 1/q weights).
    se = spec.abs() * torch.sqrt((1 / s.q - 1) / n)
    assert torch.all((avg - spec).abs() <= 5 * se + 1e-3 * spec.abs().max())


def test_mri_retains_ten_percent_and_stays_real():
    s = mri.KSpaceSampler(64, 64)
    assert s.q.mean().item() == pytest.approx(0.10, abs=1e-4)
    x = torch.rand((20, 1, 64, 64))
    img, measured, keep = s(x, gen())
    assert keep.float().mean().item() == pytest.approx(0.10, abs=0.01)
    assert keep[:, :, 0, 0].all()  # DC: p(0) = 1
    # Hermitian keep masks make the undersampled image real: the discarded imaginary part is ~0.
    assert torch.fft.ifft2(measured / s.q).imag.abs().max() < 1e-5
    assert img.shape == x.shape and img.dtype == torch.float32


def test_spectral_replacement_keeps_known_frequencies_exactly():
    s = mri.KSpaceSampler(32, 32)
    x = torch.rand((3, 1, 32, 32))
    _, measured, keep = s(x, gen())
    pred = torch.randn((3, 1, 32, 32), requires_grad=True)
    out = mri.spectral_replace(pred, measured, keep)
    spec = torch.fft.fft2(out)
    scale = measured.abs().max()
    assert ((spec - measured).abs()[keep] / scale).max() < 1e-5  # known frequencies: the measured values
    assert ((spec - torch.fft.fft2(pred))[~keep].abs() / scale).max() < 1e-5  # the rest: the network's
    out.sum().backward()  # differentiable, so the loss trains through it
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert torch.allclose(mri.zero_filled(measured), torch.fft.ifft2(measured).real)




def test_nifti_slices(tmp_path):
    f = nifti_volume(tmp_path / "v.nii.gz")
    slices, pos = mri.load_slices(f, size=64)
    assert slices.shape == (24, 1, 64, 64)  # the six empty slices are skipped
    assert slices.min() >= 0 and slices.max() <= 1 and slices.max() > 0.9
    big, _ = mri.load_slices(nifti_volume(tmp_path / "big.nii", shape=(80, 100, 8), empty=()), size=64)
    assert big.shape == (8, 1, 64, 64)  # larger slices are scaled down to fit
    train, val = mri.load_mri_sets([f], [f], 64)  # same volume: disjoint axial slabs
    assert len(train) + len(val) < 24 and len(val) > 0
    (tmp_path / "bad.nii.gz").write_bytes(b"not a volume")
    with pytest.raises(UserError, match="bad.nii.gz"):
        mri.load_slices(tmp_path / "bad.nii.gz")
    # In a folder of volumes, a broken one is skipped with a warning naming it; nothing usable is an error.
    (tmp_path / "vols").mkdir()
    f.rename(tmp_path / "vols" / "v.nii.gz")
    (tmp_path / "bad.nii.gz").rename(tmp_path / "vols" / "bad.nii.gz")
    with pytest.warns(UserWarning, match="bad.nii.gz"):
        train, _ = mri.load_mri_sets([tmp_path / "vols"], [tmp_path / "vols"], 64)
    assert len(train) > 0
    with pytest.warns(UserWarning), pytest.raises(UserError, match="no non-empty training slices"):
        mri.load_mri_sets([tmp_path / "vols" / "bad.nii.gz"], [tmp_path / "vols"], 64)


# ---------------------------------------------------------------------------------------------------------
# Losses and the paper's statistics

def test_l0_annealing_schedule():
    assert l0_gamma(0.0) == 2.0 and l0_gamma(0.5) == pytest.approx(1.0) and l0_gamma(1.0) == 0.0
    kw = columns._loss_kw("l0")
    assert kw(0.0) == {"gamma": 2.0} and kw(1.0) == {"gamma": 0.0}
    assert columns._loss_kw("l2") is None


def test_l2_l1_l0_find_mean_median_mode():
    """Section 2 / Figure 4 on one pixel: 70 % uniform impulses on top of a true value of 0.8.
    The minimiser of the shared losses over the samples: L2 -> mean 0.59, L1 -> median 0.714, L0 -> mode 0.8
    (gamma near the end of its annealing)."""
    y = C.impulse(torch.full((1, 1, 200, 200), 0.8), 0.7, gen(3))
    grid = torch.linspace(0, 1, 401)

    def argmin(fn, **kw):
        return grid[int(torch.argmin(torch.stack([fn(torch.full_like(y, float(z)), y, **kw) for z in grid])))].item()

    assert argmin(l2) == pytest.approx(0.59, abs=0.01)
    assert argmin(l1) == pytest.approx(0.5 / 0.7, abs=0.01)
    assert argmin(l0_annealed, gamma=l0_gamma(0.95)) == pytest.approx(0.8, abs=0.005)
    assert argmin(l0_annealed, gamma=l0_gamma(0.0)) == pytest.approx(argmin(l2), abs=0.005)  # gamma 2 is L2


def _smooth_images(n, size, g):
    k = C.gaussian_kernel1d(2.0)
    r = (k.numel() - 1) // 2
    w = torch.rand((n, 1, size + 2 * r, size + 2 * r), generator=g)
    x = torch.nn.functional.conv2d(torch.nn.functional.conv2d(w, k.view(1, 1, -1, 1)), k.view(1, 1, 1, -1))
    return (x - x.mean()) * 4 + 0.5


def test_noisy_targets_reach_the_clean_target_solution():
    """The paper's claim (Eq. 6, Appendix A.3) on a toy problem: a 5x5 linear denoiser trained with the shared
    TrainStep on zero-mean-noisy targets learns what it learns from clean targets."""
    sigma = 0.2
    nets = {}
    for targets in ("clean", "noisy"):
        g = gen(7)  # same images and input noise for both; only the targets differ
        torch.manual_seed(0)
        net = torch.nn.Conv2d(1, 1, 5, padding=2)
        ts = TrainStep(net, l2, lr=0.02)
        steps = 500
        for i in range(steps):
            ts.set_lr(rampdown_lr(i, steps, 0.02, 0.5))
            x = _smooth_images(16, 32, g)
            inp = x + sigma * torch.randn(x.shape, generator=g)
            tgt = x if targets == "clean" else x + sigma * torch.randn(x.shape, generator=g)
            ts.step(inp, tgt)
        nets[targets] = net
    g = gen(99)
    x = _smooth_images(32, 32, g)
    inp = x + sigma * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        out = {k: n(inp) for k, n in nets.items()}
    mse = {k: torch.mean((o - x) ** 2).item() for k, o in out.items()}
    mse_in = torch.mean((inp - x) ** 2).item()
    assert mse["clean"] < 0.5 * mse_in  # the denoiser does denoise
    assert 10 * math.log10(mse["clean"] / mse["noisy"]) == pytest.approx(0.0, abs=0.1)  # within 0.1 dB
    assert torch.mean((out["clean"] - out["noisy"]) ** 2).item() < 0.05 * mse["clean"]  # the same function


# ---------------------------------------------------------------------------------------------------------
# Data and baselines



def test_image_folder(tmp_path, recwarn):
    root = tmp_path / "train"
    image_folder(root / "a", 2)
    image_folder(root / "b", 1, size=(20, 20), mode="L", suffix=".bmp")
    (root / "broken.jpg").write_bytes(b"not an image")
    ds = datasets.ImageFolder(root, crop=32)
    assert len(ds) == 2  # the small image is skipped, the broken one too
    msgs = " ".join(str(w.message) for w in recwarn)
    assert "broken.jpg" in msgs and "smaller than" in msgs
    b = ds.batch(3, gen())
    assert b.shape == (3, 3, 32, 32) and b.dtype == torch.float32 and 0 <= b.min() and b.max() <= 1
    # Only small images: they are padded, never a hang.
    only_small = datasets.ImageFolder(root / "b", crop=64)
    x = only_small.batch(2, gen())
    assert x.shape == (2, 3, 64, 64) and torch.equal(x[:, 0], x[:, 1])  # greyscale -> 3 equal channels
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images .* in .*empty"):
        datasets.ImageFolder(tmp_path / "empty", crop=32)


def test_image_folders_read_16_bit_and_tiff_at_full_precision(tmp_path):
    """16-bit PNG and TIFF images are found, kept as uint16 and cropped at full precision (Pillow alone saturated
    16-bit PNGs to 8 bits and the folder scan skipped .tif); 8-bit images stay uint8, exactly as Pillow reads them."""
    import png
    from PIL import Image

    ramp = (np.arange(40 * 40 * 3, dtype=np.uint32) * 13 % 65536).astype(np.uint16).reshape(40, 40, 3)
    png.from_array(ramp.reshape(40, -1), "RGB;16").save(str(tmp_path / "rgb16.png"))
    Image.fromarray(ramp[..., 1]).save(tmp_path / "grey16.tif")
    eight = image_folder(tmp_path / "eight", 1, size=(40, 40), suffix=".tif")
    assert [f.name for f in datasets.list_images(tmp_path)] == ["img0.tif", "grey16.tif", "rgb16.png"]
    evals = dict(datasets.load_eval_folder(tmp_path))
    assert torch.equal(evals["rgb16.png"], torch.from_numpy(ramp / np.float32(65535)).permute(2, 0, 1))
    ds = datasets.ImageFolder(tmp_path, crop=40)
    stored = {f.name: ds.image(i) for i, f in enumerate(ds.files)}
    assert stored["rgb16.png"].dtype == stored["grey16.tif"].dtype == torch.uint16
    assert torch.equal(stored["rgb16.png"].int(), torch.from_numpy(ramp.astype(np.int32)).permute(2, 0, 1))
    assert torch.equal(stored["grey16.tif"][2].int(), torch.from_numpy(ramp[..., 1].astype(np.int32)))
    with Image.open(eight / "img0.tif") as im:
        pil = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    assert stored["img0.tif"].dtype == torch.uint8 and torch.equal(stored["img0.tif"], pil)
    crop = ds.crop_at(ds.files.index(tmp_path / "rgb16.png"), gen())
    assert torch.equal(crop, evals["rgb16.png"])  # the whole 40x40 image: its crop is it, at 16 bits


def test_a_folder_without_a_decodable_image_is_refused_in_one_line(tmp_path):
    (tmp_path / "a.png").write_bytes(b"a PNG by name only")
    (tmp_path / "b.tif").write_bytes(b"II*\0")
    with pytest.raises(UserError, match=r"no readable images in .* \(2 unreadable; the first: .*a.png: not a"):
        datasets.check_readable(tmp_path)
    image_folder(tmp_path, 1, size=(8, 8))
    assert len(datasets.check_readable(tmp_path)) == 3


def test_inverse_anscombe_is_unbiased():
    from scipy.stats import poisson

    for mu in (2.0, 5.0, 30.0):
        k = np.arange(0, int(mu * 4 + 40))
        expected_a = np.sum(poisson.pmf(k, mu) * baselines.anscombe(k))
        assert float(baselines.inverse_anscombe_unbiased(expected_a)) == pytest.approx(mu, rel=0.02)
        naive = (expected_a / 2) ** 2 - 3 / 8  # the algebraic inverse is biased at low counts
        if mu <= 5:
            assert abs(naive - mu) > 3 * abs(float(baselines.inverse_anscombe_unbiased(expected_a)) - mu)


def test_bm3d_and_median_baselines_denoise():
    g = gen(0)
    x = torch.nn.functional.interpolate(torch.rand((1, 1, 8, 8), generator=g), size=(32, 32), mode="bilinear")[0]
    noisy = C.gaussian(x[None], 25.0, g)[0]
    err = lambda a: torch.mean((a - x) ** 2).item()  # noqa: E731
    assert err(baselines.bm3d_denoise(noisy, 25 / 255)) < 0.5 * err(noisy)  # one grey channel: fast
    imp = C.impulse(x.expand(3, -1, -1)[None], 0.2, g)[0]
    assert err(baselines.median_filter(imp, 3)) < 0.5 * torch.mean((imp - x) ** 2).item()


def test_stats_log_appends_records(tmp_path):
    """One line per record, appended to the same file (not the whole file rewritten per record); a new log of the
    same path starts afresh."""
    path = tmp_path / "stats.jsonl"
    log = training.StatsLog(path)
    with open(path, "a"):  # (created here and held open, so that a replacement cannot reuse its inode number)
        inode = path.stat().st_ino
        for i in (1, 2, 3):
            log.add(iter=i, psnr=20.0 + i)
            assert path.stat().st_ino == inode  # the same file, appended to; not a new file renamed over it
    assert [json.loads(line)["iter"] for line in path.read_text().splitlines()] == [1, 2, 3]
    training.StatsLog(path).add(iter=1)
    assert len(path.read_text().splitlines()) == 1


def test_table_average_is_mean_of_set_means():
    cols = [Column("noisy targets", {"a": [30.0, 32.0], "b": [28.0]}), Column("input", {"a": [20.0], "b": [22.0]},
                                                                               "input")]
    md = table_markdown(Result("x", "T", ["a", "b"], cols))
    assert "| **Average** | 3 | **29.50** | **21.00** |" in md  # images: 2 + 1
    assert "| a | 2 | 31.00 | 20.00 |" in md
