"""n2n-experiment: reproduce the synthetic-noise and MRI experiments of the Noise2Noise paper.

    n2n-experiment gaussian --preset quick
    n2n-experiment mri --preset paper --device cuda --out runs/mri-paper

Writes DIR/config.json, DIR/stats.jsonl (as it goes), DIR/table.md, DIR/curves.png, DIR/grid.png and one
checkpoint per trained network (DIR/noisy-targets.pt, ...; `n2n-denoise --checkpoint` applies it to a PNG/JPG).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

from n2n_live.errors import UserError, exit_on_user_error
from n2n_live.validate import ArgumentParser, check_output_dir, integer, nonempty, resolve_device

from .baseline_cache import BaselineCache, default_cache_dir
from .datasets import DATA_ENV, check_readable, default_data_root, resolve_folder
from .columns import Context
from .experiments import EXPERIMENTS
from .mri import find_volumes
from .presets import PRESETS, get_preset
from .report import write_config, write_report
from .training import StatsLog

PROG = "n2n-experiment"

# Kodak, BSD300 (CBSD68 here) and Set14: Table 1's order. Figures 1 and 5 use Kodak only.
DEFAULT_EVAL = {"capture-budget": "kodak", "impulse-levels": "kodak", "mri": "mri"}
DEFAULT_EVAL_ALL = "kodak,cbsd68,set14"
NO_TARGETS_CHOICE = ("capture-budget", "impulse-levels")  # each fixes its own targets: --targets is ignored there


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", metavar="NAME", help="experiment: " + ", ".join(EXPERIMENTS))
    p.add_argument("--preset", default="quick", help="quick (minutes on a CPU), cpu (about half an hour per network on a "
                                                      "2-core CPU, whole eval images) or paper (the paper's settings, GPU)")
    p.add_argument("--targets", default="both",
                   help="noisy, clean or both (default both); none: only the baseline and the input, which fills the "
                        "baseline cache beside training runs (not capture-budget or impulse-levels)")
    p.add_argument("--train-dir", help="training images (default DATA/images/train; mri: DATA/mri, NIfTI)")
    p.add_argument("--eval", help="comma-separated eval folders, by path or by name under DATA/images "
                                  f"(default {DEFAULT_EVAL_ALL}; mri: DATA/mri, held-out slab when shared)")
    p.add_argument("--iters", type=integer(1, 10**9), help="training iterations per network (overrides the preset)")
    p.add_argument("--eval-images", type=integer(1, 10**6), help="images per eval set (overrides the preset)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=integer(0, 256), help="data-loading processes (default: preset's on cuda, 0 on cpu)")
    p.add_argument("--out", type=nonempty, help="output folder (default runs/NAME-PRESET, numbered if it exists)")
    p.add_argument("--seed", type=integer(0, 2**31 - 1), default=0)
    p.add_argument("--threads", type=integer(1, 1024), help="CPU threads for torch (default: torch's choice; 1 can be much "
                                               "faster on a small CPU shared with other work)")
    p.add_argument("--data-root", type=nonempty, help=f"the shared data folder (default: ${DATA_ENV}, else "
                                                        "../shared/data beside the checkout)")
    return p


def _unfinished(folder: Path, command: str) -> bool:
    """True when `folder` holds a run of `command` that did not finish (killed): re-running restarts it there."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return config.get("finished") is False and config.get("command") == command


def _out_dir(args, command: str) -> Path:
    if args.out:
        return check_output_dir(args.out, "--out")
    base = Path("runs") / f"{args.name}-{args.preset}"
    out, k = base, 1
    while out.exists() and not _unfinished(out, command):
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return check_output_dir(out, "--out")


RUN_FILES = ("stats.jsonl", "table.md", "curves.png", "grid.png", "levels.png")


def _prepare_folder(out: Path, command: str, log) -> bool:
    """Make `out` ready for a run of `command`; True when the run resumes.

    A killed run of the same command resumes: its finished networks (*.pt) and the training state of the one it
    was training (.*.state.pt) are kept, and the experiment loads them instead of training again. Any other
    earlier run (finished, or of another command) is removed before the first new file is written, so the folder
    never mixes two runs. Temporaries a kill -9 left behind always go; every file is written atomically, so none is
    ever half-written."""
    resume = _unfinished(out, command)
    for p in sorted(out.glob(".*.tmp*")):
        p.unlink(missing_ok=True)
    if resume:
        log(f"{out} holds an unfinished run of this command: resuming it")
        old = [out / f for f in RUN_FILES if f != "stats.jsonl" and (out / f).exists()]
    else:
        old = [out / f for f in RUN_FILES if (out / f).exists()] + sorted(out.glob("*.pt")) + sorted(out.glob(".*.pt"))
        if old:
            log(f"{out} holds an earlier run: starting afresh")
    for p in old:
        p.unlink(missing_ok=True)
    return resume


def _mri_source(spec: str, data_root: Path) -> Path:
    p = Path(spec).expanduser()
    if p.exists():
        return p
    if (data_root / spec).exists():
        return data_root / spec
    raise UserError(f"MRI data not found: {spec}")


def make_context(args, command: str = "") -> tuple[Context, Path, dict]:
    if args.name not in EXPERIMENTS:
        raise UserError(f"unknown experiment {args.name!r}; choose one of: {', '.join(EXPERIMENTS)}")
    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}")
    if args.targets not in ("noisy", "clean", "both", "none"):
        raise UserError(f"--targets must be noisy, clean, both or none, not {args.targets!r}")
    if args.targets == "none" and args.name in NO_TARGETS_CHOICE:
        raise UserError(f"--targets none does not apply to {args.name}: it trains all its networks")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = _out_dir(args, command)  # checked before anything is read or written
    data_root = Path(args.data_root) if args.data_root else default_data_root()
    if not data_root.is_dir() and (args.data_root or os.environ.get(DATA_ENV)):
        raise UserError(f"{'--data-root' if args.data_root else '$' + DATA_ENV} is not a folder: {data_root}")
    workers = args.workers if args.workers is not None else (None if device.type == "cuda" else 0)
    iters = args.iters
    preset = get_preset(args.preset, workers=workers, eval_images=args.eval_images,
                        **({"iters": iters, "levels_iters": iters, "mri_iters": iters} if iters else {}))
    eval_spec = args.eval or DEFAULT_EVAL.get(args.name, DEFAULT_EVAL_ALL)
    names = [s.strip() for s in eval_spec.split(",") if s.strip()]
    if not names:
        raise UserError("--eval names no folder")
    # Fail fast, before anything is written, on folders that hold nothing usable.
    if args.name == "mri":
        train_dir = _mri_source(args.train_dir or "mri", data_root)
        eval_dirs = [_mri_source(s, data_root) for s in names]
        for d in [train_dir] + eval_dirs:
            find_volumes(d)
    else:
        train_dir = resolve_folder(args.train_dir or "train", data_root, "training folder")
        eval_dirs = [resolve_folder(s, data_root, "eval folder") for s in names]
        for d in [train_dir] + eval_dirs:
            check_readable(d)  # an image that decodes in each, or nothing is written
    ctx = Context(preset=preset, targets=args.targets, device=device, seed=args.seed, train_dir=train_dir,
                  eval_dirs=eval_dirs, stats=StatsLog(out / "stats.jsonl"),
                  log=lambda msg: print(f"{PROG}: {msg}", file=sys.stderr), experiment=args.name, out=out,
                  baselines=BaselineCache(default_cache_dir()))
    config = {
        "experiment": args.name, "preset": preset.to_dict(), "targets": args.targets, "seed": args.seed,
        "device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
        "train_dir": str(train_dir), "eval": [str(d) for d in eval_dirs],
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command, "finished": False,
    }
    return ctx, out, config


def run(argv: list[str] | None = None) -> Path:
    """Parse, run one experiment, write its report; returns the output folder. Raises UserError."""
    args = build_parser().parse_args(argv)
    command = shlex.join([PROG] + (list(argv) if argv is not None else sys.argv[1:]))
    ctx, out, config = make_context(args, command)
    out.mkdir(parents=True, exist_ok=True)
    if _prepare_folder(out, command, ctx.log):
        ctx.stats = StatsLog(out / "stats.jsonl", append=True)
    write_config(out, config)
    ctx.log(f"{args.name} ({args.preset}) on {ctx.device}, writing to {out}")
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *a, **k: ctx.log(f"warning: {msg}")
        result = EXPERIMENTS[args.name](ctx)
    config["seconds"] = round(time.time() - t0, 1)
    written = write_report(result, out)
    config["finished"] = True  # last: a run is complete exactly when its config.json says so
    write_config(out, config)
    for path in written:
        ctx.log(f"wrote {path}")
    return out


def main(argv: list[str] | None = None) -> None:
    with exit_on_user_error(PROG):
        run(argv)


if __name__ == "__main__":
    main()
