"""Sharing a CPU between the display and the trainer: thread counts for Dr.Jit and torch.

On a CPU the main thread renders (Dr.Jit's LLVM thread pool), denoises (torch) and draws (Mesa llvmpipe also uses
the CPU), while the trainer thread runs U-Net steps (torch). torch's intra-op thread count is per calling thread, so
the two torch users get separate counts: half of the cores each (at least one), and Dr.Jit keeps all cores (a render
is a burst that should finish quickly; the trainer only loses the cores for its duration). Without this both torch
users default to every core, so on 2 cores 4 torch threads and Dr.Jit's 2 compete for 2 cores (an A/B of both
settings on the shared 2-core machine is in docs/benchmarks.md; under that load it was within the noise).

Inference runs every live frame: the shown image must be the current view (a moving camera or a converging still
one); its cost counts in the frame time that the dynamic resolution (autosize.py) holds at the target. On a GPU the
work runs on the device and nothing is changed here.
"""
from __future__ import annotations

import os

import torch


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def share_cores(loop) -> str | None:
    """Set the thread counts for `loop` (a LiveLoop) when it runs on the CPU; returns a line for the UI, or None."""
    if getattr(getattr(loop, "device", None), "type", "cpu") != "cpu":
        return None
    n = cores()
    display = max(1, n // 2)
    train = max(1, n - display)
    torch.set_num_threads(display)  # this (main) thread: inference
    for t in getattr(loop, "trainers", [loop.trainer]):
        if hasattr(t, "set_threads") and t.running:  # (sync mode: the trainer steps in this thread)
            t.set_threads(train)
    try:
        import drjit as dr

        dr.set_thread_count(n)
    except (ImportError, AttributeError):
        pass
    return f"{n} CPU cores: torch {display} thread(s) for display, {train} for training; Dr.Jit {n}"
