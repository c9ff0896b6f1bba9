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
from typing import Callable

import torch

from n2n_live.losses import l2

from . import baselines, mri as mri_mod
from .columns import (Context, RunSpec, baseline_column, corrupt_eval, eval_sets, first_psnr, input_column,
                      noise_experiment, pairs, synthetic_batch, train_column)
from .corruptions import CORRUPTIONS, gaussian as gaussian_noise
from .datasets import ImageFolder
from .report import Column, Result
from .training import SHIFT, make_eval_items, mean, predict, psnrs


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
    return noise_experiment(ctx, "gaussian", "Additive white Gaussian noise (sigma = 25)", CORRUPTIONS["gaussian"],
                             runs, baseline=bm3d, paper=paper,
                             paper_source="Table 1, RED30 network; the paper's U-Net is ~0.2 dB lower",
                             notes=["Training sigma is drawn per example in [0, 50] (blind denoising)."])


def brown_gaussian(ctx: Context) -> Result:
    """Figure 1b: the same experiment per blur bandwidth; stronger correlation converges more slowly."""
    c = CORRUPTIONS["brown_gaussian"]
    P = ctx.preset
    train, sets = ImageFolder(ctx.train_dir, P.crop), eval_sets(ctx)
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets", "noisy", "l2")]
    merged: Result | None = None
    for b in P.brown_bandwidths:
        r = noise_experiment(ctx, "brown-gaussian", "", c, runs, apply=functools.partial(c.apply, bandwidth=b),
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
    sets = eval_sets(ctx)
    items = make_eval_items(sets, corrupt_eval(gaussian_noise, 25.0, False), ctx.seed)

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
        col, curve, first = train_column(ctx, RunSpec(label, "noisy", "l2"), batch_of(pair), items, seed_offset=k)
        columns.append(col)
        curves[label] = curve
        grid.append((f"{label.split(':')[0]}\n{first_psnr(first, items[0]):.2f} dB", first))
    icol = input_column(items)
    columns.append(icol)
    grid[0] = (f"input\n{first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)
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
    return noise_experiment(ctx, "poisson", "Poisson noise (lambda = 30)", c, runs, baseline=ansc, paper=paper,
                             paper_source="Table 1",
                             notes=["Training lambda is drawn per example in [0, 50]; y = Poisson(lambda x)/lambda.",
                                    "Anscombe+BM3D uses the closed-form unbiased inverse of Makitalo & Foi (2011)."])


def bernoulli(ctx: Context) -> Result:
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("noisy targets", "noisy", "masked_l2")]
    paper = _table1((33.01, 33.17, 30.78), (31.04, 31.16, 28.97), (31.51, 31.72, 30.67), (31.85, 32.02, 30.14),
                    ("clean targets", "noisy targets", "DIP"))
    return noise_experiment(ctx, "bernoulli", "Multiplicative Bernoulli noise (p = 0.5)", CORRUPTIONS["bernoulli"],
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
    return noise_experiment(ctx, "text", "Text removal (p = 0.25)", CORRUPTIONS["text"], runs, baseline=med,
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
    sets, nets = eval_sets(ctx), {}
    result = noise_experiment(ctx, "impulse", "Random-valued impulse noise (p = 0.7)", c, runs, baseline=med,
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
        items = make_eval_items(sets, corrupt_eval(c.apply, p, False), ctx.seed + 1000 + j)
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
    train, sets = ImageFolder(ctx.train_dir, P.crop), eval_sets(ctx)
    runs = [RunSpec("clean targets", "clean", "l2"), RunSpec("L0", "noisy", "l0"), RunSpec("L1", "noisy", "l1")]
    columns, curves, levels, rows, grid = {}, {}, {"L0": [], "L1": []}, [], []
    for j, p in enumerate(P.impulse_levels):
        row = f"p={p:.2f}"
        rows.append(row)
        items = make_eval_items(sets, corrupt_eval(c.apply, p, False), ctx.seed + j)
        means = {}
        for k, run in enumerate(runs):
            mb = synthetic_batch(train, c, c.apply, run, P.batch, (p, p))
            col, curve, first = train_column(ctx, RunSpec(f"{run.label}, {row}", run.targets, run.loss), mb, items,
                                              iters=P.levels_iters, seed_offset=100 * j + k)
            # The table's rows are levels: all images of all sets at this level, pooled.
            columns.setdefault(run.label, Column(run.label, {}, "network")).psnr[row] = [v for _, v in pairs(col)]
            curves[col.label] = curve
            means[run.label] = mean(v for _, v in pairs(col))
            if j == len(P.impulse_levels) - 1:
                grid.append((f"{run.label}\n{first_psnr(first, items[0]):.2f} dB", first))
        for loss in levels:
            levels[loss].append((p, means[loss] - means["clean targets"]))
        icol = input_column(items)
        columns.setdefault("input", Column("input", {}, "input")).psnr[row] = [v for _, v in pairs(icol)]
        if j == len(P.impulse_levels) - 1:
            grid = [(f"input\n{first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)] + grid + \
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
        col, curve, first = train_column(ctx, run, batch_for(run), items, channels=1, iters=P.mri_iters, post=post,
                                          loss_fn=mri_loss, seed_offset=k, curve_images=None)
        columns.append(col)
        curves[run.label] = curve
        outs[run.label] = first
    zf, zf_first = baseline_column(ctx, "zero-filled IFFT", lambda it: mri_mod.zero_filled(it.extra["measured"]),
                                    items, limit=False)
    icol = input_column(items, "input (IFFT, 1/p)")
    grid = [(f"input\n{first_psnr(items[0].noisy, items[0]):.2f} dB", items[0].noisy)]
    for label in sorted(outs, key=lambda s: s.startswith("clean")):
        grid.append((f"{label}\n{first_psnr(outs[label], items[0]):.2f} dB", outs[label]))
    grid += [(f"zero-filled IFFT\n{first_psnr(zf_first, items[0]):.2f} dB", zf_first), ("ground truth", items[0].clean)]
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
