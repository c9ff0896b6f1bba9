"""The warm start's recipe: n2n-live's default network trained offline on noisy pairs of the bundled scenes, with no
reference image anywhere, written to n2n_live/weights/warm_start.pt (live/warm_start.py loads it).

    scripts/warm_start.sh                       # reproduces the committed weights from scratch (~7 min, 2 CPU cores)
    scripts/warm_start.sh --views 1 --size 32 --iters 3 --crop 32 --work out/ws --weights out/ws/w.pt  # smoke run

1. export: `n2n-export --ref-spp 0` (no reference is rendered or written) of every bundled scene (`scenes.names()`),
   --views views each evenly along its fly-through, two independent --spp renders per view with albedo and normal;
2. train: `n2n-train --target noisy --model live --no-emission` (Noise2Noise targets, exactly the network n2n-live
   builds by default, lights inside its filter; with no reference there is no validation);
3. write: the network's weights only (no optimiser state: ~0.6 MB), with how they were made in the file's meta.

Budget (the defaults): 4 scenes x 8 views at 128x128, 8 spp (the export: under a minute, ~0.8 s a view); 1500
steps of minibatch 4 on 64x64 crops, Adam lr 1e-3 ramped down over the last 10 %, 2 threads: about 6 CPU minutes, as
the probe that chose it. lr 1e-3, not the paper's 3e-4, for the cpu preset's reason: few steps. Each stage resumes
when run again.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROG = "warm-start"
TRAINED_ON = "noisy pairs only: Noise2Noise targets, no reference image was rendered or read (n2n-export --ref-spp 0)"


def parse_args(argv=None) -> argparse.Namespace:
    from n2n_live.live.warm_start import WEIGHTS
    from n2n_live.validate import ArgumentParser, integer, path_arg, real

    import scenes

    ap = ArgumentParser(prog=PROG, description="Train n2n-live's warm start on noisy pairs of the bundled scenes only.")
    ap.add_argument("--scenes", default=",".join(scenes.names()), help="comma-separated (default: every bundled scene)")
    ap.add_argument("--views", type=integer(1, 10**4), default=8,
                    help="views per scene along its fly-through (default 8)")
    ap.add_argument("--size", type=integer(8, 4096), default=128, help="image side (default 128)")
    ap.add_argument("--spp", type=integer(1, 4096), default=8,
                    help="spp of each noisy render (default 8, the live app's)")
    ap.add_argument("--iters", type=integer(1, 10**7), default=1500, help="training steps (default 1500)")
    ap.add_argument("--batch", type=integer(1, 4096), default=4, help="minibatch (default 4)")
    ap.add_argument("--crop", type=integer(8, 4096), default=64, help="training crop side (default 64)")
    ap.add_argument("--lr", type=real(0.0, 1.0, lo_open=True), default=1e-3, help="Adam learning rate (default 1e-3)")
    ap.add_argument("--seed", type=integer(0, 2**31 - 1), default=0, help="network initialisation and batches")
    ap.add_argument("--threads", type=integer(1, 1024), default=2, help="CPU threads of the training (default 2)")
    ap.add_argument("--device", default="cpu", help="where the training runs (default cpu: the budget is CPU time)")
    ap.add_argument("--work", type=path_arg, default=Path("out") / "warm_start", help="dataset and run folder")
    ap.add_argument("--weights", type=path_arg, default=WEIGHTS, help="the weights file (default: the bundled one)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    args.scene_list = [s.strip() for s in args.scenes.split(",") if s.strip()]
    return args


def export_argv(args) -> list[str]:
    """n2n-export's flags: noisy pairs only (--ref-spp 0), every view along the fly-through."""
    return ["--scene", ",".join(args.scene_list), "--views", str(args.views), "--size", str(args.size),
            "--spp", str(args.spp), "--ref-spp", "0", "--realisations", "2", "--path-fraction", "1",
            "--out", str(args.work / "data"), *(["--quiet"] if args.quiet else [])]


def train_argv(args) -> list[str]:
    """n2n-train's flags: noisy targets, the live network, nothing held out (there is no reference to score), lights
    inside the filter (--no-emission: learning them apart scored lower, docs/design-notes.md)."""
    return ["--data", str(args.work / "data"), "--out", str(args.work / "run"), "--target", "noisy", "--model", "live",
            "--iters", str(args.iters), "--batch", str(args.batch), "--crop", str(args.crop), "--lr", str(args.lr),
            "--seed", str(args.seed), "--threads", str(args.threads), "--device", args.device, "--val-fraction", "0",
            "--ckpt-every", str(max(1, min(500, args.iters))), "--no-emission", *(["--quiet"] if args.quiet else [])]


def commit() -> str:
    """The repository's commit, '+dirty' when tracked files (other than the weights) differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!n2n_live/weights"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def check_resumable(args) -> None:
    """A run folder whose network is not n2n-live's default any more (LiveConfig changed since) would resume that
    network under the same n2n-train flags: refused, naming it."""
    from n2n_live import models
    from n2n_live.checkpoint import model_spec, read_checkpoint
    from n2n_live.errors import UserError

    from .train_config import LIVE, fresh_network

    ckpt = args.work / "run" / "checkpoint.pt"
    if ckpt.is_file() and model_spec(read_checkpoint(ckpt)) != models.spec(fresh_network(LIVE)):
        raise UserError(f"{ckpt}: trains another network than n2n-live's default now; use another --work")


def _without_work(argv: list[str]) -> list[str]:
    """argv less --work and its folder: a scratch place on the machine that ran it, no part of the recipe."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--work":
            skip = True
        elif not a.startswith("--work="):
            out.append(a)
    return out


def write_weights(args, argv: list[str], seconds: dict) -> dict:
    """The run's network, weights only, at --weights; returns the meta written with it."""
    from n2n_live.checkpoint import network_from, read_checkpoint, save_checkpoint

    ckpt = args.work / "run" / "checkpoint.pt"
    net = network_from(read_checkpoint(ckpt), ckpt)
    meta = {"trained_on": TRAINED_ON, "scenes": args.scene_list, "views_per_scene": args.views,
            "size": args.size, "spp": args.spp, "steps": args.iters, "batch": args.batch, "crop": args.crop,
            "lr": args.lr, "seed": args.seed, "threads": args.threads,
            "command": shlex.join(["scripts/warm_start.sh", *_without_work(argv)]), "commit": commit(),
            "export_seconds": round(seconds["export"], 1), "train_seconds": round(seconds["train"], 1)}
    save_checkpoint(args.weights, net, kind="mc", meta=meta)
    return meta


def run(argv: list[str]) -> dict:
    """export -> train -> write: the whole recipe; returns the weights' meta."""
    from n2n_live.commands import export

    from . import batch_train

    args = parse_args(argv)
    t0 = time.monotonic()
    export.export(export.parse_args(export_argv(args)))
    t1 = time.monotonic()
    check_resumable(args)
    batch_train.main(train_argv(args))
    seconds = {"export": t1 - t0, "train": time.monotonic() - t1}
    meta = write_weights(args, argv, seconds)
    print(f"{PROG}: {args.weights} ({args.weights.stat().st_size / 1e6:.2f} MB): export {seconds['export']:.0f} s, "
          f"training {seconds['train']:.0f} s", file=sys.stderr)
    return meta


def main(argv=None) -> None:
    from n2n_live.errors import exit_on_user_error

    with exit_on_user_error(PROG, at_once=True):  # Mitsuba's threads: no slow, crash-prone teardown
        run(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    main()
