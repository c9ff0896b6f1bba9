"""Honest wall-clock timing of device work (the live loop, n2n-bench)."""
from __future__ import annotations

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer around it measures the work (a GPU sync point; a no-op
    on the CPU, where torch runs synchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
