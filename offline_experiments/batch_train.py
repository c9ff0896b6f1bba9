"""`n2n-train`: batch training of the Monte Carlo denoiser on an exported EXR dataset.

    n2n-train --data data/cbox --target noisy --out runs/cbox-noisy [--iters 100000] [--batch 4] [--crop 256]
    torchrun --nproc-per-node 4 -m offline_experiments.batch_train --data ... --out ...   # several GPUs

The same networks, L_HDR and TrainStep as the live trainer (`--model live`: exactly the network n2n-live builds by
default, which is how its warm start is trained, offline_experiments/warm_start.py); paper settings by default (minibatch 4, 256x256 crops,
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
All processes must see the dataset and RUN (a shared file system across machines). The flags and their defaults:
`train_config.TrainConfig`; the process group: `distributed`.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from n2n_live.checkpoint import load_checkpoint
from n2n_live.errors import UserError, exit_on_user_error
from n2n_live.features import network_input
from n2n_live.io_utils import write_json
from n2n_live.live.denoiser import mc_output
from n2n_live.losses import l_hdr
from n2n_live.metrics import psnr_hdr
from n2n_live.train_step import TrainStep, rampdown_lr

from . import mc_dataset
from .distributed import Dist, agree, setup, teardown
from .run_folder import RunFiles, config_error, prepare_run_folder
from .train_config import PROG, TrainConfig, fresh_network, init_network, parse_config


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
            colour, albedo, normal, emission = reals[0]  # realisation a
            zeros = np.zeros_like(colour)
            x = network_input(net, *(torch.from_numpy(a) for a in (colour, albedo if albedo is not None else zeros,
                                                                    normal if normal is not None else zeros)),
                              emission=None if emission is None else torch.from_numpy(emission))
            y = mc_output(net, x.to(ctx.device), tile=tile, amp=amp)[0].permute(1, 2, 0).cpu()
            s = sums.setdefault(level, [0.0, 0.0, 0.0])
            s[0] += psnr_hdr(y, ref)
            s[1] += psnr_hdr(torch.from_numpy(colour), ref)
            s[2] += 1.0
    # a process may hold no validation view at all: the levels are the union over the processes
    levels = sorted({lv for lvs in ctx.gather(sorted(sums)) for lv in lvs})
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


def weights_digest(net: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- the run: data, network, run folder, loop, end ---

def load_data(cfg: TrainConfig, ctx: Dist) -> tuple[list, list, list, list]:
    """(files, validation files, training views, validation views): every process scans the names; each reads
    only its share of the images."""
    error, result = None, None
    try:
        files = mc_dataset.scan(cfg.data, cfg.spp)
        train_files, val_files = mc_dataset.split(files, cfg.val_fraction)
        mine = mc_dataset.views_for_rank(train_files, ctx.rank, ctx.world)
        train_views = mc_dataset.load(mine, need_reference=cfg.target == "clean",
                                      min_realisations=2 if cfg.target == "noisy" else 1, skip_bad=cfg.skip_bad,
                                      emission=cfg.emission)
        val_views = mc_dataset.load(val_files[ctx.rank::ctx.world], need_reference=True, skip_bad=cfg.skip_bad,
                                    emission=cfg.emission)
        if not train_views:
            raise UserError(f"{cfg.data}: no usable training views left")
        result = files, val_files, train_views, val_views
    except (UserError, OSError) as e:
        error = e if isinstance(e, UserError) else UserError(f"{cfg.data}: {e}")
    agree(ctx, error)
    return result


def build_network(cfg: TrainConfig, ctx: Dist, ckpt_path: Path) -> tuple[torch.nn.Module, dict | None]:
    """(network, training state or None): resumed from RUN/checkpoint.pt (its own model), else started from --init
    (likewise), else a fresh --model drawn from --seed (so that the same seed gives the same run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = fresh_network(cfg.model)
    train_state, error = None, None
    try:
        if ckpt_path.is_file():
            net, state = load_checkpoint(ckpt_path)
            train_state = state.get("train_state") or {}
        elif cfg.init is not None:
            net = init_network(cfg.init)
    except UserError as e:
        error = e
    agree(ctx, error)
    # channels_last: faster convolutions on CPU and the layout tensor cores prefer (docs/design-notes.md).
    return net.to(ctx.device, memory_format=torch.channels_last), train_state


def make_step(net: torch.nn.Module, cfg: TrainConfig, ctx: Dist, train_state: dict | None) -> TrainStep:
    """The shared TrainStep on the network (a DDP replica under torchrun), its optimiser state restored."""
    step_fn = TrainStep(ctx.wrap(net), l_hdr, lr=cfg.lr, amp=cfg.amp)
    if train_state:
        step_fn.load_state_dict(train_state)
    return step_fn


def train_loop(cfg: TrainConfig, ctx: Dist, net: torch.nn.Module, step_fn: TrainStep, train_views: list,
               val_views: list, files: RunFiles, start: int) -> dict:
    """Steps start..iters: batch, step, stats, validation, checkpoint. Returns the last validation result."""
    from tqdm import tqdm

    bar = tqdm(total=cfg.iters, initial=start, desc=PROG, unit="it", disable=cfg.quiet or not ctx.main,
               file=sys.stderr, dynamic_ncols=True)
    per_rank = cfg.batch // ctx.world
    window = [0.0, 0.0, 0.0]  # loss sum, counted steps, skipped (all processes)
    t_window = t_start = time.perf_counter()
    last_val = {}
    for it in range(start, cfg.iters):
        step = it + 1
        # Data: random crops from this process's views; the batch depends on (seed, rank, step) only.
        rng = np.random.default_rng([cfg.seed, ctx.rank, it])
        x, y = mc_dataset.sample_batch(rng, train_views, per_rank, cfg.crop, cfg.target, net=net)
        # One training step (DDP averages the gradients across processes in backward).
        step_fn.set_lr(rampdown_lr(it, cfg.iters, cfg.lr, cfg.rampdown))
        x = x.to(ctx.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        loss = step_fn.step(x, y.to(ctx.device, non_blocking=True))
        loss_sum, ok, skipped = ctx.all_sum([loss or 0.0, float(loss is not None), float(loss is None)])
        if 0 < skipped < ctx.world:
            # A step skipped on some replicas only (a non-finite loss with finite gradients): re-synchronise.
            ctx.broadcast_parameters(net)
        window = [window[0] + loss_sum, window[1] + ok, window[2] + (skipped > 0)]
        # Stats, validation, checkpoint.
        if step % cfg.log_every == 0 or step == cfg.iters:
            now = time.perf_counter()
            files.log({"step": step, "loss": window[0] / max(window[1], 1), "lr": step_fn.lr,
                       "skipped": int(window[2]), "sec_per_iter": (now - t_window) / cfg.log_every,
                       "time": round(now - t_start, 3)})
            bar.set_postfix(loss=f"{window[0] / max(window[1], 1):.4f}", **({"val": f"{last_val['val_psnr']:.2f}dB"}
                                                                             if last_val else {}))
            window, t_window = [0.0, 0.0, 0.0], now
        if val_views is not None and (step % cfg.val_every == 0 or step == cfg.iters):
            result = validate(net, val_views, ctx, cfg.amp, cfg.tile)
            if result:
                last_val = result
                files.log({"step": step, **result})
        if step % cfg.ckpt_every == 0 or step == cfg.iters:
            files.save(step, step_fn)
        bar.update(1)
    bar.close()
    if start < cfg.iters and step_fn.steps == 0:
        raise UserError(f"{cfg.data}: all {step_fn.skipped} training steps were skipped (loss or gradient not "
                        "finite): nothing was learned; check the dataset for NaN/Inf or extreme values")
    return last_val


def finish(cfg: TrainConfig, ctx: Dist, net: torch.nn.Module, step_fn: TrainStep, start: int, last_val: dict,
           seconds: float) -> dict:
    """done.json (rank 0) with the replicas' weight digests; replicas that diverged fail loudly."""
    digests = ctx.gather(weights_digest(net))
    done = {"step": cfg.iters, "target": cfg.target, "replica_digests": digests,
            "replicas_identical": len(set(digests)) == 1, "skipped_steps": step_fn.skipped,
            "seconds_this_session": round(seconds, 1), **last_val}
    if ctx.main:
        if start >= cfg.iters:
            print(f"{PROG}: {cfg.out} already finished at step {start}", file=sys.stderr)
            prev = cfg.out / "done.json"
            if prev.is_file():
                done = {**json.loads(prev.read_text()), "replica_digests": digests}
        else:
            write_json(cfg.out / "done.json", done)
        if last_val:
            print(f"{PROG}: step {cfg.iters}: validation {last_val['val_psnr']:.2f} dB "
                  f"(input {last_val['input_psnr']:.2f} dB)", file=sys.stderr)
    if not done["replicas_identical"]:
        raise RuntimeError(f"replicas diverged: weight digests {digests}")
    return done


def train(cfg: TrainConfig, ctx: Dist) -> dict:
    """One run of n2n-train in this process: data -> network -> run folder -> loop -> done.json."""
    cfg = cfg.resolved(ctx.device)
    out = cfg.out
    config = cfg.to_json()
    if cfg.batch % ctx.world:
        raise UserError(f"--batch {cfg.batch} does not split between {ctx.world} processes")
    agree(ctx, config_error(out, config))
    files, val_files, train_views, val_views = load_data(cfg, ctx)
    net, train_state = build_network(cfg, ctx, out / "checkpoint.pt")
    resumed = train_state is not None
    start = int(train_state.get("step", 0)) if resumed else 0
    step_fn = make_step(net, cfg, ctx, train_state)
    if ctx.main:
        config.update(world_size=ctx.world, device=str(ctx.device), torch=torch.__version__,
                      train_views=len(files) - len(val_files), val_views=len(val_files),
                      size=list(train_views[0].size), spp_levels=sorted({lv for v in files for lv in v.noisy}))
        prepare_run_folder(out, config, start, resumed)
        print(f"{PROG}: {'resuming at step ' + str(start) if resumed else 'starting'} "
              f"({len(files) - len(val_files)} training / {len(val_files)} validation views, target {cfg.target}, "
              f"{ctx.world} process(es) on {ctx.device}{', bf16' if cfg.amp else ''})", file=sys.stderr)
    run_files = RunFiles(out, net, cfg.target, config["data"], ctx.main, PROG)
    t_start = time.perf_counter()
    try:
        last_val = train_loop(cfg, ctx, net, step_fn, train_views, val_views if val_files else None, run_files,
                              start)
    finally:
        run_files.close()
    return finish(cfg, ctx, net, step_fn, start, last_val, time.perf_counter() - t_start)


def main(argv=None) -> None:
    ctx, finished = None, False
    try:
        with exit_on_user_error(PROG):
            cfg = parse_config(argv)
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            ctx = setup(cfg.device)
            train(cfg, ctx)
            finished = True
    finally:
        teardown(ctx, finished)


if __name__ == "__main__":
    main()
