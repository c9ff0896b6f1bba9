"""n2n-experiment after kill -9: the same command again restarts the run cleanly in its folder (issue 11); no
corrupt table.md or checkpoint, no temporaries, no stats of two runs mixed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from n2n_live.checkpoint import read_checkpoint
from offline_experiments import cli

REPO = Path(__file__).resolve().parent.parent


def _images(folder: Path, n: int, size=(40, 44), seed=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random(size + (3,)) * 255).astype(np.uint8)).save(folder / f"img{i}.png")


def test_killed_experiment_restarts_cleanly(tmp_path):
    data = tmp_path / "data"
    _images(data / "images" / "train", 3)
    _images(data / "images" / "kodak", 1, seed=1)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "offline_experiments.cli", "gaussian", "--data-root", str(data), "--eval", "kodak",
           "--targets", "noisy", "--iters", "30", "--eval-images", "1", "--threads", "1", "--device", "cpu",
           "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # First run: killed as soon as it has written training statistics (mid-training).
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "stats.jsonl").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] is False and not (out / "table.md").exists()
    for pt in out.glob("*.pt"):
        read_checkpoint(pt)  # whatever exists is whole (atomic writes)
    stats_before = (out / "stats.jsonl").read_text()
    (out / ".noisy-targets.abc123.tmp.pt").write_bytes(b"half a checkpoint")  # what a kill mid-write leaves

    # The same command again: a clean restart in the same folder, to the end.
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "restarting" in r.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] is True
    table = (out / "table.md").read_text()
    assert "| data set |" in table and "noisy targets" in table
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert sum(1 for s in stats if s.get("kind") == "final") == 1  # one run's records, not two
    assert read_checkpoint(out / "noisy-targets.pt")["meta"]["iters"] == 30
    assert not list(out.glob(".*tmp*"))


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
