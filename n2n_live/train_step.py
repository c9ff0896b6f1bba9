"""The one training step of the project: the live trainer, the batch trainer and every experiment call it.

Adam with the paper's settings (beta1 0.9, beta2 0.99, eps 1e-8). A step whose loss or gradient is not finite
(a NaN/Inf sample that slipped through, an overflow) is skipped and counted, so the weights never become
non-finite. With `spike_clip`, a step whose gradient norm exceeds that multiple of its running mean is scaled
down to it (the live trainer's raw 8-spp targets carry fireflies, and one unclipped spike inflates Adam's second
moment so much that learning stalls for hundreds of steps).
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from .models.unet import run_padded

LR_MC = 3e-4  # Monte Carlo denoising: "better stability" (Appendix A.2)
SPIKE_EMA = 0.1  # weight of the newest (clipped) gradient norm in the running mean spike_clip compares with


def rampdown_lr(step: int, total: int, base_lr: float, rampdown_fraction: float = 0.1) -> float:
    """Constant learning rate, then a smooth (half-cosine) ramp-down to zero over the last fraction."""
    if total <= 0 or rampdown_fraction <= 0:
        return base_lr
    start = total * (1.0 - rampdown_fraction)
    if step < start:
        return base_lr
    phase = min((step - start) / (total - start), 1.0)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * phase))


class TrainStep:
    """Owns the optimiser of `net`; `step` runs forward, loss, backward and update on one minibatch."""

    def __init__(
        self,
        net: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        lr: float = LR_MC,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        amp: bool = False,
        spike_clip: float | None = None,
    ):
        self.net = net
        self.loss_fn = loss_fn
        self.opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas, eps=eps)
        self.amp = amp
        self.steps = 0  # applied updates
        self.skipped = 0  # steps dropped because something was not finite
        self.spike_clip = spike_clip
        self.grad_mean: float | None = None  # running mean of the applied gradient norms (spike_clip)
        self.clipped = 0  # steps scaled down by spike_clip

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, **loss_kw) -> float | None:
        """One update on NCHW `inputs` -> `targets`. Returns the loss, or None if the step was skipped."""
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        device_type = inputs.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.amp):
            pred = run_padded(self.net, inputs)
        loss = self.loss_fn(pred.float(), targets, **loss_kw)
        loss.backward()
        # One host sync for both checks: the loss for reporting and the gradient norm for safety.
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), float("inf"))
        loss_value, grad_value = torch.stack([loss.detach().float(), grad_norm.float()]).tolist()
        if not (math.isfinite(loss_value) and math.isfinite(grad_value)):
            self.opt.zero_grad(set_to_none=True)
            self.skipped += 1
            return None
        if self.spike_clip is not None:
            self._clip_spike(grad_value)
        self.opt.step()
        self.steps += 1
        return loss_value

    def _clip_spike(self, norm: float) -> None:
        mean = self.grad_mean
        if mean is not None and norm > self.spike_clip * mean:
            cap = self.spike_clip * mean
            for p in self.net.parameters():
                if p.grad is not None:
                    p.grad.mul_(cap / norm)
            norm, self.clipped = cap, self.clipped + 1
        self.grad_mean = norm if mean is None else (1.0 - SPIKE_EMA) * mean + SPIKE_EMA * norm

    def state_dict(self) -> dict:
        """The optimiser's state and the step counters: what a checkpoint needs besides the network's weights
        (which `checkpoint.save_checkpoint` stores itself)."""
        return {"opt": self.opt.state_dict(), "steps": self.steps, "skipped": self.skipped,
                "grad_mean": self.grad_mean, "clipped": self.clipped}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`'s optimiser state and counters (missing entries keep their fresh values)."""
        if "opt" in state:
            self.opt.load_state_dict(state["opt"])
        self.steps = int(state.get("steps", self.steps))
        self.skipped = int(state.get("skipped", self.skipped))
        self.clipped = int(state.get("clipped", self.clipped))
        if state.get("grad_mean") is not None:
            self.grad_mean = float(state["grad_mean"])


class WeightAverage:
    """A running average of a network's weights (Polyak averaging), what the live trainer publishes: one step on a
    firefly-ridden 8-spp target then moves the published network by (1 - decay) of the step. The decay ramps up
    from 0 over the first `ramp` updates, so that the first seconds, when every step helps, do not lag; decay None:
    the last step's weights. `update(net)` folds the current weights in and returns a private copy of the average;
    `network(net)` is a copy of `net` holding it; `restart()` makes the next update start afresh (a reset, a load)."""

    def __init__(self, decay: float | None, ramp: int = 0):
        self.decay, self.ramp = decay, int(ramp)
        self.state: dict | None = None
        self.updates = 0

    def restart(self) -> None:
        self.state, self.updates = None, 0

    def update(self, net: nn.Module) -> dict:
        with torch.no_grad():
            weights = net.state_dict()
            if self.decay is None or self.state is None:
                self.state = {k: v.detach().clone() for k, v in weights.items()}
            else:
                decay = min(self.decay, self.updates / self.ramp) if self.ramp > 0 else self.decay
                for k, v in weights.items():
                    if v.is_floating_point():
                        self.state[k].lerp_(v.detach(), 1.0 - decay)
                    else:
                        self.state[k].copy_(v)
            self.updates += 1
            return {k: v.clone() for k, v in self.state.items()}

    def network(self, net: nn.Module) -> nn.Module:
        out = copy.deepcopy(net)
        if self.state is not None:
            out.load_state_dict(self.state)
        return out
