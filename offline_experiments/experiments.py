"""The experiments of Sections 3.1, 3.2 and 3.4, each a function `run(ctx) -> Result`.

Every one trains the shared U-Net (Table 2) with the shared TrainStep on corrupted inputs and noisy and/or clean
targets, then evaluates PSNR on fixed corrupted versions of the eval images. The names follow the paper:

  gaussian        3.1  white Gaussian, sigma in [0, 50] (blind), test 25, L2; baseline BM3D    (Table 1)
  brown-gaussian  3.1  blurred ("brown") Gaussian, one curve per bandwidth                     (Figure 1b)
  capture-budget  3.1  2000 capture units as 100x20 fixed pairs / 100x20 all pairs / 1000x2    (Figure 1c)
  poisson         3.2  lambda in [0, 50], test 30, L2; baseline Anscombe + BM3D                (Table 1)
  bernoulli       3.2  p in [0, 0.95], test 0.5, L2 on the target's valid pixels only          (Table 1)
  text            3.2  random text, coverage p in [0, 0.5], test 0.25; L1 (and L2 to compare)  (Figure 3)
  impulse         3.2  random-valued impulses, p in [0, 0.95], test 0.7; annealed L0, L1, L2   (Figure 4)
                       + the same networks at every p from 10 % to 90 %, relative to clean targets
  impulse-levels  3.2  one network per corruption level and loss, relative to clean targets    (Figure 5)
  mri             3.4  10 % k-space sampling, L2 after spectral replacement; baseline zero-filled IFFT
"""
from __future__ import annotations

import functools
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from n2n_live.checkpoint import read_checkpoint, save_checkpoint
from n2n_live.errors import UserError
from n2n_live.losses import LOSSES, l0_gamma, l2
from n2n_live.network import UNet

from . import baselines, mri as mri_mod
from .baseline_cache import BaselineCache
from .corruptions import CORRUPTIONS, Corruption, gaussian as gaussian_noise, sample_levels
from .datasets import ImageFolder, load_eval_folder
from .presets import Preset
from .report import Column, Result
from .training import SHIFT, Batches, EvalItem, RunOutcome, StatsLog, fit, make_eval_items, mean, predict, psnrs


@dataclass
class Context:
    """Everything an experiment needs from the command line."""
    preset: Preset
    targets: str  # noisy | clean | both
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

def _eval_sets(ctx: Context) -> list[tuple[str, list]]:
    """[(set name, [(file, image)])]: each folder's first `eval_images` files in name order, fewer where the preset
    caps that set (`eval_limits`), centre-cropped to `eval_crop` (None: whole images)."""
    P = ctx.preset
    limits = dict(P.eval_limits)
    sets = []
    for d in ctx.eval_dirs:
        caps = [n for n in (P.eval_images, limits.get(d.name.lower())) if n is not None]
        sets.append((d.name, load_eval_folder(d, min(caps) if caps else None, P.eval_crop)))
    return sets


def _eval_note(ctx: Context, sets) -> str:
    """What the table was evaluated on, for its notes."""
    P = ctx.preset
    how = "whole images" if P.eval_crop is None else f"{P.eval_crop}x{P.eval_crop} centre crops"
    counts = ", ".join(f"{name} {len(images)} (the first in file-name order)" if name.lower() in dict(P.eval_limits)
                       else f"{name} {len(images)}" for name, images in sets)
    return f"Evaluated on {how}; images per set: {counts}."


def _corrupt_eval(apply: Callable, level: float, masked: bool):
    def corrupt(img, gen):
        y = apply(img, level, gen)
        return (y[0] if masked else y), {}
    return corrupt


def _column(label: str, items: list[EvalItem], outputs: list[torch.Tensor], kind: str) -> Column:
    col = Column(label, {}, kind)
    for it, v in zip(items, psnrs(outputs, items)):
        col.psnr.setdefault(it.set, []).append(v)
    return col


def _input_column(items: list[EvalItem], label: str = "input") -> Column:
    return _column(label, items, [it.noisy for it in items], "input")


def _curve_items(items: list[EvalItem], limit: int | None = None) -> list[EvalItem]:
    """PSNR curves follow the first eval set only (Figure 1 plots Kodak), its first `limit` images when given
    (whole images are slow to run through the network at every curve point on a CPU)."""
    first = [it for it in items if it.set == items[0].set]
    return first[:limit] if limit is not None else first


def _baseline_column(ctx: Context, label: str, fn: Callable[[EvalItem], torch.Tensor],
                     items: list[EvalItem], limit: bool = True,
                     cache_as: str | None = None) -> tuple[Column, torch.Tensor | None]:
    """A classical method on the first `baseline_images` images of each set (all of them if not `limit`);
    returns the column and its output for the grid image (the first item). With `cache_as` (the method and its
    parameters) each output is cached on disk (ctx.baselines) and reused by later runs."""
    n = ctx.preset.baseline_images if limit else None
    chosen, outputs, per_set, t0 = [], [], {}, time.time()
    hits = ctx.baselines.hits
    for it in tqdm([it for it in items], desc=label, file=sys.stderr, leave=False, dynamic_ncols=True):
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
    return _column(label, chosen, outputs, "baseline"), first


def _train_column(ctx: Context, run: RunSpec, make_batch: Callable, items: list[EvalItem], *, channels: int = 3,
                  iters: int | None = None, post: Callable | None = None, loss_fn: Callable | None = None,
                  seed_offset: int = 0, nets: dict | None = None, curve_images: int | None | str = "preset"):
    """Train one network and evaluate it: returns (column, curve, output for the grid image); the network
    itself goes into `nets[label]` when a dict is given."""
    P = ctx.preset
    iters = iters or P.iters
    _seed_all(ctx.seed + seed_offset)
    net = UNet(n_in=channels, m_out=channels).to(ctx.device)
    curve_items = _curve_items(items, P.curve_images if curve_images == "preset" else curve_images)
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
            return mean(psnrs(predict(n, curve_items, ctx.device, post), curve_items))

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
    col = _column(run.label, items, outputs, "network")
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
    if path is None or not path.is_file():
        return None
    try:
        state = read_checkpoint(path)
    except UserError:
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


def _synthetic_batch(train: ImageFolder, c: Corruption, apply: Callable, run: RunSpec, batch: int,
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


def _noise_experiment(ctx: Context, name: str, title: str, c: Corruption, runs: list[RunSpec], *,
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
    sets = sets or _eval_sets(ctx)
    items = make_eval_items(sets, _corrupt_eval(apply, eval_level, c.masked), ctx.seed)
    runs = [r for r in runs if ctx.wants(r.targets)]
    columns, curves, outs = [], {}, {}
    for k, run in enumerate(runs):
        run = RunSpec(run.label + label_suffix, run.targets, run.loss)
        make_batch = _synthetic_batch(train, c, apply, run, P.batch, level_range)
        col, curve, first = _train_column(ctx, run, make_batch, items, iters=iters, seed_offset=k, nets=nets)
        columns.append(col)
        curves[run.label] = curve
        outs[run.label] = first
    refs, grid = {}, [(f"input\n{_first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)]
    # The grid: input, noisy-target results, clean-target results, baseline, ground truth.
    for col in sorted(columns, key=lambda col: col.label.startswith("clean")):
        grid.append((f"{col.label}\n{_first_psnr(outs[col.label], items[0]):.2f} dB", outs[col.label]))
    if baseline is not None:
        label, fn = baseline
        bcol, bfirst = _baseline_column(ctx, label + label_suffix, fn, items,
                                        cache_as=f"{name}: {label} at level {eval_level:g}")
        columns.append(bcol)
        refs[bcol.label] = mean(v for it_set, v in _pairs(bcol) if it_set == items[0].set)
        if bfirst is not None:
            grid.append((f"{bcol.label}\n{_first_psnr(bfirst, items[0]):.2f} dB", bfirst))
    icol = _input_column(items, "input" + label_suffix)
    columns.append(icol)
    refs[icol.label] = icol.row_mean(items[0].set)
    grid.append(("ground truth", items[0].clean))
    # Table 1's column order: clean targets, noisy targets, baseline, input.
    nets = [col for col in columns if col.kind == "network"]
    nets.sort(key=lambda col: not col.label.startswith("clean"))
    columns = nets + [col for col in columns if col.kind != "network"]
    return Result(name, title, [s for s, _ in sets], columns, curves=curves, curve_refs=refs,
                  curve_set=items[0].set, grid=grid, grid_name=f"{items[0].set}/{items[0].name}",
                  paper=paper or {}, paper_source=paper_source, notes=list(notes) + [_eval_note(ctx, sets)])


def _pairs(col: Column):
    return [(s, v) for s, vals in col.psnr.items() for v in vals]


def _first_psnr(img: torch.Tensor, item: EvalItem) -> float:
    from n2n_live.metrics import psnr

    return psnr(img, item.clean)


def _table1(kodak, bsd, set14, avg, labels=("clean targets", "noisy targets")):
    rows = {"Kodak": kodak, "BSD300": bsd, "Set14": set14, "Average": avg}
    return {r: dict(zip(labels, v)) for r, v in rows.items()}


# ---------------------------------------------------------------------------------------------------------
# Section 3.1

def gaussian(ctx: Context) -> Result:
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets", "noisy", "l2")]
    bm3d = ("BM3D", lambda it: baselines.bm3d_gaussian(it.noisy, CORRUPTIONS["gaussian"].eval_level))
    paper = _table1((32.50, 32.48, 31.82), (31.07, 31.06, 30.34), (31.31, 31.28, 30.50), (31.63, 31.61, 30.89),
                    ("clean targets", "noisy targets", "BM3D"))
    return _noise_experiment(ctx, "gaussian", "Additive white Gaussian noise (sigma = 25)", CORRUPTIONS["gaussian"],
                             runs, baseline=bm3d, paper=paper,
                             paper_source="Table 1, RED30 network; the paper's U-Net is ~0.2 dB lower",
                             notes=["Training sigma is drawn per example in [0, 50] (blind denoising)."])


def brown_gaussian(ctx: Context) -> Result:
    """Figure 1b: the same experiment per blur bandwidth; stronger correlation converges more slowly."""
    c = CORRUPTIONS["brown_gaussian"]
    P = ctx.preset
    train, sets = ImageFolder(ctx.train_dir, P.crop), _eval_sets(ctx)
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets", "noisy", "l2")]
    merged: Result | None = None
    for b in P.brown_bandwidths:
        r = _noise_experiment(ctx, "brown-gaussian", "", c, runs, apply=functools.partial(c.apply, bandwidth=b),
                              train=train, sets=sets, label_suffix=f", b={b:g}")
        if merged is None:
            merged = r
        else:
            merged.columns += r.columns
            merged.curves.update(r.curves)
            merged.curve_refs.update(r.curve_refs)
            merged.grid = merged.grid[:-1] + r.grid[1:]  # one input panel, one ground truth
    nets = [col for col in merged.columns if col.kind == "network"]
    merged.columns = nets + [col for col in merged.columns if col.kind != "network"]
    merged.curve_refs = {k: v for k, v in merged.curve_refs.items() if k.startswith("input")}
    merged.title = "Brown (blurred) Gaussian noise, sigma = 25, per blur bandwidth b (pixels)"
    merged.notes = ["b is the standard deviation of the Gaussian blur applied to white noise before rescaling to "
                    "sigma; the paper does not list its bandwidths. Figure 1b: wider blur converges more slowly, "
                    "end quality within 0.1 dB."]
    return merged


class _Latents:
    """Figure 1c's finite data: N fixed clean crops ("latents"), each with its own fixed noise realisations.

    A realisation r of latent i is regenerated from a seed of its own whenever it is needed, so any number of
    realisations costs no memory and every case sees exactly the captured data and nothing more.
    """

    def __init__(self, train: ImageFolder, n: int, seed: int, sigma: float = 25.0):
        gen = torch.Generator().manual_seed(seed + 77)
        self.crops = torch.stack([(train.batch(1, gen)[0] * 255 + 0.5).to(torch.uint8) for _ in range(n)])
        self.seed, self.sigma = seed, sigma
        self._clean_targets: dict[int, torch.Tensor] = {}

    def clean(self, i: int) -> torch.Tensor:
        return self.crops[i].float() / 255.0

    def noise(self, i: int, r: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed((self.seed * 7919 + i * 101 + r) % 2**62 + 1)
        return torch.randn(self.crops.shape[1:], generator=gen) * (self.sigma / 255.0)

    def realisation(self, i: int, r: int) -> torch.Tensor:
        return self.clean(i) + self.noise(i, r)

    def averaged(self, i: int, first: int, count: int) -> torch.Tensor:
        """The "clean" capture: the average of `count` noisy realisations (19 CUs)."""
        if i not in self._clean_targets:
            self._clean_targets[i] = self.clean(i) + torch.stack(
                [self.noise(i, r) for r in range(first, first + count)]).mean(0)
        return self._clean_targets[i]


def capture_budget(ctx: Context) -> Result:
    """Figure 1c: a budget of 2000 capture units (CU), one CU = one noisy image at sigma 25; a clean image
    costs 19 CUs (the average of 19 noisy ones).
      case 1: N = 100 latents x M = 20: one fixed noisy input + its clean (19-average) target each;
      case 2: the same captured data as all 20 x 19 ordered noisy/noisy pairs per latent;
      case 3: N = 1000 latents x M = 2 noisy realisations: both ordered pairs."""
    P = ctx.preset
    budget = P.capture_budget
    n12, n3 = max(1, budget // 20), max(1, budget // 2)
    train = ImageFolder(ctx.train_dir, P.crop)
    latents = _Latents(train, max(n12, n3), ctx.seed)
    sets = _eval_sets(ctx)
    items = make_eval_items(sets, _corrupt_eval(gaussian_noise, 25.0, False), ctx.seed)

    def pair_case1(gen):
        i = int(torch.randint(n12, (1,), generator=gen))
        return latents.realisation(i, 0), latents.averaged(i, 1, 19)

    def pair_case2(gen):
        i = int(torch.randint(n12, (1,), generator=gen))
        a, b = int(torch.randint(20, (1,), generator=gen)), int(torch.randint(19, (1,), generator=gen))
        return latents.realisation(i, a), latents.realisation(i, b + (b >= a))

    def pair_case3(gen):
        i = int(torch.randint(n3, (1,), generator=gen))
        a = int(torch.randint(2, (1,), generator=gen))
        return latents.realisation(i, a), latents.realisation(i, 1 - a)

    def batch_of(pair):
        def make_batch(gen):
            inp, tgt = zip(*(pair(gen) for _ in range(P.batch)))
            return torch.stack(inp), torch.stack(tgt), {}
        return make_batch

    cases = [(f"case 1: {n12} noisy/clean pairs", pair_case1),
             (f"case 2: {n12} x 20x19 noisy pairs", pair_case2),
             (f"case 3: {n3} x 2 noisy pairs", pair_case3)]
    columns, curves, grid = [], {}, [("input", items[0].noisy)]
    for k, (label, pair) in enumerate(cases):
        col, curve, first = _train_column(ctx, RunSpec(label, "noisy", "l2"), batch_of(pair), items, seed_offset=k)
        columns.append(col)
        curves[label] = curve
        grid.append((f"{label.split(':')[0]}\n{_first_psnr(first, items[0]):.2f} dB", first))
    icol = _input_column(items)
    columns.append(icol)
    grid[0] = (f"input\n{_first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)
    grid.append(("ground truth", items[0].clean))
    return Result("capture-budget", f"Capture budget of {budget} CUs, Gaussian sigma = 25 (Figure 1c)",
                  [s for s, _ in sets], columns, curves=curves, curve_refs={"input": icol.row_mean(items[0].set)},
                  curve_set=items[0].set, grid=grid, grid_name=f"{items[0].set}/{items[0].name}",
                  notes=["Paper (Figure 1c): case 3 > case 2 > case 1, each by several 0.1 dB.",
                         "--targets does not apply: each case fixes its own targets."])


# ---------------------------------------------------------------------------------------------------------
# Section 3.2

def poisson(ctx: Context) -> Result:
    c = CORRUPTIONS["poisson"]
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets", "noisy", "l2")]
    ansc = ("Anscombe+BM3D", lambda it: baselines.anscombe_bm3d(it.noisy, c.eval_level))
    paper = _table1((31.52, 31.50, 29.15), (30.18, 30.16, 27.56), (30.07, 30.06, 28.36), (30.59, 30.57, 28.36),
                    ("clean targets", "noisy targets", "Anscombe+BM3D"))
    return _noise_experiment(ctx, "poisson", "Poisson noise (lambda = 30)", c, runs, baseline=ansc, paper=paper,
                             paper_source="Table 1",
                             notes=["Training lambda is drawn per example in [0, 50]; y = Poisson(lambda x)/lambda.",
                                    "Anscombe+BM3D uses the closed-form unbiased inverse of Makitalo & Foi (2011)."])


def bernoulli(ctx: Context) -> Result:
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets", "noisy", "masked_l2")]
    paper = _table1((33.01, 33.17, 30.78), (31.04, 31.16, 28.97), (31.51, 31.72, 30.67), (31.85, 32.02, 30.14),
                    ("clean targets", "noisy targets", "DIP"))
    return _noise_experiment(ctx, "bernoulli", "Multiplicative Bernoulli noise (p = 0.5)", CORRUPTIONS["bernoulli"],
                             runs, paper=paper, paper_source="Table 1",
                             notes=["Noisy targets: the loss covers only the target's valid pixels (Eq. 7); input "
                                    "and target have independent masks.",
                                    "The paper's comparison, Deep Image Prior, is not run here."])


def text(ctx: Context) -> Result:
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets (L1)", "noisy", "l1"),
            RunSpec("noisy targets (L2)", "noisy", "l2")]
    med = ("median 5x5", lambda it: baselines.median_filter(it.noisy, 5))
    paper = {"Figure 3 (one image)": {"clean targets": 35.82, "noisy targets (L1)": 35.75,
                                      "noisy targets (L2)": 26.89, "input": 17.12}}
    return _noise_experiment(ctx, "text", "Text removal (p = 0.25)", CORRUPTIONS["text"], runs, baseline=med,
                             paper=paper, paper_source="Figure 3, a single image",
                             notes=["L1 seeks the median: a pixel keeps its colour more often than not. L2 drifts "
                                    "towards the mean text colour."])


def impulse(ctx: Context) -> Result:
    """Figure 4 (p = 0.7: annealed L0 vs L1 vs L2 vs clean targets), then the same blind networks evaluated at
    every level of `preset.impulse_eval_levels`: PSNR against the corruption level, relative to clean targets, in the
    manner of Figure 5 (the paper trains one network per level there: `impulse-levels`)."""
    c, P = CORRUPTIONS["impulse"], ctx.preset
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets (L0)", "noisy", "l0"),
            RunSpec("noisy targets (L1)", "noisy", "l1"), RunSpec("noisy targets (L2)", "noisy", "l2")]
    med = ("median 5x5", lambda it: baselines.median_filter(it.noisy, 5))
    paper = {"Figure 4 (one image)": {"clean targets": 28.86, "noisy targets (L0)": 28.43,
                                      "noisy targets (L1)": 16.36, "noisy targets (L2)": 13.02, "input": 8.89}}
    sets, nets = _eval_sets(ctx), {}
    result = _noise_experiment(ctx, "impulse", "Random-valued impulse noise (p = 0.7)", c, runs, baseline=med,
                               paper=paper, paper_source="Figure 4, a single image", sets=sets, nets=nets,
                               notes=["Annealed L0: (|f(x) - y| + 1e-8)^gamma, gamma 2 -> 0 linearly over "
                                      "training."])
    if P.impulse_eval_levels:
        _impulse_level_sweep(ctx, result, sets, nets)
    return result


def _impulse_level_sweep(ctx: Context, result: Result, sets, nets: dict) -> None:
    """Evaluate the trained blind networks on every corruption level: a second table and levels.png."""
    c, P = CORRUPTIONS["impulse"], ctx.preset
    table: dict[str, dict[str, float]] = {}
    for j, p in enumerate(P.impulse_eval_levels):
        items = make_eval_items(sets, _corrupt_eval(c.apply, p, False), ctx.seed + 1000 + j)
        row = {label: mean(psnrs(predict(net, items, ctx.device), items)) for label, net in nets.items()}
        row["input"] = mean(psnrs([it.noisy for it in items], items))
        table[f"{100 * p:.0f} %"] = row
        ctx.stats.add(run="level sweep", kind="levels", p=p, psnr=row)
    relative = "clean targets" in nets
    for label in nets:
        if label != "clean targets" or not relative:
            result.levels[label.replace("noisy targets ", "").strip("()")] = [
                (p, row[label] - (row["clean targets"] if relative else 0.0))
                for p, row in zip(P.impulse_eval_levels, table.values())]
    result.levels_ylabel = "PSNR relative to clean targets (dB)" if relative else "PSNR (dB)"
    labels = list(nets) + ["input"]
    lines = ["## PSNR against the corruption level (Figure 5's question, blind networks)", "",
             "The networks above, trained on p in [0, 0.95], evaluated at each corruption level p (all images of "
             "all eval sets pooled). The paper's Figure 5 trains one network per level instead (`n2n-experiment "
             "impulse-levels`).", "",
             "| corrupted pixels | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.2f}" for k in labels) + " |")
    lines += ["", "Paper (Figure 5, relative to clean targets): L1 holds up to ~50 % corrupted pixels and then "
              "biases dark and bright areas towards grey; L0 stays close to clean targets even at 90 %."]
    result.appendix.append("\n".join(lines))


def impulse_levels(ctx: Context) -> Result:
    """Figure 5: one network per corruption level p (input and targets at p) and per loss; PSNR relative to a
    clean-target network at the same level."""
    c, P = CORRUPTIONS["impulse"], ctx.preset
    train, sets = ImageFolder(ctx.train_dir, P.crop), _eval_sets(ctx)
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("L0", "noisy", "l0"), RunSpec("L1", "noisy", "l1")]
    columns, curves, levels, rows, grid = {}, {}, {"L0": [], "L1": []}, [], []
    for j, p in enumerate(P.impulse_levels):
        row = f"p={p:.2f}"
        rows.append(row)
        items = make_eval_items(sets, _corrupt_eval(c.apply, p, False), ctx.seed + j)
        means = {}
        for k, run in enumerate(runs):
            mb = _synthetic_batch(train, c, c.apply, run, P.batch, (p, p))
            col, curve, first = _train_column(ctx, RunSpec(f"{run.label}, {row}", run.targets, run.loss), mb, items,
                                              iters=P.levels_iters, seed_offset=100 * j + k)
            # The table's rows are levels: all images of all sets at this level, pooled.
            columns.setdefault(run.label, Column(run.label, {}, "network")).psnr[row] = [v for _, v in _pairs(col)]
            curves[col.label] = curve
            means[run.label] = mean(v for _, v in _pairs(col))
            if j == len(P.impulse_levels) - 1:
                grid.append((f"{run.label}\n{_first_psnr(first, items[0]):.2f} dB", first))
        for loss in levels:
            levels[loss].append((p, means[loss] - means["clean targets"]))
        icol = _input_column(items)
        columns.setdefault("input", Column("input", {}, "input")).psnr[row] = [v for _, v in _pairs(icol)]
        if j == len(P.impulse_levels) - 1:
            grid = [(f"input\n{_first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)] + grid + \
                   [("ground truth", items[0].clean)]
    return Result("impulse-levels", "Impulse noise: noisy vs clean targets per corruption level (Figure 5)", rows,
                  list(columns.values()), average_row=False, curves=curves, curve_set=sets[0][0], grid=grid,
                  grid_name=f"p={P.impulse_levels[-1]:.2f}, {sets[0][0]}/{sets[0][1][0][0]}", levels=levels,
                  notes=["Rows are corruption levels; cells pool the images of every eval set.",
                         "Paper (Figure 5): L1 holds up to ~50 % corruption then biases towards grey; L0 stays "
                         "close to clean targets even at 90 %.",
                         "--targets does not apply: the figure needs both."])


# ---------------------------------------------------------------------------------------------------------
# Section 3.4

def mri(ctx: Context) -> Result:
    """Noisy targets (a second, independent undersampling of the same slice) vs clean targets (the full slice),
    L2 after replacing the input's known frequencies; evaluated with the same replacement."""
    P = ctx.preset
    size = P.mri_size
    train, val = mri_mod.load_mri_sets([ctx.train_dir], ctx.eval_dirs, size)
    if P.mri_eval_slices is not None and len(val) > P.mri_eval_slices:
        val = val[torch.linspace(0, len(val) - 1, P.mri_eval_slices).round().long()]
    ctx.log(f"MRI: {len(train)} training slices, {len(val)} validation slices, {size}x{size}")
    sampler = mri_mod.KSpaceSampler(size, size)

    def corrupt(img, gen):
        image, measured, keep = sampler(img, gen)
        return image, {"measured": measured, "keep": keep}

    items = make_eval_items([("mri-val", [(f"slice{i:03d}", s) for i, s in enumerate(val)])], corrupt, ctx.seed)

    def post(y, it):
        return mri_mod.spectral_replace(y, it.extra["measured"][None].to(y.device), it.extra["keep"][None].to(y.device))

    def mri_loss(pred, target, measured, keep):
        # (F^-1(R_x(F(f(x)))) - y)^2: the network's output with the input's known frequencies put back.
        return l2(mri_mod.spectral_replace(pred + SHIFT, measured, keep) - SHIFT, target)

    shift = size // 4

    def batch_for(run):
        def make_batch(gen):
            idx = torch.randint(len(train), (P.batch,), generator=gen)
            # Random circular shifts (the reference code's translation augment): the FFT is periodic anyway.
            dy, dx = torch.randint(-shift, shift + 1, (2,), generator=gen).tolist()
            clean = torch.roll(train[idx], shifts=(dy, dx), dims=(-2, -1))
            inp, measured, keep = sampler(clean, gen)
            tgt = sampler(clean, gen)[0] if run.targets == "noisy" else clean
            return inp, tgt, {"measured": measured, "keep": keep}
        return make_batch

    runs = [r for r in (RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets", "noisy", "l2"))
            if ctx.wants(r.targets)]
    columns, curves, outs = [], {}, {}
    for k, run in enumerate(runs):
        # Every validation slice on the curve: slices are small, unlike whole photos.
        col, curve, first = _train_column(ctx, run, batch_for(run), items, channels=1, iters=P.mri_iters, post=post,
                                          loss_fn=mri_loss, seed_offset=k, curve_images=None)
        columns.append(col)
        curves[run.label] = curve
        outs[run.label] = first
    zf, zf_first = _baseline_column(ctx, "zero-filled IFFT", lambda it: mri_mod.zero_filled(it.extra["measured"]),
                                    items, limit=False)
    icol = _input_column(items, "input (IFFT, 1/p)")
    grid = [(f"input\n{_first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)]
    for label in sorted(outs, key=lambda s: s.startswith("clean")):
        grid.append((f"{label}\n{_first_psnr(outs[label], items[0]):.2f} dB", outs[label]))
    grid += [(f"zero-filled IFFT\n{_first_psnr(zf_first, items[0]):.2f} dB", zf_first), ("ground truth", items[0].clean)]
    return Result("mri", f"MRI reconstruction from 10 % k-space samples ({size}x{size})", ["mri-val"],
                  columns + [zf, icol], curves=curves,
                  curve_refs={"input": icol.row_mean("mri-val"), "zero-filled IFFT": zf.row_mean("mri-val")},
                  curve_set="mri-val", grid=grid, grid_name=f"mri-val/{items[0].name}",
                  paper={"IXI T1 validation": {"clean targets": 31.77, "noisy targets": 31.74,
                                               "input (IFFT, 1/p)": 20.03}},
                  paper_source="Section 3.4, IXI T1, 5000 training slices of 50 subjects",
                  notes=[f"p(k) = exp(-lambda |k|), lambda = {sampler.lam:.4f} keeps 10 % of the frequencies; kept "
                         "values are divided by p, the input is their inverse FFT.",
                         "Network outputs are evaluated after replacing the input's known frequencies.",
                         "Zero-filled IFFT: the measured frequencies without 1/p weighting.",
                         f"Evaluated on {len(val)} whole {size}x{size} slices of the held-out slab."])


EXPERIMENTS: dict[str, Callable[[Context], Result]] = {
    "gaussian": gaussian,
    "brown-gaussian": brown_gaussian,
    "capture-budget": capture_budget,
    "poisson": poisson,
    "bernoulli": bernoulli,
    "text": text,
    "impulse": impulse,
    "impulse-levels": impulse_levels,
    "mri": mri,
}
