"""`n2n-live --headless` as a user runs it (subprocesses): outputs, the PSNR margin, bad input, Ctrl-C."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import default_sigint
import torch

from n2n_live.live import oidn
from n2n_live.checkpoint import load_checkpoint
from n2n_live.commands.cli import build_config, build_parser, main, parse_size
from n2n_live.errors import UserError
from n2n_live.exr import read_exr

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args, cwd, timeout=300, env_extra=None, drop_display=True):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if drop_display:
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "n2n_live", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def mean(values):
    return sum(values) / len(values)


@pytest.mark.slow
def test_end_to_end_headless_writes_everything_and_denoises(tmp_path):
    """64x64 Cornell box, 60 frames, sync, fixed seed: the network must beat its input by >= 1 dB at the end."""
    out = tmp_path / "run"
    compare = "oidn" if oidn.available() else ""
    t0 = time.monotonic()
    res = run_cli(["--headless", "--scene", "cornell-box", "--size", "64", "--crop", "64", "--frames", "60",
                   "--spp", "8", "--iters-per-frame", "8", "--lr", "1e-3", "--seed", "0", "--reference-spp", "32",
                   "--eval-every", "1", "--sync", "--no-progress", "--out", str(out)] + (["--compare", compare] if compare else []),
                  cwd=tmp_path, timeout=600)
    seconds = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    print(f"headless 60 frames: {seconds:.1f} s")
    rows = read_rows(out / "metrics.csv")
    assert len(rows) == 60 and [int(r["frame"]) for r in rows] == list(range(60))
    for col in ("frame", "render_ms", "train_ms", "infer_ms", "loss", "psnr_input", "psnr_denoised"):
        assert col in rows[0]
    assert ("psnr_oidn" in rows[0]) == bool(compare) and "psnr_clean_target" not in rows[0]
    last = rows[-10:]
    gain = mean([float(r["psnr_denoised"]) for r in last]) - mean([float(r["psnr_input"]) for r in last])
    assert gain >= 1.0, f"denoised only {gain:+.2f} dB over the input over the last 10 frames"
    # every output is there
    for name in ("psnr.png", "last_frame_strip.png", "last_frame.exr", "config.json", "network.pt", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    pngs = sorted(p.name for p in (out / "frames").glob("*.png"))
    for f in (0, 59):
        for kind in ("noisy", "denoised", "reference"):
            assert f"frame_{f:04d}_{kind}.png" in pngs
    layers = read_exr(out / "last_frame.exr")
    assert {"", "noisy_b", "albedo", "normal", "denoised", "reference"} <= set(layers)
    assert layers["denoised"].shape == (64, 64, 3)
    net, state = load_checkpoint(out / "network.pt")
    assert state["kind"] == "mc" and all(torch.isfinite(p).all() for p in net.parameters())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["scene"] == "cornell-box" and cfg["frames"] == 60 and cfg["sync"] is True
    assert "results in" in res.stdout and "denoised" in res.stdout


def test_compare_clean_and_oidn_columns(tmp_path):
    compare = "clean,oidn" if oidn.available() else "clean"
    out = tmp_path / "cmp"
    res = run_cli(["--headless", "--size", "32", "--crop", "32", "--frames", "3", "--iters-per-frame", "1",
                   "--reference-spp", "8", "--compare", compare, "--sync", "--no-progress", "--snapshots", "1",
                   "--out", str(out)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_rows(out / "metrics.csv")
    assert len(rows) == 3 and rows[-1]["psnr_clean_target"] != ""
    if oidn.available():
        assert rows[-1]["psnr_oidn"] != ""
        assert "OIDN" in res.stdout
    assert "clean" in read_exr(out / "last_frame.exr")


def test_oidn_same_samples_and_history_columns_in_process(tmp_path, monkeypatch):
    """"OIDN, same samples" and the histories' own PSNR in metrics.csv, summary.json and the summary line beside
    "OIDN, this frame"; empty with temporal reuse off. OIDN is faked (returns its input), so OIDN-same's PSNR is
    the histories' and OIDN-this-frame's the input's. Mutants caught: psnr_oidn_same left out of the columns / the
    summary / the line; OIDN-same handed the raw pair."""
    import io

    from PIL import Image

    from n2n_live.commands.headless import run_headless
    from n2n_live.live.config import LiveConfig

    monkeypatch.setattr(oidn, "available", lambda: True)
    monkeypatch.setattr(oidn, "denoise", lambda colour, albedo=None, normal=None, quality="high": colour.clone())
    runs, strips, layers = {}, {}, {}
    for temporal in (True, False):
        out, stream = tmp_path / f"t{temporal}", io.StringIO()
        cfg = LiveConfig(scene="cornell-box", width=16, height=16, crop=16, spp=2, frames=3, iters_per_frame=1,
                         sync=True, model="paper", temporal=temporal, compare=("oidn",), reference_spp=8,
                         reference_cache="off", eval_every=1, snapshots=0, out=str(out))
        summary = run_headless(cfg, progress=False, stream=stream)
        runs[temporal] = (read_rows(out / "metrics.csv"), summary, json.loads((out / "summary.json").read_text()),
                          stream.getvalue())
        strips[temporal] = Image.open(out / "last_frame_strip.png").width
        layers[temporal] = set(read_exr(out / "last_frame.exr"))
    rows, summary, saved, text = runs[True]
    assert {"psnr_oidn", "psnr_oidn_same", "flicker_oidn", "flicker_oidn_same", "psnr_history"} <= set(rows[0])
    for row in rows:
        assert row["psnr_oidn_same"] == row["psnr_history"] != "" and row["psnr_oidn"] == row["psnr_input"]
    assert all(row["psnr_oidn_same"] != row["psnr_oidn"] for row in rows[1:])  # frame 0's history is its pair
    assert rows[0]["flicker_oidn_same"] == "" and rows[-1]["flicker_oidn_same"] != ""  # two evaluated in a row
    assert saved["psnr_oidn_same"] == summary["psnr_oidn_same"] == summary["psnr_history"] > 0
    assert saved["psnr_oidn"] > 0 and "OIDN this frame" in text
    assert f"OIDN same samples {summary['psnr_oidn_same']:.2f} dB" in text
    assert f"temporal histories (what the network reads) {summary['psnr_history']:.2f} dB" in text
    rows, summary, saved, text = runs[False]
    assert "psnr_oidn_same" in rows[0] and all(row["psnr_oidn_same"] == "" and row["psnr_oidn"] != "" for row in rows)
    assert saved["psnr_oidn_same"] is None and saved["psnr_oidn"] > 0
    assert "OIDN this frame" in text and "same samples" not in text
    # the last frame's strip has one more panel (OIDN same samples), its EXR one more layer
    assert strips[True] > strips[False] and "oidn_same" in layers[True] and "oidn_same" not in layers[False]


def test_no_display_falls_back_to_headless(tmp_path):
    res = run_cli(["--size", "32", "--crop", "32", "--frames", "2", "--iters-per-frame", "1", "--reference-spp", "4",
                   "--compare", "", "--no-progress"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len([line for line in res.stderr.splitlines() if "no display" in line]) == 1, res.stderr
    assert (tmp_path / "out" / "headless" / "metrics.csv").is_file()


def test_no_arguments_config_is_the_device_preset():
    args = build_parser().parse_args([])
    cfg = build_config(args, headless=True)
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    from n2n_live.live.config import PRESETS

    assert (cfg.width, cfg.crop, cfg.frames, cfg.lr) == (PRESETS[expected].width, PRESETS[expected].crop,
                                                         PRESETS[expected].frames, PRESETS[expected].lr)
    assert cfg.out == os.path.join("out", "headless") and cfg.pace and cfg.reference_spp > 0


def test_flags_override_the_preset():
    args = build_parser().parse_args(["--preset", "gpu", "--size", "96x48", "--crop", "512", "--compare", "oidn",
                                      "--device", "cpu", "--seed", "7"])
    cfg = build_config(args, headless=True)
    assert (cfg.width, cfg.height, cfg.crop, cfg.compare, cfg.seed, cfg.device) == (96, 48, 512, ("oidn",), 7, "cpu")
    assert parse_size("33") == (33, 33)


@pytest.mark.parametrize("argv,needle", [
    (["--size", "abc"], "--size"),
    (["--size", "0x5"], "--size"),
    (["--compare", "clean,bogus"], "bogus"),
    (["--compare", "clean", "--reference-spp", "0"], "reference"),
    (["--frames", "0"], "frames"),
])
def test_bad_options_exit_2_in_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--headless", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_bad_scenes_exit_2_without_traceback(tmp_path):
    no_sensor = tmp_path / "nosensor.xml"
    no_sensor.write_text("<scene version='3.0.0'><shape type='sphere'/></scene>")
    broken = tmp_path / "broken.xml"
    broken.write_text("<scene version='3.0.0'><shape type='sphere'>")
    cases = [("no-such-scene", "no-such-scene"), (str(tmp_path / "missing.xml"), "missing.xml"),
             (str(broken), "broken.xml"), (str(no_sensor), "sensor")]
    for scene, needle in cases:
        res = run_cli(["--headless", "--scene", scene, "--size", "32", "--frames", "1", "--out", str(tmp_path / "o")],
                      cwd=tmp_path, timeout=120)
        assert res.returncode == 2, (scene, res.stderr[-2000:])
        err = res.stderr.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1 and needle in err, err
        assert not (tmp_path / "o" / "metrics.csv").exists()


def test_ctrl_c_stops_and_keeps_metrics(tmp_path):
    """Ctrl-C mid-run: exit 130 after the step in flight (the trainer's stop waits at most 2 s), whole metric rows,
    no temporaries. The time to stop is printed, not asserted: a loaded machine is slow, not wrong."""
    out = tmp_path / "int"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DISPLAY", None)
    # asynchronous mode: the trainer thread is mid-step most of the time when the signal arrives
    proc = subprocess.Popen([sys.executable, "-m", "n2n_live", "--headless", "--size", "64", "--crop", "64",
                             "--frames", "100000", "--reference-spp", "8", "--iters-per-frame", "8", "--compare", "",
                             "--no-progress", "--out", str(out)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end and proc.poll() is None:
            if (out / "metrics.csv").is_file() and len(read_rows(out / "metrics.csv")) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        print(f"stopped {time.monotonic() - t0:.2f} s after Ctrl-C")
    finally:
        if proc.poll() is None:
            proc.kill()
    out_text, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    said = [line for line in out_text.splitlines() + err.splitlines() if "interrupted" in line]
    assert len(said) == 1 and said[0].startswith("n2n-live: interrupted after "), out_text + err  # once, not twice
    rows = read_rows(out / "metrics.csv")
    assert len(rows) >= 2 and [int(r["frame"]) for r in rows] == list(range(len(rows)))  # whole rows only
    assert (out / "psnr.png").is_file()  # plotted after the first frame; not redrawn on Ctrl-C (too slow)
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]  # atomic_path's temporaries are gone


def test_size_parsing_errors_are_user_errors():
    with pytest.raises(UserError):
        parse_size("12x")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_headless_on_cuda(tmp_path):
    res = run_cli(["--headless", "--device", "cuda", "--size", "64", "--frames", "3", "--reference-spp", "8",
                   "--no-progress", "--out", str(tmp_path / "gpu")], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(read_rows(tmp_path / "gpu" / "metrics.csv")) == 3


def test_bad_size_and_device_exit_2_in_subprocesses(tmp_path):
    """As a user runs it: a bad --size, or --device cuda without CUDA -> exit 2, one line naming the problem, no
    Traceback, nothing written. The interpreters run side by side (each is mostly torch's import)."""
    cases = [(["--size", "0x32"], "0x32"), (["--size", "big"], "big")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "--device cuda"))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "o"
    procs = [(args, needle, subprocess.Popen([sys.executable, "-m", "n2n_live", "--headless", "--frames", "1",
                                              "--no-progress", "--out", str(out), *args], cwd=tmp_path, env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for args, needle in cases]
    for args, needle, proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 2, (args, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (args, err)
        assert lines[0].startswith("n2n-live: error: ") and needle in lines[0], (args, lines[0])
    assert not out.exists()
