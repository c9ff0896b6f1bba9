"""`n2n-live`: the viewer when there is a display, else (or with --headless) the headless fly-through.

    n2n-live                                   viewer; without a display: headless, CPU/GPU preset, ./out/headless
    n2n-live --headless --scene cornell-box --frames 100 --size 128 --compare clean,oidn --out runs/cbox

One configuration is built (a preset, then the flags given) and handed to one loop.
"""
from __future__ import annotations

import os

# OpenMP threads that spin-wait between parallel regions starve the trainer, render and Dr.Jit threads when the
# cores are shared. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ..errors import UserError, exit_on_user_error, interrupts_deferred, quiet_startup_interrupts

PROG = "n2n-live"
quiet_startup_interrupts(PROG)  # Ctrl-C before main() runs is one line too
# Ctrl-C held back until torch has loaded (a second or two): a KeyboardInterrupt inside its C++ start-up aborts the
# process ("terminate called after throwing an instance of 'pybind11::error_already_set'") or, inside the numpy
# import it makes, is swallowed and leaves numpy half-loaded.
with interrupts_deferred():
    import numpy  # noqa: F401
    import torch  # noqa: F401

import argparse
import dataclasses
import importlib
import sys

from renderer import seeds

from ..checkpoint import read_checkpoint
from ..live.config import COMPARE_CHOICES, PRESETS, LiveConfig, default_preset_name, preset
from ..live.warm_start import INIT_CHOICES
from ..models import MODEL_CHOICES
from ..validate import (MAX_SIDE, MAX_SPP, ArgumentParser, check_output_dir, check_output_file, integer, nonempty,
                       parse_size, real, resolve_device)


def parse_compare(text: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in items if s not in COMPARE_CHOICES]
    if bad:
        raise UserError(f"--compare accepts {', '.join(COMPARE_CHOICES)} (comma-separated); unknown: {', '.join(bad)}")
    return items




def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=PROG, description="Noise2Noise live: learn a Monte Carlo denoiser from pairs of noisy frames while "
        "a path tracer renders a fly-through.")
    p.add_argument("--headless", action="store_true", help="no window: run the fly-through and write results")
    p.add_argument("--preset", choices=sorted(PRESETS), help="starting configuration (default: gpu with CUDA, "
                   "else cpu; the viewer then adapts the render size to the preset's target frame rate)")
    p.add_argument("--scene", type=nonempty, help="bundled scene name or Mitsuba 3 XML file (default cornell-box)")
    p.add_argument("--frames", type=integer(1, 10**8), help="frames of the headless fly-through")
    p.add_argument("--size", help="frame size S or WxH")
    p.add_argument("--spp", type=integer(1, MAX_SPP), help="samples per pixel of each noisy image (default 8)")
    p.add_argument("--iters-per-frame", type=integer(0, 10**4), help="training iterations per frame (default 8)")
    p.add_argument("--crop", type=integer(1, MAX_SIDE), help="training crop side, clamped to the frame (default 256)")
    p.add_argument("--lr", type=real(0, 1, lo_open=True), help="Adam learning rate")
    p.add_argument("--device", type=nonempty, help="where the network runs: auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--seed", type=integer(0, seeds.MAX_LIVE_SEED), help="random seed (network, crops, renderer)")
    p.add_argument("--reference-spp", type=integer(0, MAX_SPP), help="spp of the converged reference PSNR is "
                   "measured against, rendered as two halves whose difference gives its own noise floor (0: none; "
                   "presets 2048+)")
    p.add_argument("--eval-every", type=integer(1, 10**8), help="measure PSNR on every N-th frame and the last "
                   "(default 1; presets 10 and 50): converged references are expensive")
    p.add_argument("--reference-cache", type=nonempty, help="folder caching references on disk (default "
                   "$N2N_REFERENCE_CACHE or ~/.cache/n2n-live/references; 'off' for none)")
    p.add_argument("--clean-target-spp", type=integer(1, MAX_SPP), help="spp of the per-frame target of the "
                   "clean-target network (--compare clean; default 256)")
    p.add_argument("--compare", help="baselines: clean,oidn (clean = a second network on reference targets)")
    p.add_argument("--exposure", type=real(0, 1e6, lo_open=True), help="exposure before tonemapping")
    p.add_argument("--out", type=nonempty, help="headless output folder (default out/headless)")
    p.add_argument("--sync", action="store_true", default=None, help="render, train, denoise in one thread "
                   "(deterministic)")
    p.add_argument("--variant", type=nonempty, help="Mitsuba variant (default: cuda_ad_rgb, else llvm_ad_rgb, else "
                   "scalar_rgb)")
    p.add_argument("--load", type=nonempty, help="start from this checkpoint (over --init)")
    p.add_argument("--init", choices=INIT_CHOICES, help="how a new network starts: warm (default: the bundled "
                   "weights, pre-trained offline on noisy pairs only, where they fit the architecture) or none "
                   "(freshly initialised: the paper's from-scratch run)")
    p.add_argument("--model", choices=MODEL_CHOICES, help="denoiser: paper (Table 2 U-Net, colour output) or "
                   "kernel (predicts per-pixel kernels applied to the noisy colour)")
    p.add_argument("--temporal", choices=("on", "off"), help="accumulate each noisy stream over frames "
                   "(reprojected per-stream histories)")
    p.add_argument("--snapshots", type=integer(0, 1000), help="headless: frames saved as PNGs (default 4)")
    p.add_argument("--no-progress", action="store_true", help="headless: no progress bar")
    add_viewer_arguments(p)
    return p


def add_viewer_arguments(parser: argparse.ArgumentParser) -> None:
    """The viewer's own flags (n2n_live.viewer.cli_args.add_arguments), when the viewer is installed."""
    try:
        mod = importlib.import_module("n2n_live.viewer.cli_args")
    except ImportError:
        return
    if hasattr(mod, "add_arguments"):
        mod.add_arguments(parser)


FLAG_FIELDS = ("scene", "frames", "spp", "iters_per_frame", "crop", "lr", "device", "seed", "reference_spp",
               "eval_every", "reference_cache", "clean_target_spp", "exposure", "out", "sync", "variant", "load", "snapshots",
               "model", "init")


def build_config(args: argparse.Namespace, headless: bool) -> LiveConfig:
    """A preset (explicit, or the one that fits the machine: gpu with CUDA, else cpu), then every flag that was given.

    The viewer takes the preset without its per-frame rendered reference and baselines (they cost more than the
    frame itself; the viewer measures against its still camera's progressive reference instead): flags still
    turn them on."""
    cfg = preset(args.preset or default_preset_name())
    if not headless:
        cfg = dataclasses.replace(cfg, reference_spp=0, compare=())
    changes = {f: getattr(args, f) for f in FLAG_FIELDS if getattr(args, f, None) is not None}
    if args.size:
        changes["width"], changes["height"] = parse_size(args.size)
    if args.compare is not None:
        changes["compare"] = parse_compare(args.compare)
    if getattr(args, "temporal", None) is not None:
        changes["temporal"] = args.temporal == "on"
    cfg = dataclasses.replace(cfg, **changes)
    if headless:
        cfg.pace = True  # every frame gets iters_per_frame steps, as in the paper's fly-through
        if cfg.out is None:
            cfg.out = os.path.join("out", "headless")
    return cfg.validate()


def check_before_work(args: argparse.Namespace, cfg: LiveConfig, headless: bool) -> None:
    """The device, the checkpoint to load and every place the run will write, checked before the scene loads."""
    resolve_device(cfg.device)
    if cfg.load:
        read_checkpoint(cfg.load)
    if headless:
        check_output_dir(cfg.out, "--out")
        return
    for flag, kind in (("screenshot", check_output_file), ("screenshot_dir", check_output_dir),
                       ("stats_jsonl", check_output_file)):
        if getattr(args, flag, None):
            kind(getattr(args, flag), "--" + flag.replace("_", "-"))


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Ctrl-C/SIGTERM: one line, then out at once (everything is written and closed by then; unloading torch and
    # Mitsuba is slow: the run must end within 2 s)
    with exit_on_user_error(PROG, at_once=True):
        args = build_parser().parse_args(argv)
        headless = args.headless
        if not headless and not has_display():
            what = ("the headless fly-through with the " + (args.preset or default_preset_name()) + " preset")
            print(f"{PROG}: no display (DISPLAY/WAYLAND_DISPLAY unset): running {what} into "
                  f"{args.out or os.path.join('out', 'headless')}", file=sys.stderr)
            headless = True
        viewer = None
        if not headless:
            try:
                viewer = importlib.import_module("n2n_live.viewer.app")
            except ImportError as e:
                print(f"{PROG}: the viewer is not available ({e}); running headless instead", file=sys.stderr)
                headless = True
        cfg = build_config(args, headless)
        check_before_work(args, cfg, headless)
        if headless:
            from .headless import run_headless

            summary = run_headless(cfg, progress=not args.no_progress)
            if summary and summary.get("skipped") and not summary.get("train_steps"):
                # Finishing "successfully" with an untrained network would hide the problem.
                raise UserError(f"{cfg.scene}: all {summary['skipped']} training steps were skipped (loss or gradient "
                                f"not finite: NaN/Inf or extreme radiance in the renders); nothing was learned")
        else:
            viewer.run(cfg, args)


if __name__ == "__main__":
    main()
