"""Sharing a CPU between the display and the trainer: thread counts for Dr.Jit and torch.

On a CPU the main thread renders (Dr.Jit's LLVM thread pool), denoises (torch) and draws (Mesa llvmpipe also uses
the CPU), while the trainer thread runs U-Net steps (torch). torch's intra-op thread count is per calling thread:
the display keeps every core for its short bursts (render, then inference: the frame rate is the target), and the
trainer, which runs all the time, gets all cores but one (at least one), so that it never takes the display's last
core. Dr.Jit keeps all cores.
On a CPU shared with other jobs a process's share follows its number of runnable threads, so fewer threads for
the display is not free there (docs/benchmarks.md, "Torch thread split").

Inference runs every live frame: the shown image must be the current view (a moving camera or a converging still
one); its cost counts in the frame time that the auto render size (size_policy.py) holds at the target. On a GPU the
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
    if loop.device.type != "cpu":
        return None
    n = cores()
    display = torch.get_num_threads()  # this (main) thread: render bursts and inference keep torch's default
    train = max(1, n - 1)
    for t in loop.trainers:
        if t.running:  # (sync mode: the trainer steps in this thread)
            t.set_threads(train)
    try:
        import drjit as dr

        dr.set_thread_count(n)
    except (ImportError, AttributeError):
        pass
    return f"{n} CPU cores: torch {display} thread(s) for display, {train} for training; Dr.Jit {n}"
