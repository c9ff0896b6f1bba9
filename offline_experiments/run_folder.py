"""The run folder of `n2n-train` (RUN): stats.jsonl, loss.png, val_psnr.png, config.json, checkpoint.pt.

Rank 0 writes every file; each is written atomically except stats.jsonl, which is appended line by line (a
reader drops a torn last line, so a kill -9 mid-write costs one record at most).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from n2n_live.checkpoint import save_checkpoint
from n2n_live.errors import UserError
from n2n_live.io_utils import atomic_path, write_json, write_text

# Settings that define a run: resuming with different values would silently mix two experiments.
RUN_KEYS = ("data", "target", "batch", "crop", "lr", "spp", "seed", "val_fraction", "rampdown", "model")


def read_stats(path: Path, upto_step: int | None = None) -> list[dict]:
    """The records of stats.jsonl; a torn last line (kill -9 mid-write) and records after `upto_step` are dropped."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and (upto_step is None or rec.get("step", 0) <= upto_step):
                records.append(rec)
    return records


def plot_stats(records: list[dict], out: Path) -> None:
    """loss.png (training loss) and val_psnr.png (validation PSNR of the network and of its input)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_psnr" in r]
    if train:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
        ax.set(xlabel="step", ylabel="L_HDR (training)", yscale="log", title="training loss")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(out / "loss.png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
    if val:
        fig, ax = plt.subplots(figsize=(6, 4))
        steps = [r["step"] for r in val]
        ax.plot(steps, [r["val_psnr"] for r in val], "o-", label="network")
        ax.plot(steps, [r["input_psnr"] for r in val], "--", color="gray", label="input")
        ax.set(xlabel="step", ylabel="PSNR (dB, tonemapped)", title="validation")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(out / "val_psnr.png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)


def config_error(out: Path, config: dict) -> UserError | None:
    """A UserError when RUN/config.json was written with other settings (resuming would mix two experiments)."""
    path = out / "config.json"
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for k in RUN_KEYS:
        if k in old and old[k] != config[k]:
            return UserError(f"{path}: this run was started with {k}={old[k]!r}, now {config[k]!r}; "
                             f"use another --out, or the same settings to resume")
    return None


def prepare_run_folder(out: Path, config: dict, start: int, resumed: bool) -> None:
    """Rank 0: remove interrupted temporaries, cut stats.jsonl back to the checkpoint's step, write config.json."""
    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.glob(".*.tmp*"):  # temporaries of writes a kill -9 interrupted (atomic_path names)
        tmp.unlink(missing_ok=True)
    stats_path = out / "stats.jsonl"
    records = read_stats(stats_path, upto_step=start)
    write_text(stats_path, "".join(json.dumps(r) + "\n" for r in records))
    old = json.loads((out / "config.json").read_text()) if resumed and (out / "config.json").is_file() else {}
    config.update(started=old.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
                  resumed_at=old.get("resumed_at", []) + ([start] if resumed else []))
    write_json(out / "config.json", config)


class RunFiles:
    """What rank 0 writes as the run goes: stats.jsonl records, checkpoint.pt and the plots."""

    def __init__(self, out: Path, net: torch.nn.Module, target: str, data: str, main: bool, prog: str):
        self.out, self.net, self.target, self.data, self.prog = out, net, target, data, prog
        self.stats = open(out / "stats.jsonl", "a") if main else None

    def log(self, record: dict) -> None:
        if self.stats is not None:
            self.stats.write(json.dumps(record) + "\n")
            self.stats.flush()

    def save(self, step: int, step_fn) -> None:
        if self.stats is None:
            return
        save_checkpoint(self.out / "checkpoint.pt", self.net, kind="mc", train_state={"step": step, **step_fn.state_dict()},
                        meta={"trainer": self.prog, "target": self.target, "data": self.data, "step": step})
        plot_stats(read_stats(self.out / "stats.jsonl"), self.out)

    def close(self) -> None:
        if self.stats is not None:
            self.stats.close()
