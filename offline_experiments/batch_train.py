"""`n2n-train`: batch training of the Monte Carlo denoiser on an exported EXR dataset.

    n2n-train --data data/cbox --target noisy --out runs/cbox-noisy [--iters 100000] [--batch 4] [--crop 256]
    torchrun --nproc-per-node 4 -m offline_experiments.batch_train --data ... --out ...   # several GPUs

The same U-Net, L_HDR and TrainStep as the live trainer; paper settings by default (minibatch 4, 256x256 crops,
Adam lr 3e-4 with a smooth ramp-down over the last 10 %, bf16 autocast on CUDA). `--target noisy` trains on
Noise2Noise pairs (one realisation in, another as the target, both directions); `--target clean` on the
reference.

The run folder RUN holds config.json, stats.jsonl (training and validation records), loss.png,
val_psnr.png, checkpoint.pt (weights, optimiser, step; written atomically every --ckpt-every steps and at the
end) and done.json at the end. Running the same command again resumes from checkpoint.pt, so a crash or kill -9
loses at most one checkpoint interval; the data order depends only on (seed, rank, step), so a resumed run sees
the batches the uninterrupted one would have and ends with the same weights, bit for bit. --seed also draws the
network's initialisation: the same command gives the same network. (The folder's files: `run_folder`.)

Distributed: under torchrun (WORLD_SIZE > 1) each process trains a DistributedDataParallel replica (nccl on
CUDA, gloo on CPU) on its share of the training views with minibatch --batch / world; rank 0 writes every file.
All processes must see the dataset and RUN (a shared file system across machines).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from n2n_live import models
from n2n_live.checkpoint import load_checkpoint, network_from, read_checkpoint, save_checkpoint
from n2n_live.live.denoiser import mc_output
from n2n_live.errors import UserError, exit_on_user_error
from n2n_live.features import network_input
from n2n_live.io_utils import write_json
from n2n_live.losses import l_hdr
from n2n_live.metrics import psnr_hdr
from n2n_live.train_step import LR_MC, TrainStep, rampdown_lr
from n2n_live.validate import (BASE_BYTES, INFER_BYTES_PER_PIXEL, MAX_SIDE, TRAIN_BYTES_PER_PIXEL, ArgumentParser,
                               check_memory, check_output_dir, integer, path_arg, real, resolve_device, spp_list)

from . import mc_dataset
from .run_folder import RUN_KEYS, RunFiles, config_error, prepare_run_folder, read_stats  # noqa: F401 (re-exported)

PROG = "n2n-train"


@dataclass
class Dist:
    """Where this process stands: rank, world size, device (one GPU per process under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()


def setup(device_arg: str) -> Dist:
    """Initialise torch.distributed from torchrun's environment (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_arg, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank, device)


def agree(ctx: Dist, error: Exception | None) -> None:
    """Collective error check: if any process failed, all stop; the lowest failing rank prints its message."""
    if ctx.world == 1:
        if error is not None:
            raise error
        return
    failed = torch.zeros(ctx.world, dtype=torch.float64, device=ctx.device)
    failed[ctx.rank] = 1.0 if error is not None else 0.0
    dist.all_reduce(failed)
    bad = [r for r, f in enumerate(failed.tolist()) if f > 0]
    if not bad:
        return
    if ctx.rank == bad[0] and error is not None:
        raise error
    raise SystemExit(2)  # another process reported the problem


# --- validation ---

@torch.no_grad()
def validate(net: torch.nn.Module, views: list, ctx: Dist, amp: bool, tile: int) -> dict:
    """Mean PSNR (tonemapped) over the held-out views and spp levels: network output and noisy input.

    Each process validates its share of the views; the sums are reduced, so every process gets the same result.
    """
    sums = {}
    for view in views:
        ref = torch.from_numpy(view.reference)
        for level, reals in view.noisy.items():
            colour, albedo, normal = reals[0]  # realisation a
            zeros = np.zeros_like(colour)
            x = network_input(net, *(torch.from_numpy(a) for a in (colour, albedo if albedo is not None else zeros,
                                                                    normal if normal is not None else zeros)))
            y = mc_output(net, x.to(ctx.device), tile=tile, amp=amp)[0].permute(1, 2, 0).cpu()
            s = sums.setdefault(level, [0.0, 0.0, 0.0])
            s[0] += psnr_hdr(y, ref)
            s[1] += psnr_hdr(torch.from_numpy(colour), ref)
            s[2] += 1.0
    levels = _all_levels(ctx, sorted(sums))  # a process may hold no validation view at all
    flat = ctx.all_sum([x for lv in levels for x in sums.get(lv, [0.0, 0.0, 0.0])])
    per_spp = {}
    for i, lv in enumerate(levels):
        v, inp, n = flat[3 * i:3 * i + 3]
        if n > 0:
            per_spp[str(lv)] = {"val_psnr": v / n, "input_psnr": inp / n, "images": int(n)}
    n_all = sum(p["images"] for p in per_spp.values())
    if n_all == 0:
        return {}
    return {"val_psnr": sum(p["val_psnr"] * p["images"] for p in per_spp.values()) / n_all,
            "input_psnr": sum(p["input_psnr"] * p["images"] for p in per_spp.values()) / n_all,
            "val_images": n_all, "per_spp": per_spp}


def _all_levels(ctx: Dist, levels: list[int]) -> list[int]:
    if ctx.world == 1:
        return levels
    gathered = [None] * ctx.world
    dist.all_gather_object(gathered, levels)
    return sorted({lv for g in gathered for lv in g})


def weights_digest(net: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- the run: data, network, run folder, loop, end ---

def load_data(args: argparse.Namespace, ctx: Dist) -> tuple[list, list, list, list]:
    """(files, validation files, training views, validation views): every process scans the names; each reads
    only its share of the images."""
    error, result = None, None
    try:
        files = mc_dataset.scan(args.data, args.spp)
        train_files, val_files = mc_dataset.split(files, args.val_fraction)
        mine = mc_dataset.views_for_rank(train_files, ctx.rank, ctx.world)
        train_views = mc_dataset.load(mine, need_reference=args.target == "clean",
                                      min_realisations=2 if args.target == "noisy" else 1, skip_bad=args.skip_bad)
        val_views = mc_dataset.load(val_files[ctx.rank::ctx.world], need_reference=True, skip_bad=args.skip_bad)
        if not train_views:
            raise UserError(f"{args.data}: no usable training views left")
        result = files, val_files, train_views, val_views
    except (UserError, OSError) as e:
        error = e if isinstance(e, UserError) else UserError(f"{args.data}: {e}")
    agree(ctx, error)
    return result


def init_network(path: Path) -> torch.nn.Module:
    """The network of --init: a Monte Carlo denoiser's checkpoint (anything else is a UserError naming the file)."""
    state = read_checkpoint(path)
    if (state["n_in"], state["m_out"]) not in ((9, 3), (10, 3)):
        raise UserError(f"{path}: a {state['n_in']}-in/{state['m_out']}-out network, not a Monte Carlo denoiser")
    return network_from(state, path)


def build_network(args: argparse.Namespace, ctx: Dist, ckpt_path: Path) -> tuple[torch.nn.Module, dict | None]:
    """(network, training state or None): resumed from RUN/checkpoint.pt (its own model), else started from --init
    (likewise), else a fresh --model drawn from --seed (so that the same seed gives the same run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = models.build(args.model)
    train_state, error = None, None
    try:
        if ckpt_path.is_file():
            net, state = load_checkpoint(ckpt_path)
            train_state = state.get("train_state") or {}
        elif args.init is not None:
            net = init_network(args.init)
    except UserError as e:
        error = e
    agree(ctx, error)
    # channels_last: ~25 % faster convolutions on CPU (measured, 2 cores) and the layout tensor cores prefer.
    return net.to(ctx.device, memory_format=torch.channels_last), train_state


def make_step(net: torch.nn.Module, args: argparse.Namespace, ctx: Dist, amp: bool, train_state: dict | None) -> TrainStep:
    """The shared TrainStep on the network (a DDP replica under torchrun), its optimiser state restored."""
    model = net
    if ctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    step_fn = TrainStep(model, l_hdr, lr=args.lr, amp=amp)
    if train_state:
        step_fn.load_state_dict(train_state)
    return step_fn


def train_loop(args: argparse.Namespace, ctx: Dist, net: torch.nn.Module, step_fn: TrainStep, train_views: list,
               val_views: list, files: RunFiles, start: int) -> dict:
    """Steps start..iters: batch, step, stats, validation, checkpoint. Returns the last validation result."""
    from tqdm import tqdm

    bar = tqdm(total=args.iters, initial=start, desc=PROG, unit="it", disable=args.quiet or not ctx.main,
               file=sys.stderr, dynamic_ncols=True)
    per_rank = args.batch // ctx.world
    window = [0.0, 0.0, 0.0]  # loss sum, counted steps, skipped (all processes)
    t_window = t_start = time.perf_counter()
    last_val = {}
    for it in range(start, args.iters):
        step = it + 1
        # Data: random crops from this process's views; the batch depends on (seed, rank, step) only.
        rng = np.random.default_rng([args.seed, ctx.rank, it])
        x, y = mc_dataset.sample_batch(rng, train_views, per_rank, args.crop, args.target, net=net)
        # One training step (DDP averages the gradients across processes in backward).
        step_fn.set_lr(rampdown_lr(it, args.iters, args.lr, args.rampdown))
        x = x.to(ctx.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        loss = step_fn.step(x, y.to(ctx.device, non_blocking=True))
        loss_sum, ok, skipped = ctx.all_sum([loss or 0.0, float(loss is not None), float(loss is None)])
        if 0 < skipped < ctx.world:
            # A step skipped on some replicas only (a non-finite loss with finite gradients): re-synchronise.
            for p in net.parameters():
                dist.broadcast(p.data, src=0)
        window = [window[0] + loss_sum, window[1] + ok, window[2] + (skipped > 0)]
        # Stats, validation, checkpoint.
        if step % args.log_every == 0 or step == args.iters:
            now = time.perf_counter()
            files.log({"step": step, "loss": window[0] / max(window[1], 1), "lr": step_fn.lr,
                       "skipped": int(window[2]), "sec_per_iter": (now - t_window) / args.log_every,
                       "time": round(now - t_start, 3)})
            bar.set_postfix(loss=f"{window[0] / max(window[1], 1):.4f}", **({"val": f"{last_val['val_psnr']:.2f}dB"}
                                                                             if last_val else {}))
            window, t_window = [0.0, 0.0, 0.0], now
        if val_views is not None and (step % args.val_every == 0 or step == args.iters):
            result = validate(net, val_views, ctx, args.amp, args.tile)
            if result:
                last_val = result
                files.log({"step": step, **result})
        if step % args.ckpt_every == 0 or step == args.iters:
            files.save(step, step_fn)
        bar.update(1)
    bar.close()
    if start < args.iters and step_fn.steps == 0:
        raise UserError(f"{args.data}: all {step_fn.skipped} training steps were skipped (loss or gradient not "
                        "finite): nothing was learned; check the dataset for NaN/Inf or extreme values")
    return last_val


def finish(args: argparse.Namespace, ctx: Dist, net: torch.nn.Module, step_fn: TrainStep, start: int, last_val: dict,
           seconds: float) -> dict:
    """done.json (rank 0) with the replicas' weight digests; replicas that diverged fail loudly."""
    digests = [weights_digest(net)]
    if ctx.world > 1:
        digests = [None] * ctx.world
        dist.all_gather_object(digests, weights_digest(net))
    done = {"step": args.iters, "target": args.target, "replica_digests": digests,
            "replicas_identical": len(set(digests)) == 1, "skipped_steps": step_fn.skipped,
            "seconds_this_session": round(seconds, 1), **last_val}
    if ctx.main:
        if start >= args.iters:
            print(f"{PROG}: {args.out} already finished at step {start}", file=sys.stderr)
            prev = args.out / "done.json"
            if prev.is_file():
                done = {**json.loads(prev.read_text()), "replica_digests": digests}
        else:
            write_json(args.out / "done.json", done)
        if last_val:
            print(f"{PROG}: step {args.iters}: validation {last_val['val_psnr']:.2f} dB "
                  f"(input {last_val['input_psnr']:.2f} dB)", file=sys.stderr)
    if not done["replicas_identical"]:
        raise RuntimeError(f"replicas diverged: weight digests {digests}")
    return done


def train(args: argparse.Namespace, ctx: Dist) -> dict:
    """One run of n2n-train in this process: data -> network -> run folder -> loop -> done.json."""
    out: Path = args.out
    args.amp = args.amp if args.amp is not None else ctx.device.type == "cuda"
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["data"] = str(Path(args.data).resolve())
    if args.batch % ctx.world:
        raise UserError(f"--batch {args.batch} does not split between {ctx.world} processes")
    agree(ctx, config_error(out, config))
    files, val_files, train_views, val_views = load_data(args, ctx)
    net, train_state = build_network(args, ctx, out / "checkpoint.pt")
    resumed = train_state is not None
    start = int(train_state.get("step", 0)) if resumed else 0
    step_fn = make_step(net, args, ctx, args.amp, train_state)
    if ctx.main:
        config.update(world_size=ctx.world, device=str(ctx.device), torch=torch.__version__,
                      train_views=len(files) - len(val_files), val_views=len(val_files),
                      size=list(train_views[0].size), spp_levels=sorted({lv for v in files for lv in v.noisy}))
        prepare_run_folder(out, config, start, resumed)
        print(f"{PROG}: {'resuming at step ' + str(start) if resumed else 'starting'} "
              f"({len(files) - len(val_files)} training / {len(val_files)} validation views, target {args.target}, "
              f"{ctx.world} process(es) on {ctx.device}{', bf16' if args.amp else ''})", file=sys.stderr)
    run_files = RunFiles(out, net, args, config["data"], ctx.main, PROG)
    t_start = time.perf_counter()
    try:
        last_val = train_loop(args, ctx, net, step_fn, train_views, val_views if val_files else None, run_files,
                              start)
    finally:
        run_files.close()
    return finish(args, ctx, net, step_fn, start, last_val, time.perf_counter() - t_start)


def parse_args(argv=None) -> argparse.Namespace:
    ap = ArgumentParser(prog=PROG, description="Train the Monte Carlo denoiser on an exported EXR dataset.")
    ap.add_argument("--data", required=True, type=path_arg, metavar="DIR", help="dataset folder written by n2n-export")
    ap.add_argument("--target", choices=("noisy", "clean"), default="noisy",
                    help="noisy: Noise2Noise pairs (default); clean: the reference")
    ap.add_argument("--out", required=True, type=path_arg, metavar="RUN", help="run folder (re-run to resume)")
    ap.add_argument("--iters", type=integer(1, 10**9), default=100_000, help="training steps (default 100000)")
    ap.add_argument("--batch", type=integer(1, 4096), default=4, help="minibatch over all processes (default 4, the paper's)")
    ap.add_argument("--crop", type=integer(1, MAX_SIDE), default=256, help="random crop size (default 256, the paper's)")
    ap.add_argument("--lr", type=real(0.0, 1.0, lo_open=True), default=LR_MC, help=f"Adam learning rate (default {LR_MC}, the paper's for MC)")
    ap.add_argument("--rampdown", type=real(0.0, 1.0), default=0.1, help="fraction of the run ramping lr down (default 0.1)")
    ap.add_argument("--spp", type=spp_list, default=None, metavar="8[,64]",
                    help="train and validate on these spp levels only (default: all in the dataset)")
    ap.add_argument("--val-fraction", type=real(0.0, 0.99), default=0.1, help="views held out for validation (default 0.1)")
    ap.add_argument("--val-every", type=integer(1, 10**9), default=1000, metavar="K", help="validate every K steps (default 1000)")
    ap.add_argument("--ckpt-every", type=integer(1, 10**9), default=500, help="checkpoint every N steps (default 500)")
    ap.add_argument("--log-every", type=integer(1, 10**9), default=50, help="stats.jsonl record every N steps (default 50)")
    ap.add_argument("--model", choices=models.MODEL_CHOICES, default="paper",
                    help="network of a fresh run: paper (Table 2 U-Net) or kernel (kernel-predicting); "
                    "--init and resumed runs use the checkpoint's")
    ap.add_argument("--init", type=path_arg, metavar="CKPT", help="start from this network (e.g. saved by n2n-live)")
    ap.add_argument("--seed", type=integer(0, 2**31 - 1), default=0)
    ap.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if available, else cpu), cpu, cuda")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 autocast (default: on for CUDA)")
    ap.add_argument("--tile", type=integer(32, 8192), default=512, help="validation tile size (default 512)")
    ap.add_argument("--threads", type=integer(1, 1024), default=None, help="CPU threads per process (default: torch's choice)")
    ap.add_argument("--skip-bad", action="store_true", help="report bad files and train on the other views")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    check_output_dir(args.out, "--out")
    if not args.data.is_dir():  # before setting up devices and processes
        raise UserError(f"{args.data}: no such dataset folder")
    if args.init is not None:
        init_network(args.init)  # a bad or foreign file is refused before any work
    # A training step on batch x crop^2 pixels and a validation tile: refused with the estimate when too large.
    check_memory(BASE_BYTES + args.batch * args.crop**2 * TRAIN_BYTES_PER_PIXEL + args.tile**2 * INFER_BYTES_PER_PIXEL,
                 f"--batch {args.batch} --crop {args.crop} --tile {args.tile}")
    return args


def main(argv=None) -> None:
    ctx, finished = None, False
    try:
        with exit_on_user_error(PROG):
            args = parse_args(argv)
            if args.threads:
                torch.set_num_threads(args.threads)
            ctx = setup(args.device)
            train(args, ctx)
            finished = True
    finally:
        if ctx is not None and ctx.world > 1 and dist.is_initialized():
            if finished:
                # every rank reaches the end before any tears gloo down: a rank leaving while another still
                # talked aborted with "terminate called without an active exception" (seen once in CI-like runs)
                dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
