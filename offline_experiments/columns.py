"""What every experiment of `experiments.py` is made of: the command line's Context, the eval data, one trained
network's column (trained or, in a resumed run, loaded), one baseline's column (cached on disk) and the generic
synthetic-noise experiment that puts them into one table.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from n2n_live.checkpoint import save_checkpoint
from n2n_live.errors import UserError
from n2n_live.losses import LOSSES, l0_gamma
from n2n_live.models.unet import UNet

from .baseline_cache import BaselineCache
from .corruptions import Corruption, sample_levels
from .datasets import ImageFolder, load_eval_folder
from .presets import Preset
from .report import Column, Result
from .training import (Batches, EvalItem, RunOutcome, StatsLog, fit, make_eval_items, mean, predict, psnrs,
                       read_saved)


@dataclass
class Context:
    """Everything an experiment needs from the command line."""
    preset: Preset
    targets: str  # noisy | clean | both | none (baselines and input only)
    device: torch.device
    seed: int
    train_dir: Path  # an image folder, or (MRI) a NIfTI file/folder
    eval_dirs: list[Path]
    stats: StatsLog = field(default_factory=lambda: StatsLog(None))
    log: Callable[[str], None] = print
    experiment: str = ""  # the experiment's name: the `kind` of the checkpoints it saves
    out: Path | None = None  # where trained networks are saved (None: not saved)
    baselines: BaselineCache = field(default_factory=lambda: BaselineCache(None))  # cached baseline outputs

    def wants(self, targets: str) -> bool:
        return self.targets in ("both", targets)


@dataclass(frozen=True)
class RunSpec:
    """One network to train: its column label, its kind of targets and its loss."""
    label: str
    targets: str  # noisy | clean
    loss: str  # a name in n2n_live.losses.LOSSES: l2 | l1 | l0 | masked_l2


def _loss_kw(loss: str):
    # The annealed L0: gamma goes linearly from 2 to 0 over training (Section 3.2).
    return (lambda progress: {"gamma": l0_gamma(progress)}) if loss == "l0" else None


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)  # network initialisation


# ---------------------------------------------------------------------------------------------------------
# Shared pieces: eval data, one trained column, one baseline column.

def eval_sets(ctx: Context) -> list[tuple[str, list]]:
    """[(set name, [(file, image)])]: each folder's first `eval_images` files in name order, fewer where the preset
    caps that set (`eval_limits`), centre-cropped to `eval_crop` (None: whole images)."""
    P = ctx.preset
    limits = dict(P.eval_limits)
    sets = []
    for d in ctx.eval_dirs:
        caps = [n for n in (P.eval_images, limits.get(d.name.lower())) if n is not None]
        sets.append((d.name, load_eval_folder(d, min(caps) if caps else None, P.eval_crop)))
    return sets


def eval_note(ctx: Context, sets) -> str:
    """What the table was evaluated on, for its notes."""
    P = ctx.preset
    how = "whole images" if P.eval_crop is None else f"{P.eval_crop}x{P.eval_crop} centre crops"
    counts = ", ".join(f"{name} {len(images)} (the first in file-name order)" if name.lower() in dict(P.eval_limits)
                       else f"{name} {len(images)}" for name, images in sets)
    return f"Evaluated on {how}; images per set: {counts}."


def corrupt_eval(apply: Callable, level: float, masked: bool):
    def corrupt(img, gen):
        y = apply(img, level, gen)
        return (y[0] if masked else y), {}
    return corrupt


def column(label: str, items: list[EvalItem], outputs: list[torch.Tensor], kind: str) -> Column:
    col = Column(label, {}, kind)
    for it, v in zip(items, psnrs(outputs, items)):
        col.psnr.setdefault(it.set, []).append(v)
    return col


def input_column(items: list[EvalItem], label: str = "input") -> Column:
    return column(label, items, [it.noisy for it in items], "input")


def curve_items(items: list[EvalItem], limit: int | None = None) -> list[EvalItem]:
    """PSNR curves follow the first eval set only (Figure 1 plots Kodak), its first `limit` images when given
    (whole images are slow to run through the network at every curve point on a CPU)."""
    first = [it for it in items if it.set == items[0].set]
    return first[:limit] if limit is not None else first


def baseline_column(ctx: Context, label: str, fn: Callable[[EvalItem], torch.Tensor],
                     items: list[EvalItem], limit: bool = True,
                     cache_as: str | None = None) -> tuple[Column, torch.Tensor | None]:
    """A classical method on the first `baseline_images` images of each set (all of them if not `limit`);
    returns the column and its output for the grid image (the first item). With `cache_as` (the method and its
    parameters) each output is cached on disk (ctx.baselines) and reused by later runs."""
    n = ctx.preset.baseline_images if limit else None
    chosen, outputs, per_set, t0 = [], [], {}, time.time()
    hits = ctx.baselines.hits
    for it in tqdm(items, desc=label, file=sys.stderr, leave=False, dynamic_ncols=True):
        if n is not None and per_set.get(it.set, 0) >= n:
            continue
        per_set[it.set] = per_set.get(it.set, 0) + 1
        chosen.append(it)
        outputs.append(ctx.baselines.get(cache_as, it, fn) if cache_as else fn(it))
    cached = ctx.baselines.hits - hits
    ctx.stats.add(run=label, kind="baseline", images=len(chosen), cached=cached, seconds=round(time.time() - t0, 2))
    ctx.log(f"{label}: {len(chosen)} images in {time.time() - t0:.1f} s"
            + (f" ({cached} from the cache)" if cache_as else ""))
    first = outputs[0] if chosen and chosen[0] is items[0] else None
    return column(label, chosen, outputs, "baseline"), first


def train_column(ctx: Context, run: RunSpec, make_batch: Callable, items: list[EvalItem], *, channels: int = 3,
                  iters: int | None = None, post: Callable | None = None, loss_fn: Callable | None = None,
                  seed_offset: int = 0, nets: dict | None = None, curve_images: int | None | str = "preset"):
    """Train one network and evaluate it: returns (column, curve, output for the grid image); the network
    itself goes into `nets[label]` when a dict is given."""
    P = ctx.preset
    iters = iters or P.iters
    _seed_all(ctx.seed + seed_offset)
    net = UNet(n_in=channels, m_out=channels).to(ctx.device)
    on_curve = curve_items(items, P.curve_images if curve_images == "preset" else curve_images)
    path = Path(ctx.out) / checkpoint_name(run.label) if ctx.out is not None else None
    done = _trained_earlier(ctx, run, iters, path)
    if done is not None:
        # A resumed experiment: this network finished before the interruption.
        net.load_state_dict(done["net"])
        meta = done["meta"]
        out = RunOutcome(net, [tuple(c) for c in meta["curve"]], meta["seconds"], meta["skipped"])
        ctx.log(f"{run.label}: trained before the interruption, loaded from {path.name}")
    else:
        def evaluate(n):
            return mean(psnrs(predict(n, on_curve, ctx.device, post), on_curve))

        batches = Batches(make_batch, ctx.seed + seed_offset, P.workers)
        # At least five points on every curve, however short the run.
        eval_every = max(1, min(P.eval_every, iters // 5))
        state = path.with_name(f".{path.stem}.state.pt") if path is not None else None
        out = fit(run.label, net, loss_fn or LOSSES[run.loss], batches, iters=iters, lr=P.lr, rampdown=P.rampdown,
                  eval_every=eval_every, evaluate=evaluate, device=ctx.device, stats=ctx.stats,
                  loss_kw=_loss_kw(run.loss), state_path=state, save_every_s=P.save_every_s, log=ctx.log)
        if out.skipped >= iters:
            raise UserError(f"{run.label}: all {iters} training steps were skipped (loss or gradient not finite): "
                            f"nothing was learned; check the data in {ctx.train_dir}")
    outputs = predict(net, items, ctx.device, post)
    col = column(run.label, items, outputs, "network")
    if done is None:
        ckpt = _save_network(ctx, run, net, iters, {k: col.row_mean(k) for k in col.psnr}, out)
        ctx.stats.add(run=run.label, kind="final", seconds=round(out.seconds, 2), skipped=out.skipped,
                      psnr={k: col.row_mean(k) for k in col.psnr}, checkpoint=ckpt)
        if state is not None:
            state.unlink(missing_ok=True)  # the finished network replaces its training state
    ctx.log(f"{run.label}: " + ", ".join(f"{k} {col.row_mean(k):.2f} dB" for k in col.psnr)
            + f" ({iters} iterations, {out.seconds:.0f} s)")
    if nets is not None:
        nets[run.label] = net
    return col, out.curve, outputs[0]


def checkpoint_name(label: str) -> str:
    """A file name for a run's label: "noisy targets (L0), p=0.30" -> "noisy-targets-l0-p0.30.pt"."""
    slug = re.sub(r"[^a-z0-9.]+", "-", label.lower().replace("=", "")).strip("-.")
    return f"{slug or 'network'}.pt"


def _trained_earlier(ctx: Context, run: RunSpec, iters: int, path: Path | None) -> dict | None:
    """The checkpoint a resumed experiment's earlier process saved for this very network, or None. (A fresh run
    empties its folder first, so a checkpoint found here is always one of this command's.)"""
    state = read_saved(path)
    if state is None:
        return None
    meta = state.get("meta") or {}
    same = (meta.get("label"), meta.get("iters"), meta.get("seed"), meta.get("preset")) == \
        (run.label, iters, ctx.seed, ctx.preset.name)
    return state if same and "curve" in meta else None


def _save_network(ctx: Context, run: RunSpec, net: torch.nn.Module, iters: int, psnr: dict,
                  outcome: RunOutcome) -> str | None:
    """Save a trained network where `n2n-denoise --checkpoint` can use it (kind = the experiment's name).

    The network maps images in [0, 1] shifted by -0.5 to the same (training.SHIFT), as n2n-denoise assumes."""
    if ctx.out is None:
        return None
    path = Path(ctx.out) / checkpoint_name(run.label)
    meta = {"experiment": ctx.experiment, "label": run.label, "targets": run.targets, "loss": run.loss,
            "iters": iters, "preset": ctx.preset.name, "crop": ctx.preset.crop, "seed": ctx.seed,
            "psnr": psnr, "io": "input: image in [0, 1] minus 0.5; output: image minus 0.5",
            "curve": outcome.curve, "seconds": outcome.seconds, "skipped": outcome.skipped}
    if ctx.experiment == "mri":
        meta["note"] = ("trained with the input's measured frequencies put back into the output (Section 3.4); "
                        "applied to a plain image, the network runs without that spectral replacement")
    save_checkpoint(path, net, kind=ctx.experiment or "experiment", meta=meta)
    return path.name


def synthetic_batch(train: ImageFolder, c: Corruption, apply: Callable, run: RunSpec, batch: int,
                     level_range: tuple[float, float]):
    """Clean crops -> (corrupted input, noisy or clean target, loss arguments). Input and target share the
    example's level but are independent realisations (separate masks, separate text, ...)."""
    def make_batch(gen):
        clean = train.batch(batch, gen)
        levels = sample_levels(batch, *level_range, gen)
        inp = apply(clean, levels, gen)
        inp = inp[0] if c.masked else inp
        if run.targets == "clean":
            return inp, clean, {}
        tgt = apply(clean, levels, gen)
        if c.masked:
            tgt, mask = tgt
            return inp, tgt, ({"mask": mask} if run.loss == "masked_l2" else {})
        return inp, tgt, {}
    return make_batch


def noise_experiment(ctx: Context, name: str, title: str, c: Corruption, runs: list[RunSpec], *,
                      baseline: tuple[str, Callable] | None = None, apply: Callable | None = None,
                      eval_level: float | None = None, level_range=None, paper=None, paper_source="",
                      notes=(), train: ImageFolder | None = None, sets=None, iters=None,
                      label_suffix: str = "", nets: dict | None = None) -> Result:
    """The generic synthetic-noise experiment: train each run, evaluate all, add baseline and input."""
    P = ctx.preset
    apply = apply or c.apply
    eval_level = c.eval_level if eval_level is None else eval_level
    level_range = level_range or c.train_range
    train = train or ImageFolder(ctx.train_dir, P.crop)
    sets = sets or eval_sets(ctx)
    items = make_eval_items(sets, corrupt_eval(apply, eval_level, c.masked), ctx.seed)
    runs = [r for r in runs if ctx.wants(r.targets)]
    columns, curves, outs = [], {}, {}
    for k, run in enumerate(runs):
        run = RunSpec(run.label + label_suffix, run.targets, run.loss)
        make_batch = synthetic_batch(train, c, apply, run, P.batch, level_range)
        col, curve, first = train_column(ctx, run, make_batch, items, iters=iters, seed_offset=k, nets=nets)
        columns.append(col)
        curves[run.label] = curve
        outs[run.label] = first
    refs, grid = {}, [(f"input\n{first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)]
    # The grid: input, noisy-target results, clean-target results, baseline, ground truth.
    for col in sorted(columns, key=lambda col: col.label.startswith("clean")):
        grid.append((f"{col.label}\n{first_psnr(outs[col.label], items[0]):.2f} dB", outs[col.label]))
    if baseline is not None:
        label, fn = baseline
        bcol, bfirst = baseline_column(ctx, label + label_suffix, fn, items,
                                        cache_as=f"{name}: {label} at level {eval_level:g}")
        columns.append(bcol)
        refs[bcol.label] = mean(v for it_set, v in pairs(bcol) if it_set == items[0].set)
        if bfirst is not None:
            grid.append((f"{bcol.label}\n{first_psnr(bfirst, items[0]):.2f} dB", bfirst))
    icol = input_column(items, "input" + label_suffix)
    columns.append(icol)
    refs[icol.label] = icol.row_mean(items[0].set)
    grid.append(("ground truth", items[0].clean))
    # Table 1's column order: clean targets, noisy targets, baseline, input.
    nets = [col for col in columns if col.kind == "network"]
    nets.sort(key=lambda col: not col.label.startswith("clean"))
    columns = nets + [col for col in columns if col.kind != "network"]
    return Result(name, title, [s for s, _ in sets], columns, curves=curves, curve_refs=refs,
                  curve_set=items[0].set, grid=grid, grid_name=f"{items[0].set}/{items[0].name}",
                  paper=paper or {}, paper_source=paper_source, notes=list(notes) + [eval_note(ctx, sets)])


def pairs(col: Column):
    return [(s, v) for s, vals in col.psnr.items() for v in vals]


def first_psnr(img: torch.Tensor, item: EvalItem) -> float:
    from n2n_live.metrics import psnr

    return psnr(img, item.clean)
