"""The distributed side of `n2n-train`: one process per device under torchrun, a single process otherwise.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; with WORLD_SIZE > 1 each process joins a process group (nccl on
CUDA, gloo on CPU). Every helper here is a no-op, or the identity, for a single process, so the trainer reads the
same either way.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from n2n_live.validate import resolve_device


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

    def gather(self, value) -> list:
        """Every process's `value`, in rank order (a list of one for a single process)."""
        if self.world == 1:
            return [value]
        gathered = [None] * self.world
        dist.all_gather_object(gathered, value)
        return gathered

    def broadcast_parameters(self, net: torch.nn.Module) -> None:
        """Rank 0's weights to every replica."""
        if self.world > 1:
            for p in net.parameters():
                dist.broadcast(p.data, src=0)

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """The module to train: a DistributedDataParallel replica of `net` under torchrun, else `net` itself."""
        if self.world == 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)


def setup(device_arg: str) -> Dist:
    """Initialise torch.distributed from torchrun's environment (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_arg, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank, device)


def teardown(ctx: Dist | None, finished: bool) -> None:
    """Leave the process group; after a finished run, only once every rank has reached the end."""
    if ctx is None or ctx.world == 1 or not dist.is_initialized():
        return
    # a DistributedDataParallel replica left in a reference cycle would otherwise be freed while the interpreter
    # shuts down, after the group is gone, and its reducer aborts the process (1 run in ~20 on a loaded 2-core VM)
    gc.collect()
    if finished:
        # a rank leaving while another still talks aborts gloo ("terminate called without an active exception")
        dist.barrier()
    dist.destroy_process_group()


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
