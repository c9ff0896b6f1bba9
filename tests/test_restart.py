"""n2n-experiment after kill -9: the same command again restarts the run cleanly in its folder; no
corrupt table.md or checkpoint, no temporaries, no stats of two runs mixed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from n2n_live.checkpoint import read_checkpoint
from offline_experiments import cli
from tests.experiment_data import image_folder

REPO = Path(__file__).resolve().parent.parent


def _weights(path: Path) -> dict:
    return read_checkpoint(path)["net"]


def test_killed_experiment_resumes_where_it_stopped(tmp_path):
    """Killed while training its second network, the same command again loads the finished first network, resumes
    the second from its saved state and ends with exactly the weights of an uninterrupted run."""
    data = tmp_path / "data"
    image_folder(data / "images" / "train", 3, size=(40, 44))
    image_folder(data / "images" / "kodak", 1, size=(40, 44), seed=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "offline_experiments.cli", "gaussian", "--data-root", str(data), "--eval",
                "kodak", "--iters", "60", "--eval-images", "1", "--threads", "1", "--device", "cpu", "--out", str(out)]

    whole = tmp_path / "whole"
    r = subprocess.run(command(whole), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "run"
    # First run: killed as soon as the second network (noisy targets) has saved a training state.
    p = subprocess.Popen(command(out), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / ".noisy-targets.state.pt"
    deadline = time.monotonic() + 600
    while not state.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] is False and not (out / "table.md").exists()
    resumed_at = read_checkpoint(state)["train_state"]["iter"]
    assert 0 < resumed_at < 60
    for pt in out.glob("*.pt"):
        read_checkpoint(pt)  # whatever exists is whole (atomic writes)
    (out / ".noisy-targets.abc123.tmp.pt").write_bytes(b"half a checkpoint")  # what a kill mid-write leaves

    # The same command again: the first network is loaded, the second resumes, both end as in the whole run.
    r = subprocess.run(command(out), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resuming it" in r.stderr
    assert "clean targets: trained before the interruption" in r.stderr
    assert f"noisy targets: resuming at iteration {resumed_at} of 60" in r.stderr
    assert json.loads((out / "config.json").read_text())["finished"] is True
    for name in ("clean-targets.pt", "noisy-targets.pt"):
        a, b = _weights(whole / name), _weights(out / name)
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name}: resumed weights differ from an uninterrupted run"
    assert (out / "table.md").read_text() == (whole / "table.md").read_text()
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert sorted(s["run"] for s in stats if s.get("kind") == "final") == ["clean targets", "noisy targets"]
    curve = [s["iter"] for s in stats if s.get("run") == "noisy targets" and "iter" in s]
    assert curve == sorted(set(curve)), "a resumed run repeated curve points"
    assert not list(out.glob(".*tmp*")) and not list(out.glob(".*.state.pt"))


def test_a_finished_run_starts_afresh(tmp_path):
    """Only an unfinished run of the same command resumes: a finished one in an explicit --out is replaced."""
    data = tmp_path / "data"
    image_folder(data / "images" / "train", 2, size=(40, 44))
    image_folder(data / "images" / "kodak", 1, size=(40, 44), seed=1)
    out = tmp_path / "run"
    args = ["gaussian", "--data-root", str(data), "--eval", "kodak", "--targets", "noisy", "--iters", "5",
            "--eval-images", "1", "--threads", "1", "--device", "cpu", "--out", str(out)]
    cli.run(args)
    first = (out / "stats.jsonl").read_text().splitlines()
    cli.run(args)
    again = (out / "stats.jsonl").read_text().splitlines()
    assert len(again) == len(first)  # the same run again, not appended to the first
    assert sum('"kind": "final"' in line for line in again) == 1


def test_default_folder_reuses_an_unfinished_run_of_the_same_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["gaussian"])
    base = tmp_path / "runs" / "gaussian-quick"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({"finished": False, "command": "n2n-experiment gaussian"}))
    assert cli._out_dir(args, "n2n-experiment gaussian").resolve() == base  # killed: restart there
    assert cli._out_dir(args, "n2n-experiment gaussian --seed 1").name == "gaussian-quick-2"  # another command
    (base / "config.json").write_text(json.dumps({"finished": True, "command": "n2n-experiment gaussian"}))
    assert cli._out_dir(args, "n2n-experiment gaussian").name == "gaussian-quick-2"  # finished: kept
