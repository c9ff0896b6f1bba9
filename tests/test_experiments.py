"""Tests of offline_experiments (issue 5): corruptions, MRI sampling, data, baselines, the paper's central claim on
a toy problem, and a smoke run of every experiment through the CLI. CPU only; tiny synthetic data in tmp_path."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from n2n_live.checkpoint import load_checkpoint, read_checkpoint
from n2n_live.errors import UserError
from n2n_live.losses import l0_annealed, l0_gamma, l1, l2
from n2n_live.train_step import TrainStep, rampdown_lr
from offline_experiments import baselines, cli, columns, corruptions as C, datasets, experiments, mri, training
from offline_experiments.presets import PRESETS
from offline_experiments.report import Column, Result, table_markdown

REPO = Path(__file__).resolve().parent.parent


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


def _write_volume(path: Path, shape=(40, 44, 30), empty=(0, 1, 2, 27, 28, 29)):
    import nibabel as nib

    vol = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    head = ((yy - shape[0] / 2) ** 2 / (0.4 * shape[0]) ** 2 + (xx - shape[1] / 2) ** 2 / (0.4 * shape[1]) ** 2) < 1
    for z in range(shape[2]):
        if z not in empty:
            vol[:, :, z] = head * (60 + 40 * np.sin(yy / 3.0 + z) * np.cos(xx / 4.0))
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    return path


def test_nifti_slices(tmp_path):
    f = _write_volume(tmp_path / "v.nii.gz")
    slices, pos = mri.load_slices(f, size=64)
    assert slices.shape == (24, 1, 64, 64)  # the six empty slices are skipped
    assert slices.min() >= 0 and slices.max() <= 1 and slices.max() > 0.9
    big, _ = mri.load_slices(_write_volume(tmp_path / "big.nii", shape=(80, 100, 8), empty=()), size=64)
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

def _images(folder: Path, n: int, size=(48, 56), mode="RGB", suffix=".png", seed=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = size + ((3,) if mode == "RGB" else ())
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8), mode).save(folder / f"img{i}{suffix}")
    return folder


def test_image_folder(tmp_path, recwarn):
    root = tmp_path / "train"
    _images(root / "a", 2)
    _images(root / "b", 1, size=(20, 20), mode="L", suffix=".bmp")
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


# ---------------------------------------------------------------------------------------------------------
# The CLI: a smoke run of every experiment, and bad input

TINY = dict(crop=32, batch=2, iters=2, eval_every=1, eval_images=1, eval_crop=32, baseline_images=1,
            brown_bandwidths=(1.0,), impulse_levels=(0.5,), impulse_eval_levels=(0.3, 0.8), levels_iters=2, capture_budget=40, mri_size=32,
            mri_iters=2, mri_eval_slices=2, workers=0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _images(root / "images" / "train" / "photos", 3, size=(40, 44))
    _images(root / "images" / "kodak", 1, size=(36, 40), seed=1)
    (root / "mri").mkdir()
    _write_volume(root / "mri" / "head.nii.gz")
    return root


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "quick", replace(PRESETS["quick"], **TINY))
    # BM3D costs seconds even on a 36x40 image; its own test covers it.
    monkeypatch.setattr(baselines, "bm3d_denoise", lambda noisy, sigma: noisy.clone())


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_every_experiment_smoke(name, tiny_data, tiny_preset, tmp_path):
    out = cli.run([name, "--data-root", str(tiny_data), "--eval", "kodak", "--out", str(tmp_path / "run")]
                  if name != "mri" else [name, "--data-root", str(tiny_data), "--out", str(tmp_path / "run")])
    table = (out / "table.md").read_text()
    assert "| data set |" in table and "input" in table
    for f in ("curves.png", "grid.png", "config.json", "stats.jsonl"):
        assert (out / f).stat().st_size > 0, f
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["experiment"] == name and cfg["preset"]["iters"] == 2
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert any(s.get("kind") == "final" for s in stats)
    if name in ("impulse", "impulse-levels"):
        assert (out / "levels.png").exists()
    if name == "impulse":
        assert "| 80 % |" in table  # the level sweep's table
    # Every trained network is saved for n2n-denoise, its kind the experiment's name.
    ckpts = sorted(out.glob("*.pt"))
    assert ckpts and len(ckpts) == sum(1 for s in stats if s.get("kind") == "final")
    state = read_checkpoint(ckpts[0])
    assert state["kind"] == name and state["n_in"] == (1 if name == "mri" else 3)
    assert state["meta"]["experiment"] == name and state["meta"]["iters"] == 2
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_saved_gaussian_network_denoises_a_png_through_n2n_denoise(tiny_data, tiny_preset, tmp_path):
    """An experiment's checkpoint goes through `python -m n2n_live.denoise_cli` and gives what the experiment's
    own inference seam (training.denoise: [0, 1] - 0.5 -> network -> + 0.5) gives, to 8-bit rounding."""
    from PIL import Image

    out = cli.run(["gaussian", "--data-root", str(tiny_data), "--eval", "kodak", "--targets", "noisy",
                   "--out", str(tmp_path / "g")])
    ckpt = out / "noisy-targets.pt"
    rng = np.random.default_rng(3)
    img = (rng.random((40, 52, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "noisy.png")
    r = subprocess.run([sys.executable, "-m", "n2n_live.denoise_cli", "--checkpoint", str(ckpt), "--input",
                        str(tmp_path / "noisy.png"), "--out", str(tmp_path / "clean.png"), "--device", "cpu"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = np.asarray(Image.open(tmp_path / "clean.png"), dtype=np.float32) / 255.0
    net, _ = load_checkpoint(ckpt)
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = training.denoise(net, x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1 / 255 + 1e-4


@pytest.mark.parametrize("name", [n for n in experiments.EXPERIMENTS if n not in cli.NO_TARGETS_CHOICE])
def test_targets_none_runs_only_the_baseline_and_input(name, tiny_data, tiny_preset, tmp_path):
    argv = [name, "--data-root", str(tiny_data), "--targets", "none", "--out", str(tmp_path / "run")]
    out = cli.run(argv + (["--eval", "kodak"] if name != "mri" else []))
    header = next(line for line in (out / "table.md").read_text().splitlines() if line.startswith("| data set |"))
    assert "input" in header and "targets" not in header
    assert not list(out.glob("*.pt")) and (out / "grid.png").exists()


def test_targets_flag_and_workers(tiny_data, tiny_preset, tmp_path):
    out = cli.run(["gaussian", "--data-root", str(tiny_data), "--eval", "kodak", "--targets", "noisy",
                   "--workers", "1", "--out", str(tmp_path / "g")])
    header = (out / "table.md").read_text().splitlines()[4]
    assert "noisy targets" in header and "clean targets" not in header


def test_other_target_type_reuses_the_cached_baseline(tiny_data, tiny_preset, tmp_path, monkeypatch):
    """`--targets none` (baselines only), then `noisy`, then `clean`: BM3D runs once per eval image, in the first
    run, and the later runs read it back."""
    calls = []

    def bm3d(noisy, sigma):
        calls.append(sigma)
        return noisy.clone() * 0.9

    monkeypatch.setattr(baselines, "bm3d_denoise", bm3d)
    monkeypatch.setenv("N2N_BASELINE_CACHE", str(tmp_path / "cache"))
    tables = []
    for targets in ("none", "noisy", "clean"):
        out = cli.run(["gaussian", "--data-root", str(tiny_data), "--eval", "kodak", "--targets", targets,
                       "--out", str(tmp_path / targets)])
        tables.append((out / "table.md").read_text().splitlines())
    assert len(calls) == 1
    bm3d_cells = [next(line for line in t if line.startswith("| Kodak |")).split("|")[-3] for t in tables]
    assert bm3d_cells[0] == bm3d_cells[1] == bm3d_cells[2]
    assert "| data set | images | BM3D | input |" in tables[0]  # no network trained or saved
    assert not list((tmp_path / "none").glob("*.pt"))


def test_cpu_preset_evaluates_whole_images_with_stated_subsets(tmp_path):
    """The cpu preset: whole images, every image of a set unless the set is capped (and then the cap is said)."""
    P = PRESETS["cpu"]
    assert P.eval_crop is None and P.eval_images is None and P.baseline_images is None
    _images(tmp_path / "kodak", 3, size=(20, 24))
    _images(tmp_path / "cbsd68", 4, size=(18, 22), seed=2)
    ctx = columns.Context(preset=replace(P, eval_limits=(("cbsd68", 2),)), targets="both",
                              device=torch.device("cpu"), seed=0, train_dir=tmp_path,
                              eval_dirs=[tmp_path / "kodak", tmp_path / "cbsd68"])
    sets = columns.eval_sets(ctx)
    assert [(name, len(images)) for name, images in sets] == [("kodak", 3), ("cbsd68", 2)]
    assert [name for name, _ in sets[1][1]] == ["img0.png", "img1.png"]  # the first files, a fixed subset
    assert all(img.shape[-2:] == (20, 24) for _, img in sets[0][1])  # not cropped
    note = columns.eval_note(ctx, sets)
    assert "whole images" in note and "kodak 3" in note and "cbsd68 2 (the first" in note


@pytest.mark.parametrize("argv, expect", [
    (["nosuch"], "unknown experiment"),
    (["gaussian", "--targets", "dirty"], "--targets"),
    (["capture-budget", "--targets", "none"], "--targets none"),
    (["gaussian", "--iters", "0"], "--iters"),
    (["gaussian", "--train-dir", "EMPTY", "--eval", "kodak"], "no images"),
    (["gaussian", "--eval", "kodak,EMPTY"], "no images"),
    (["gaussian", "--eval", "no/such/folder"], "no/such/folder"),
    (["mri", "--train-dir", "EMPTY"], "no NIfTI"),
    (["gaussian", "--bogus-flag"], "bogus"),
])
def test_bad_input_exits_2(argv, expect, tmp_path, tiny_data, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.replace("EMPTY", str(tmp_path / "empty")) for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--data-root", str(tiny_data), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_input_subprocess_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = subprocess.run([sys.executable, "-m", "offline_experiments.cli", "gaussian", "--train-dir",
                        str(tmp_path / "empty"), "--eval", str(tmp_path / "empty")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "empty" in r.stderr and "Traceback" not in r.stderr
