"""The one configuration of `n2n-train`: a dataclass with a docstring per field, built from the command line.

`parse_config(argv)` turns the flags into a validated `TrainConfig`; `TrainConfig.validate()` refuses what the
flags' types cannot see (an output path that is a file, a missing dataset, a foreign --init network, a job too
large for the machine's memory) before any device or process is set up. Its fields are config.json's first keys,
in this order.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from n2n_live import features, models
from n2n_live.checkpoint import network_from, read_checkpoint
from n2n_live.errors import UserError
from n2n_live.train_step import LR_MC
from n2n_live.validate import (BASE_BYTES, INFER_BYTES_PER_PIXEL, MAX_SIDE, TRAIN_BYTES_PER_PIXEL, ArgumentParser,
                               check_memory, check_output_dir, integer, path_arg, real, spp_list)

PROG = "n2n-train"
LIVE = "live"  # --model: the live app's default network


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    data: Path
    """Dataset folder written by n2n-export."""

    target: str = "noisy"
    """noisy: Noise2Noise pairs (one realisation in, another as the target, both directions); clean: the
    reference."""

    out: Path
    """The run folder RUN; running the same command again resumes from RUN/checkpoint.pt."""

    iters: int = 100_000
    """Training steps of the whole run (a resumed run continues to this count)."""

    batch: int = 4
    """Minibatch over all processes (the paper's 4); each of `world` processes takes batch / world."""

    crop: int = 256
    """Side of the random square training crops (the paper's 256)."""

    lr: float = LR_MC
    """Adam learning rate (the paper's for Monte Carlo denoising)."""

    rampdown: float = 0.1
    """Fraction of the run at its end over which the learning rate ramps smoothly down to zero."""

    spp: list[int] | None = None
    """Train and validate on these spp levels only (None: every level in the dataset)."""

    val_fraction: float = 0.1
    """Fraction of the views held out for validation."""

    val_every: int = 1000
    """Validate every this many steps (and at the last one)."""

    ckpt_every: int = 500
    """Write RUN/checkpoint.pt every this many steps (and at the last one): a kill loses at most this many."""

    log_every: int = 50
    """Append a training record to RUN/stats.jsonl every this many steps (and at the last one)."""

    model: str = "paper"
    """Network of a fresh run (models.MODEL_CHOICES, or 'live': the network n2n-live builds by default); --init and
    resumed runs use their checkpoint's."""

    init: Path | None = None
    """Start from this network (a Monte Carlo denoiser's checkpoint, e.g. saved by n2n-live)."""

    seed: int = 0
    """Draws the network's initialisation and, with rank and step, every batch: the same command, the same run."""

    device: str = "auto"
    """auto (cuda:LOCAL_RANK if available, else cpu), cpu or cuda."""

    amp: bool | None = None
    """bf16 autocast; None: on for CUDA (`resolved` fixes it for the run's device)."""

    tile: int = 512
    """Tile size of validation inference."""

    threads: int | None = None
    """CPU threads per process (None: torch's choice)."""

    skip_bad: bool = False
    """Report unreadable files and train on the other views instead of stopping."""

    emission: bool = True
    """Feed the exports' directly seen emission (.emi.exr) to a kernel network that filters a light apart; False: as
    if nothing emitted (lights stay in the filter, as the bundled warm start learnt: docs/design-notes.md)."""

    quiet: bool = False
    """No progress bar."""

    def validate(self) -> TrainConfig:
        """Refuse, before any work, an unusable --out, a missing dataset, a foreign --init, a job too large."""
        check_output_dir(self.out, "--out")
        if not Path(self.data).is_dir():  # before setting up devices and processes
            raise UserError(f"{self.data}: no such dataset folder")
        if self.init is not None:
            init_network(self.init)  # a bad or foreign file is refused before any work
        # A training step on batch x crop^2 pixels and a validation tile: refused with the estimate when too large.
        check_memory(BASE_BYTES + self.batch * self.crop**2 * TRAIN_BYTES_PER_PIXEL
                     + self.tile**2 * INFER_BYTES_PER_PIXEL, f"--batch {self.batch} --crop {self.crop} --tile {self.tile}")
        return self

    def resolved(self, device: torch.device) -> TrainConfig:
        """This configuration with `amp` decided for `device` (on for CUDA unless given)."""
        return dataclasses.replace(self, amp=self.amp if self.amp is not None else device.type == "cuda")

    def to_json(self) -> dict:
        """Every field, paths as strings and the dataset folder absolute (config.json's first keys)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}
        out["data"] = str(Path(self.data).resolve())
        return out


MODELS = (*models.MODEL_CHOICES, LIVE)


def fresh_network(model: str) -> torch.nn.Module:
    """A freshly initialised `model`; 'live' is exactly the network n2n-live builds by default (LiveConfig(): its
    model, temporal reuse, blend, demodulation), so that its warm start is trained on the architecture it loads into."""
    if model == LIVE:
        from n2n_live.live.config import LiveConfig, model_inputs

        cfg = LiveConfig()
        return models.build(cfg.model, **model_inputs(cfg))
    return models.build(model)


def init_network(path: Path) -> torch.nn.Module:
    """The network of --init: a Monte Carlo denoiser's checkpoint (anything else is a UserError naming the file)."""
    state = read_checkpoint(path)
    if state["m_out"] != 3 or state["n_in"] not in features.N_INPUTS:
        raise UserError(f"{path}: a {state['n_in']}-in/{state['m_out']}-out network, not a Monte Carlo denoiser")
    return network_from(state, path)


def build_parser() -> argparse.ArgumentParser:
    D = TrainConfig  # the defaults live in the dataclass
    ap = ArgumentParser(prog=PROG, description="Train the Monte Carlo denoiser on an exported EXR dataset.")
    ap.add_argument("--data", required=True, type=path_arg, metavar="DIR", help="dataset folder written by n2n-export")
    ap.add_argument("--target", choices=("noisy", "clean"), default=D.target,
                    help="noisy: Noise2Noise pairs (default); clean: the reference")
    ap.add_argument("--out", required=True, type=path_arg, metavar="RUN", help="run folder (re-run to resume)")
    ap.add_argument("--iters", type=integer(1, 10**9), default=D.iters, help="training steps (default 100000)")
    ap.add_argument("--batch", type=integer(1, 4096), default=D.batch, help="minibatch over all processes (default 4, the paper's)")
    ap.add_argument("--crop", type=integer(1, MAX_SIDE), default=D.crop, help="random crop size (default 256, the paper's)")
    ap.add_argument("--lr", type=real(0.0, 1.0, lo_open=True), default=D.lr, help=f"Adam learning rate (default {LR_MC}, the paper's for MC)")
    ap.add_argument("--rampdown", type=real(0.0, 1.0), default=D.rampdown, help="fraction of the run ramping lr down (default 0.1)")
    ap.add_argument("--spp", type=spp_list, default=D.spp, metavar="8[,64]",
                    help="train and validate on these spp levels only (default: all in the dataset)")
    ap.add_argument("--val-fraction", type=real(0.0, 0.99), default=D.val_fraction, help="views held out for validation (default 0.1)")
    ap.add_argument("--val-every", type=integer(1, 10**9), default=D.val_every, metavar="K", help="validate every K steps (default 1000)")
    ap.add_argument("--ckpt-every", type=integer(1, 10**9), default=D.ckpt_every, help="checkpoint every N steps (default 500)")
    ap.add_argument("--log-every", type=integer(1, 10**9), default=D.log_every, help="stats.jsonl record every N steps (default 50)")
    ap.add_argument("--model", choices=MODELS, default=D.model,
                    help="network of a fresh run: paper (Table 2 U-Net), kernel (kernel-predicting) or live (exactly "
                    "the network n2n-live builds by default, e.g. kernel with temporal reuse; single exported images "
                    "feed it as one frame of history); --init and resumed runs use the checkpoint's")
    ap.add_argument("--init", type=path_arg, metavar="CKPT", help="start from this network (e.g. saved by n2n-live)")
    ap.add_argument("--seed", type=integer(0, 2**31 - 1), default=D.seed)
    ap.add_argument("--device", default=D.device, help="auto (cuda:LOCAL_RANK if available, else cpu), cpu, cuda")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=D.amp,
                    help="bf16 autocast (default: on for CUDA)")
    ap.add_argument("--tile", type=integer(32, 8192), default=D.tile, help="validation tile size (default 512)")
    ap.add_argument("--threads", type=integer(1, 1024), default=D.threads, help="CPU threads per process (default: torch's choice)")
    ap.add_argument("--skip-bad", action="store_true", help="report bad files and train on the other views")
    ap.add_argument("--emission", action=argparse.BooleanOptionalAction, default=D.emission,
                    help="feed each realisation's .emi.exr to a kernel network that filters a light apart (default on; "
                    "--no-emission: lights stay inside the filter, as the bundled warm start was trained)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def parse_config(argv=None) -> TrainConfig:
    """The command line as a validated TrainConfig (call inside `exit_on_user_error`)."""
    return TrainConfig(**vars(build_parser().parse_args(argv))).validate()
