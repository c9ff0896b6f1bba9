"""The loop every experiment shares: batches -> the shared TrainStep -> PSNR curve; plus fixed evaluation data.

Images live in [0, 1]; the network sees and predicts them shifted to [-0.5, 0.5] (Appendix A.1), so L1, L2 and
L0 are unaffected and the output is the image minus 0.5.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from n2n_live.checkpoint import read_checkpoint, save_checkpoint
from n2n_live.errors import UserError
from n2n_live.metrics import psnr
from n2n_live.models.unet import run_padded
from n2n_live.train_step import TrainStep, rampdown_lr

Batch = tuple[torch.Tensor, torch.Tensor, dict]  # inputs, targets, extra loss arguments (all in [0, 1] space)
SHIFT = 0.5


# ---------------------------------------------------------------------------------------------------------
# Stats: one JSON object per line, appended as the run goes (a reader skips a torn last line, see
# run_folder.read_stats); rewriting the whole file on every record grew quadratically with the run.

class StatsLog:
    """`add(**record)` appends one line to `path` (None: keep nothing); a new log's first record starts the file
    afresh unless `append` (a resumed run)."""

    def __init__(self, path: Path | None, append: bool = False):
        self.path, self.records = path, int(append)  # append: a resumed run adds to its own earlier records

    def add(self, **record) -> None:
        if self.path is not None:
            with open(self.path, "a" if self.records else "w") as f:
                f.write(json.dumps(record, default=float) + "\n")
        self.records += 1


# ---------------------------------------------------------------------------------------------------------
# Batches: made on the CPU by a `make_batch(gen)` function, in-process or in worker processes.

class _BatchStream(torch.utils.data.IterableDataset):
    def __init__(self, make_batch: Callable[[torch.Generator], Batch], seed: int):
        self.make_batch, self.seed = make_batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        gen = torch.Generator().manual_seed(self.seed * 1009 + (info.id if info else 0))
        while True:
            yield self.make_batch(gen)


class Batches:
    """An endless iterator of batches whose position can be saved and restored.

    In-process (workers 0, the CPU presets) the generator's state is saved, so a resumed run sees exactly the
    batches an uninterrupted one would. With workers > 0 the batches are made in parallel processes (which keeps a
    GPU fed when corruptions such as text rendering are slow); a resumed run then reseeds them from the
    iteration it resumes at: the same distribution, not the same batches.
    """

    def __init__(self, make_batch: Callable[[torch.Generator], Batch], seed: int, workers: int = 0):
        self.make_batch, self.seed, self.workers = make_batch, seed, workers
        self.gen = torch.Generator().manual_seed(seed * 1009)  # the seed worker 0 would use
        self._loader = None

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if self.workers <= 0:
            return self.make_batch(self.gen)
        if self._loader is None:
            self._loader = iter(torch.utils.data.DataLoader(
                _BatchStream(self.make_batch, self.seed), batch_size=None, num_workers=self.workers,
                prefetch_factor=4, persistent_workers=True))
        return next(self._loader)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()} if self.workers <= 0 else {}

    def load_state_dict(self, state: dict, iteration: int) -> None:
        if self.workers <= 0 and "gen" in state:
            self.gen.set_state(state["gen"])
        else:
            self.seed = self.seed + 7919 * iteration
            self._loader = None


# ---------------------------------------------------------------------------------------------------------
# Evaluation data: every eval image is corrupted once, with a seed of its own, so that every network and
# baseline of an experiment sees the very same noisy inputs.

@dataclass
class EvalItem:
    set: str
    name: str
    clean: torch.Tensor  # (C, H, W) in [0, 1]
    noisy: torch.Tensor  # (C, H, W), what the network sees
    extra: dict = field(default_factory=dict)  # e.g. the MRI measured spectrum and keep mask


def item_seed(seed: int, set_name: str, index: int) -> int:
    return (seed * 1_000_003 + sum(ord(c) * 31**i for i, c in enumerate(set_name)) * 1009 + index) % 2**62


def make_eval_items(sets: list[tuple[str, list[tuple[str, torch.Tensor]]]],
                    corrupt: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, dict]],
                    seed: int) -> list[EvalItem]:
    """`corrupt(clean (1, C, H, W), gen) -> (noisy (1, C, H, W), extra)`."""
    items = []
    for set_name, images in sets:
        for i, (name, img) in enumerate(images):
            gen = torch.Generator().manual_seed(item_seed(seed, set_name, i))
            noisy, extra = corrupt(img[None], gen)
            items.append(EvalItem(set_name, name, img, noisy[0], {k: v[0] for k, v in extra.items()}))
    return items


def denoise(net: torch.nn.Module, noisy: torch.Tensor) -> torch.Tensor:
    """The plain inference seam for images in [0, 1]: shift, pad, network, crop back, unshift."""
    return run_padded(net, noisy - SHIFT) + SHIFT


@torch.no_grad()
def predict(net, items: list[EvalItem], device, post: Callable | None = None) -> list[torch.Tensor]:
    """Network outputs (on the CPU) for every item; `post(output, item)` is applied on the device (MRI)."""
    net.eval()
    out = []
    for it in items:
        y = denoise(net, it.noisy[None].to(device))
        if post is not None:
            y = post(y, it)
        out.append(y[0].float().cpu())
    return out


def psnrs(outputs: list[torch.Tensor], items: list[EvalItem]) -> list[float]:
    """PSNR on [0, 1]-clipped values, as the reference code (which clips to 8 bits)."""
    return [psnr(o, it.clean) for o, it in zip(outputs, items)]


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------------------
# The training loop.

@dataclass
class RunOutcome:
    net: torch.nn.Module
    curve: list[tuple[int, float]]  # (iteration, mean PSNR on the curve items)
    seconds: float
    skipped: int


def read_saved(path: Path | None) -> dict | None:
    """The checkpoint at `path`, or None when there is none or it cannot be read (the work is then redone)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return read_checkpoint(path)
    except UserError:
        return None


def _read_state(path: Path | None, iters: int) -> dict | None:
    """The training state saved at `path` for a run of `iters` iterations, or None (absent, unreadable, or saved
    by a run of another length: that one is not resumed)."""
    state = read_saved(path)
    if state is None:
        return None
    saved = state.get("train_state") or {}
    return state if saved.get("iters") == iters else None


def fit(label: str, net: torch.nn.Module, loss_fn: Callable, batches: Batches, *, iters: int, lr: float,
        rampdown: float, eval_every: int, evaluate: Callable[[torch.nn.Module], float], device,
        stats: StatsLog, loss_kw: Callable[[float], dict] | None = None, state_path: Path | None = None,
        save_every_s: float = 120.0, log: Callable[[str], None] | None = None) -> RunOutcome:
    """Train `net` for `iters` steps of the shared TrainStep; evaluate every `eval_every` steps and at the end.

    `loss_kw(progress)` adds loss arguments that follow the schedule (the annealed L0's gamma). With a
    `state_path`, the weights, the optimiser, the batch generator and the curve so far are saved there at every
    curve point and every `save_every_s` seconds, and a run that finds a state of the same length resumes from it.
    """
    step = TrainStep(net, loss_fn, lr=lr)
    curve, losses, start, spent = [], [], 0, 0.0
    saved = _read_state(state_path, iters)
    if saved is not None:
        t = saved["train_state"]
        net.load_state_dict(saved["net"])
        step.load_state_dict(t["step"])
        batches.load_state_dict(t["batches"], t["iter"])
        curve, losses, start, spent = [tuple(c) for c in t["curve"]], list(t["losses"]), t["iter"], t["seconds"]
        if log is not None:
            log(f"{label}: resuming at iteration {start} of {iters}")
    t0 = time.time() - spent

    def save_state(it_done: int) -> None:
        if state_path is not None:
            save_checkpoint(state_path, net, kind="training-state", train_state={
                "iters": iters, "iter": it_done, "step": step.state_dict(), "batches": batches.state_dict(),
                "curve": curve, "losses": losses, "seconds": time.time() - t0})

    last_save = time.time()
    bar = tqdm(range(start, iters), desc=label, file=sys.stderr, dynamic_ncols=True, mininterval=1.0, leave=False,
               initial=start, total=iters)
    for it in bar:
        # Learning rate: constant, then a smooth ramp-down to zero (Appendix A.2).
        step.set_lr(rampdown_lr(it, iters, lr, rampdown))
        # Batch: corrupted inputs and (noisy or clean) targets, made on the CPU.
        inputs, targets, kw = next(batches)
        kw = {k: v.to(device) if torch.is_tensor(v) else v for k, v in kw.items()}
        if loss_kw is not None:
            kw.update(loss_kw(it / max(iters - 1, 1)))
        # Step: forward, loss, backward, Adam (non-finite steps are skipped and counted by TrainStep).
        loss = step.step(inputs.to(device) - SHIFT, targets.to(device) - SHIFT, **kw)
        if loss is not None:
            losses.append(loss)
        # Curve point, then the state (a resumed run never repeats a curve point).
        if (it + 1) % eval_every == 0 or it + 1 == iters:
            value = evaluate(net)
            curve.append((it + 1, value))
            bar.set_postfix(loss=f"{mean(losses):.4g}", psnr=f"{value:.2f}")
            stats.add(run=label, iter=it + 1, loss=mean(losses), psnr=value, lr=step.lr,
                      seconds=round(time.time() - t0, 2), skipped=step.skipped)
            losses = []
            save_state(it + 1)
            last_save = time.time()
        elif time.time() - last_save >= save_every_s:
            save_state(it + 1)
            last_save = time.time()
    bar.close()
    return RunOutcome(net, curve, time.time() - t0, step.skipped)
