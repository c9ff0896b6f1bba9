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
the batches the uninterrupted one would have.

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
from n2n_live.checkpoint import model_spec, read_checkpoint, save_checkpoint
from n2n_live.denoise_cli import denoise_tiled
from n2n_live.errors import UserError, exit_on_user_error
from n2n_live.features import network_input
from n2n_live.io_utils import atomic_path, write_json, write_text
from n2n_live.losses import l_hdr
from n2n_live.metrics import psnr_hdr
from n2n_live.train_step import LR_MC, TrainStep, rampdown_lr

from . import mc_dataset

PROG = "n2n-train"
# Settings that define a run: resuming with different values would silently mix two experiments.
RUN_KEYS = ("data", "target", "batch", "crop", "lr", "spp", "seed", "val_fraction", "rampdown", "model")


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
    if device_arg == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(device_arg)
        except RuntimeError:
            raise UserError(f"--device {device_arg}: not a torch device (use auto, cpu, cuda)") from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise UserError(f"--device {device_arg}: CUDA is not available on this machine")
            if device.index is None:
                device = torch.device(f"cuda:{local_rank}")
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


# --- run folder: stats, plots, config ---

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


def _check_config(out: Path, config: dict) -> None:
    path = out / "config.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for k in RUN_KEYS:
        if k in old and old[k] != config[k]:
            raise UserError(f"{path}: this run was started with {k}={old[k]!r}, now {config[k]!r}; "
                            f"use another --out, or the same settings to resume")


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
            y = denoise_tiled(net, x.to(ctx.device), tile=tile, amp=amp)[0].permute(1, 2, 0).cpu()
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


# --- the run ---

def train(args: argparse.Namespace, ctx: Dist) -> dict:
    out: Path = args.out
    amp = args.amp if args.amp is not None else ctx.device.type == "cuda"
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["data"] = str(Path(args.data).resolve())
    if args.batch % ctx.world:
        raise UserError(f"--batch {args.batch} does not split between {ctx.world} processes")

    # Dataset: every process scans the names; each reads only its share of the images.
    error = None
    try:
        _check_config(out, config)
        files = mc_dataset.scan(args.data, args.spp)
        train_files, val_files = mc_dataset.split(files, args.val_fraction)
        mine = mc_dataset.views_for_rank(train_files, ctx.rank, ctx.world)
        train_views = mc_dataset.load(mine, need_reference=args.target == "clean",
                                      min_realisations=2 if args.target == "noisy" else 1, skip_bad=args.skip_bad)
        val_views = mc_dataset.load(val_files[ctx.rank::ctx.world], need_reference=True, skip_bad=args.skip_bad)
        if not train_views:
            raise UserError(f"{args.data}: no usable training views left")
    except (UserError, OSError) as e:
        error = e if isinstance(e, UserError) else UserError(f"{args.data}: {e}")
    agree(ctx, error)

    # Network and optimiser state: resume RUN/checkpoint.pt, else start from --init, else fresh.
    ckpt_path = out / "checkpoint.pt"
    net = models.build(args.model)  # --model; a checkpoint below brings its own (models.spec)
    start, train_state, resumed = 0, None, False
    error = None
    try:
        if ckpt_path.is_file():
            state = read_checkpoint(ckpt_path)
            net = models.from_spec(model_spec(state))
            net.load_state_dict(state["net"])
            train_state = state.get("train_state") or {}
            start, resumed = int(train_state.get("step", 0)), True
        elif args.init is not None:
            state = read_checkpoint(args.init)
            if (state["n_in"], state["m_out"]) not in ((9, 3), (10, 3)):
                raise UserError(f"{args.init}: a {state['n_in']}-in/{state['m_out']}-out network, "
                                f"not a Monte Carlo denoiser")
            net = models.from_spec(model_spec(state))
            net.load_state_dict(state["net"])
    except UserError as e:
        error = e
    agree(ctx, error)
    # channels_last: ~25 % faster convolutions on CPU (measured, 2 cores) and the layout tensor cores prefer.
    net.to(ctx.device, memory_format=torch.channels_last)
    model = net
    if ctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    step_fn = TrainStep(model, l_hdr, lr=args.lr, amp=amp)
    if train_state:
        if "opt" in train_state:
            step_fn.opt.load_state_dict(train_state["opt"])
        step_fn.steps, step_fn.skipped = int(train_state.get("steps", 0)), int(train_state.get("skipped", 0))

    # Run folder (rank 0): config, stats cut back to the checkpoint's step.
    stats_path = out / "stats.jsonl"
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        for tmp in out.glob(".*.tmp*"):  # temporaries of writes a kill -9 interrupted (atomic_path names)
            tmp.unlink(missing_ok=True)
        records = read_stats(stats_path, upto_step=start)
        write_text(stats_path, "".join(json.dumps(r) + "\n" for r in records))
        old = json.loads((out / "config.json").read_text()) if resumed and (out / "config.json").is_file() else {}
        config.update(world_size=ctx.world, device=str(ctx.device), amp=amp, torch=torch.__version__,
                      train_views=len(train_files), val_views=len(val_files),
                      size=list(train_views[0].size), spp_levels=sorted({lv for v in files for lv in v.noisy}),
                      started=old.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
                      resumed_at=old.get("resumed_at", []) + ([start] if resumed else []))
        write_json(out / "config.json", config)
        print(f"{PROG}: {'resuming at step ' + str(start) if resumed else 'starting'} "
              f"({len(train_files)} training / {len(val_files)} validation views, target {args.target}, "
              f"{ctx.world} process(es) on {ctx.device}{', bf16' if amp else ''})", file=sys.stderr)
    stats = open(stats_path, "a") if ctx.main else None

    def log(record: dict) -> None:
        if stats is not None:
            stats.write(json.dumps(record) + "\n")
            stats.flush()

    def save(step: int) -> None:
        if ctx.main:
            save_checkpoint(ckpt_path, net, kind="mc",
                            train_state={"step": step, "steps": step_fn.steps, "skipped": step_fn.skipped,
                                         "opt": step_fn.opt.state_dict()},
                            meta={"trainer": PROG, "target": args.target, "data": config["data"], "step": step})
            plot_stats(read_stats(stats_path), out)

    from tqdm import tqdm

    bar = tqdm(total=args.iters, initial=start, desc=PROG, unit="it", disable=args.quiet or not ctx.main,
               file=sys.stderr, dynamic_ncols=True)
    per_rank = args.batch // ctx.world
    window = [0.0, 0.0, 0.0]  # loss sum, counted steps, skipped (all processes)
    t_window, t_start = time.perf_counter(), time.perf_counter()
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
            log({"step": step, "loss": window[0] / max(window[1], 1), "lr": step_fn.lr, "skipped": int(window[2]),
                 "sec_per_iter": (now - t_window) / args.log_every, "time": round(now - t_start, 3)})
            bar.set_postfix(loss=f"{window[0] / max(window[1], 1):.4f}", **({"val": f"{last_val['val_psnr']:.2f}dB"}
                                                                             if last_val else {}))
            window, t_window = [0.0, 0.0, 0.0], now
        if val_files and (step % args.val_every == 0 or step == args.iters):
            result = validate(net, val_views, ctx, amp, args.tile)
            if result:
                last_val = result
                log({"step": step, **result})
        if step % args.ckpt_every == 0 or step == args.iters:
            save(step)
        bar.update(1)
    bar.close()

    # Replicas must hold identical weights; record it (and fail loudly if not).
    digests = [weights_digest(net)]
    if ctx.world > 1:
        digests = [None] * ctx.world
        dist.all_gather_object(digests, weights_digest(net))
    done = {"step": args.iters, "target": args.target, "replica_digests": digests,
            "replicas_identical": len(set(digests)) == 1, "skipped_steps": step_fn.skipped,
            "seconds_this_session": round(time.perf_counter() - t_start, 1), **last_val}
    if ctx.main:
        if start >= args.iters:
            print(f"{PROG}: {out} already finished at step {start}", file=sys.stderr)
            prev = out / "done.json"
            if prev.is_file():
                done = {**json.loads(prev.read_text()), "replica_digests": digests}
        else:
            write_json(out / "done.json", done)
        if stats is not None:
            stats.close()
        if last_val:
            print(f"{PROG}: step {args.iters}: validation {last_val['val_psnr']:.2f} dB "
                  f"(input {last_val['input_psnr']:.2f} dB)", file=sys.stderr)
    if not done["replicas_identical"]:
        raise RuntimeError(f"replicas diverged: weight digests {digests}")
    return done


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description="Train the Monte Carlo denoiser on an exported EXR dataset.")
    ap.add_argument("--data", required=True, type=Path, metavar="DIR", help="dataset folder written by n2n-export")
    ap.add_argument("--target", choices=("noisy", "clean"), default="noisy",
                    help="noisy: Noise2Noise pairs (default); clean: the reference")
    ap.add_argument("--out", required=True, type=Path, metavar="RUN", help="run folder (re-run to resume)")
    ap.add_argument("--iters", type=int, default=100_000, help="training steps (default 100000)")
    ap.add_argument("--batch", type=int, default=4, help="minibatch over all processes (default 4, the paper's)")
    ap.add_argument("--crop", type=int, default=256, help="random crop size (default 256, the paper's)")
    ap.add_argument("--lr", type=float, default=LR_MC, help=f"Adam learning rate (default {LR_MC}, the paper's for MC)")
    ap.add_argument("--rampdown", type=float, default=0.1, help="fraction of the run ramping lr down (default 0.1)")
    ap.add_argument("--spp", type=lambda s: sorted({int(v) for v in s.split(",")}), default=None, metavar="8[,64]",
                    help="train and validate on these spp levels only (default: all in the dataset)")
    ap.add_argument("--val-fraction", type=float, default=0.1, help="views held out for validation (default 0.1)")
    ap.add_argument("--val-every", type=int, default=1000, metavar="K", help="validate every K steps (default 1000)")
    ap.add_argument("--ckpt-every", type=int, default=500, help="checkpoint every N steps (default 500)")
    ap.add_argument("--log-every", type=int, default=50, help="stats.jsonl record every N steps (default 50)")
    ap.add_argument("--model", choices=models.MODEL_CHOICES, default="paper",
                    help="network of a fresh run: paper (Table 2 U-Net) or kernel (kernel-predicting); "
                    "--init and resumed runs use the checkpoint's")
    ap.add_argument("--init", type=Path, metavar="CKPT", help="start from this network (e.g. saved by n2n-live)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if available, else cpu), cpu, cuda")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 autocast (default: on for CUDA)")
    ap.add_argument("--tile", type=int, default=512, help="validation tile size (default 512)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per process (default: torch's choice)")
    ap.add_argument("--skip-bad", action="store_true", help="report bad files and train on the other views")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    for name in ("iters", "batch", "crop", "val_every", "ckpt_every", "log_every"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 <= args.val_fraction < 1 or not 0 <= args.rampdown <= 1 or args.lr <= 0:
        ap.error("--val-fraction must be in [0, 1), --rampdown in [0, 1], --lr > 0")
    return args


def main(argv=None) -> None:
    ctx = None
    try:
        with exit_on_user_error(PROG):
            args = parse_args(argv)
            if args.threads:
                torch.set_num_threads(args.threads)
            ctx = setup(args.device)
            train(args, ctx)
    finally:
        if ctx is not None and ctx.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
