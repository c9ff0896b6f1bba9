"""n2n-experiment end to end: a smoke run of every experiment, --targets, the baseline cache, the cpu preset's
evaluation sets, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from n2n_live.checkpoint import load_checkpoint, read_checkpoint
from offline_experiments import baselines, cli, columns, experiments, training
from offline_experiments.presets import PRESETS
from tests.experiment_data import image_folder, nifti_volume

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------------------
# The CLI: a smoke run of every experiment, and bad input

TINY = dict(crop=32, batch=2, iters=2, eval_every=1, eval_images=1, eval_crop=32, baseline_images=1,
            brown_bandwidths=(1.0,), impulse_levels=(0.5,), impulse_eval_levels=(0.3, 0.8), levels_iters=2, capture_budget=40, mri_size=32,
            mri_iters=2, mri_eval_slices=2, workers=0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    image_folder(root / "images" / "train" / "photos", 3, size=(40, 44))
    image_folder(root / "images" / "kodak", 1, size=(36, 40), seed=1)
    (root / "mri").mkdir()
    nifti_volume(root / "mri" / "head.nii.gz")
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
    """An experiment's checkpoint goes through `python -m n2n_live.commands.denoise` and gives what the experiment's
    own inference seam (training.denoise: [0, 1] - 0.5 -> network -> + 0.5) gives, to 8-bit rounding."""
    from PIL import Image

    out = cli.run(["gaussian", "--data-root", str(tiny_data), "--eval", "kodak", "--targets", "noisy",
                   "--out", str(tmp_path / "g")])
    ckpt = out / "noisy-targets.pt"
    rng = np.random.default_rng(3)
    img = (rng.random((40, 52, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "noisy.png")
    r = subprocess.run([sys.executable, "-m", "n2n_live.commands.denoise", "--checkpoint", str(ckpt), "--input",
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
    image_folder(tmp_path / "kodak", 3, size=(20, 24))
    image_folder(tmp_path / "cbsd68", 4, size=(18, 22), seed=2)
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
    (["gaussian", "--eval", "BROKEN"], "no readable images"),  # images by name only: refused before --out is made
    (["mri", "--train-dir", "EMPTY"], "no NIfTI"),
    (["gaussian", "--bogus-flag"], "bogus"),
])
def test_bad_input_exits_2(argv, expect, tmp_path, tiny_data, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"not a JPEG")
    argv = [a.replace("EMPTY", str(tmp_path / "empty")).replace("BROKEN", str(tmp_path / "broken")) for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--data-root", str(tiny_data), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_tiff_eval_folder_of_16_bit_images_is_evaluated(tiny_data, tiny_preset, tmp_path):
    """TIFF test sets (McMaster ships as .tif) were refused as 'no images'; 16-bit ones are read at full depth."""
    from PIL import Image

    (tmp_path / "mcmaster").mkdir()
    ramp = (np.arange(36 * 40, dtype=np.uint32) * 37 % 65536).astype(np.uint16).reshape(36, 40)
    Image.fromarray(ramp).save(tmp_path / "mcmaster" / "a.tif")  # 16-bit greyscale
    out = cli.run(["gaussian", "--data-root", str(tiny_data), "--eval", str(tmp_path / "mcmaster"),
                   "--targets", "noisy", "--out", str(tmp_path / "run")])
    assert "| mcmaster | 1 |" in (out / "table.md").read_text()


def test_bad_input_subprocess_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = subprocess.run([sys.executable, "-m", "offline_experiments.cli", "gaussian", "--train-dir",
                        str(tmp_path / "empty"), "--eval", str(tmp_path / "empty")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "empty" in r.stderr and "Traceback" not in r.stderr
