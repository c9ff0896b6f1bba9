"""Shared test settings: one torch thread, and polling with a deadline instead of fixed sleeps."""
from __future__ import annotations

import time

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op thread for every in-process test. The tests run tiny tensors, where torch's thread pool costs
    more than it gains, and on shared, busy cores OpenMP teams spin-wait and a step gets ~10x slower (measured:
    the synthetic learning test took 65 s with two threads on the loaded 2-core machine, 5 s unloaded; the toy
    regression 4 s with one thread, 29 s with two under load). Subprocesses keep torch's own choice."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def wait_for(pred, timeout: float = 120.0, interval: float = 0.01) -> bool:
    """Poll `pred` until it is true (True) or the generous deadline passes (False): a loaded machine is slow,
    never wrong, so tests wait for events instead of sleeping a fixed time."""
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)
