"""Online Noise2Noise training: a background thread fits the U-Net to the newest pair of noisy frames.

    submit(pair)  (render thread, non-blocking)  ->  one-slot mailbox, newest wins
    trainer thread: take the newest pair -> iters_per_frame x (batch.py: one direction on a random crop,
                    TrainStep.step) -> publish weights
    weights()     (any thread)  ->  (version, state_dict snapshot), taken under a short lock

Steps alternate the two directions on random crops: noisy A -> noisy B, then B -> A (Noise2Noise: no clean image).
The alternation runs across frames, so an odd `iters_per_frame` (or one iteration per frame) still trains both
directions equally. With `target="clean"` the targets are the reference instead (A -> ref, B -> ref): the same
inputs, only the target differs, which is the paper's clean-target comparison.
The loss is L_HDR on linear outputs with tonemapped inputs (features.assemble). NaN/Inf samples are replaced and
counted; a step whose loss or gradient is still not finite is skipped (TrainStep), so the weights stay finite.
What is published is a running average of the weights (WeightAverage, config.weight_average).

Locks are held only to swap references (mailbox, published weights, requests), never during a step, so the
render/display thread never waits on training. `reset()` and `load()` are requests that the thread applies
between two steps. `save()` is the one call that may wait for the step in flight (to copy a consistent optimiser
state); the viewer calls it on a user action only.
"""
from __future__ import annotations

import collections
import random
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .. import features, models
from ..checkpoint import network_from, read_checkpoint, save_checkpoint
from ..losses import l_hdr
from ..train_step import TrainStep, WeightAverage
from .batch import frame_tensors, training_batch
from .config import WEIGHT_AVERAGE_RAMP, spike_clip, weight_average

BETAS = (0.9, 0.99)
LOSS_HISTORY = 10000  # steps of loss history kept for plots


@dataclass(frozen=True)
class _Sample:
    """One submitted frame, copied onto the trainer's device: the renderer can overwrite its buffers freely."""

    frame: int
    colour_a: torch.Tensor  # HWC linear
    colour_b: torch.Tensor
    albedo: torch.Tensor
    normal: torch.Tensor
    reference: torch.Tensor | None
    ready: object = None  # CUDA event recorded after the copies (None on CPU)
    history: torch.Tensor | None = None  # frames accumulated per pixel (temporal.py), None for a plain pair
    raw: tuple | None = None  # this frame's own (A, B) beside the histories (temporal.py), None for a plain pair
    emission: torch.Tensor | None = None  # each stream's directly seen emission (2, H, W, 3), when rendered


def _copy(t, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(t).detach().to(device=device, dtype=torch.float32, copy=True)


class OnlineTrainer:
    """Background Noise2Noise trainer of `net` (see the module docstring).

    `cfg` supplies lr, iters_per_frame, crop, seed and exposure (a LiveConfig or anything with those
    attributes). `target` is "noisy" (Noise2Noise) or "clean" (reference targets; `submit(pair, reference)`).
    """

    def __init__(self, net, cfg, device="cpu", target: str = "noisy", name: str = "trainer"):
        if target not in ("noisy", "clean"):
            raise ValueError(f"target must be 'noisy' or 'clean', got {target!r}")
        self.device = torch.device(device)
        self.net = net.to(self.device, memory_format=torch.channels_last)
        self.target = target
        self.name = name
        self.exposure = float(getattr(cfg, "exposure", 1.0))
        self.temporal_target = getattr(cfg, "temporal_target", "history")
        self.iters_per_frame = int(cfg.iters_per_frame)
        """Iterations per submitted frame; may be changed at run time (read when a frame starts)."""
        self.crop = int(cfg.crop)
        """Crop side; may be changed at run time (read every step, clamped to the frame)."""
        self._lr = float(cfg.lr)
        self._spike_clip = spike_clip(cfg)
        self._average = WeightAverage(weight_average(cfg), WEIGHT_AVERAGE_RAMP)  # what is published
        self._seed = int(getattr(cfg, "seed", 0))
        self._rng = random.Random(self._seed)
        self._step = self._new_step()
        # Steps alternate A->B and B->A, one image each: as good as a minibatch of both directions, for less compute
        self._direction = 0  # 0: A->B, 1: B->A; flips every step, across frames

        self._cond = threading.Condition()  # guards the mailbox, flags and requests below
        self._pending: _Sample | None = None
        self._frame = None  # frame_tensors of the frame in training (batch.py)
        self._left = 0  # iterations left on the current frame
        self._paused = False
        self._stop = False
        self._busy = False  # a step is running outside the lock
        self._requests: list = []  # callables applied by the thread between steps
        self._thread: threading.Thread | None = None
        self._step_lock = threading.Lock()  # held by whoever runs a step; save() takes it for a consistent copy

        self._pub_lock = threading.Lock()
        self._published: tuple[int, dict, object] = (-1, {}, None)

        self._stats_lock = threading.Lock()
        self._frame_losses: list[float] = []
        self._frame_t0 = 0.0
        self._frame_ms = 0.0
        self._s = dict(steps=0, skipped=0, clipped=0, sanitized_frames=0, nonfinite_values=0, last_loss=float("nan"),
                       frame_loss=float("nan"), train_ms=float("nan"), frames_trained=0, frames_submitted=0,
                       frames_dropped=0, last_frame=-1)
        self._loss_history: collections.deque = collections.deque(maxlen=LOSS_HISTORY)
        self._publish()

    # ---------------------------------------------------------------- submission (render thread)
    def submit(self, pair, reference=None) -> None:
        """Hand the newest frame to the trainer; returns at once. A frame not yet started is replaced (newest wins).

        The tensors are copied here, so the caller may reuse or overwrite its buffers afterwards.
        """
        sample = self._make_sample(pair, reference)
        with self._cond:
            if self._pending is not None:
                self._s["frames_dropped"] += 1
            self._pending = sample
            self._s["frames_submitted"] += 1
            self._cond.notify_all()

    def _make_sample(self, pair, reference) -> _Sample:
        if self.target == "clean" and reference is None:
            raise ValueError(f"{self.name}: a clean-target trainer needs the frame's reference image")
        with torch.no_grad():
            own = lambda t: None if t is None else _copy(t, self.device)  # noqa: E731
            tensors = [own(t) for t in (pair.noisy_a, pair.noisy_b, pair.albedo, pair.normal, reference)]
            raw = getattr(pair, "raw", None)
            raw = (own(raw.noisy_a), own(raw.noisy_b)) if raw is not None else None
            history, emission = own(getattr(pair, "history", None)), own(features.stream_emission(pair))
        ready = None
        if self.device.type == "cuda":
            # The copies run on the caller's stream; the trainer's stream waits for this event before reading.
            ready = torch.cuda.Event()
            ready.record()
        return _Sample(int(getattr(pair, "frame", -1)), *tensors, ready, history, raw, emission)

    # ---------------------------------------------------------------- published weights (any thread)
    def weights(self) -> tuple[int, dict]:
        """(version, state_dict snapshot). The snapshot is never modified after publication: treat it as read-only."""
        with self._pub_lock:
            version, state, ready = self._published
        if ready is not None:
            torch.cuda.current_stream(self.device).wait_event(ready)
        return version, state

    @property
    def version(self) -> int:
        return self._published[0]

    def _publish(self) -> None:
        state = self._average.update(self.net)
        ready = None
        if self.device.type == "cuda":
            ready = torch.cuda.Event()
            ready.record()
        with self._pub_lock:
            self._published = (self._published[0] + 1, state, ready)

    # ---------------------------------------------------------------- controls
    def start(self) -> "OnlineTrainer":
        if self._thread is not None and self._thread.is_alive():
            return self
        with self._cond:
            self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"n2n-{self.name}", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the thread to end after the step in flight, without waiting."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end after the step in flight; returns within `timeout` (True if it ended)."""
        self.request_stop()
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def lr(self) -> float:
        return self._lr

    def set_lr(self, lr: float) -> None:
        """Takes effect at the next step."""
        self._lr = float(lr)
        self._request(lambda: self._step.set_lr(self._lr))

    def set_threads(self, n: int) -> None:
        """torch's intra-op threads for this trainer's steps (torch.set_num_threads is per thread): applied by the
        trainer thread between two steps, so that a viewer can share the cores between display and training."""
        self._request(lambda: torch.set_num_threads(max(1, int(n))))

    def reset(self) -> None:
        """A freshly initialised network and optimiser (applied between two steps); publishes a new version."""
        self._request(self._apply_reset)

    def load(self, path) -> None:
        """Start from the checkpoint at `path` (applied between two steps). A bad file raises UserError here."""
        state = read_checkpoint(path)
        network_from(state, path, expect=models.spec(self.net))  # checked here, so the error reaches the caller
        self._request(lambda: self._apply_load(state))

    def save(self, path, meta: dict | None = None) -> None:
        """Write a checkpoint (the published network, optimiser state, counters); may wait for the step in flight."""
        with self._step_lock:
            train_state = {**self._step.state_dict(), "target": self.target}
            save_checkpoint(path, self._average.network(self.net), kind="mc", train_state=train_state, meta=meta)

    def _request(self, fn) -> None:
        with self._cond:
            if not self.running:
                fn()
                return
            self._requests.append(fn)
            self._cond.notify_all()

    def _new_step(self) -> TrainStep:
        """A fresh optimiser for `net` at the current learning rate."""
        return TrainStep(self.net, l_hdr, lr=self._lr, betas=BETAS, spike_clip=self._spike_clip)

    def _apply_reset(self) -> None:
        self.net.load_state_dict(models.rebuild(self.net).state_dict())
        self._step = self._new_step()
        self._rng = random.Random(self._seed)
        self._direction = 0
        with self._stats_lock:
            self._s.update(steps=0, skipped=0, clipped=0, last_loss=float("nan"), frame_loss=float("nan"))
            self._loss_history.clear()
        self._average.restart()
        self._publish()

    def _apply_load(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self._step = self._new_step()
        ts = state.get("train_state") or {}
        if isinstance(ts, dict) and "opt" in ts:
            try:
                self._step.load_state_dict(ts)
                self._step.set_lr(self._lr)
            except (ValueError, KeyError, RuntimeError):
                self._step = self._new_step()  # another setup's optimiser: start afresh
        self._average.restart()
        self._publish()

    # ---------------------------------------------------------------- stats
    @property
    def stats(self) -> dict:
        """Snapshot: steps, skipped (non-finite steps dropped), clipped (gradient spikes scaled down),
        sanitized_frames / nonfinite_values (NaN/Inf replaced), last_loss, frame_loss (mean over the last trained
        frame), train_ms, frames_trained/submitted/dropped, last_frame, version, lr, paused, loss_history."""
        with self._stats_lock:
            s = dict(self._s)
            s["loss_history"] = list(self._loss_history)
        s.update(version=self.version, lr=self._lr, paused=self._paused, iters_per_frame=self.iters_per_frame,
                 crop=self.crop)
        return s

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the trainer has no step running and no frame in flight or waiting (or is paused/stopped with
        no step running). True if idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.running and (self._busy or not self._paused and not self._stop and (
                    self._pending is not None or self._left > 0 or self._requests)):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # ---------------------------------------------------------------- training
    def train_now(self, pair, reference=None) -> dict:
        """Sync mode: run this frame's iterations in the caller's thread; returns `stats`."""
        if self.running:
            raise RuntimeError("train_now() while the background thread runs; use submit()")
        with self._cond:
            requests, self._requests = self._requests, []
        for fn in requests:
            fn()
        self._begin_frame(self._make_sample(pair, reference))
        while self._left > 0 and not self._paused:
            self._one_step()
        return self.stats

    def _run(self) -> None:
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            while True:
                with self._cond:
                    while True:
                        if self._stop:
                            return
                        if self._requests:
                            break
                        if not self._paused and (self._left > 0 or self._pending is not None):
                            break
                        self._cond.notify_all()  # wake wait_idle()
                        self._cond.wait(0.5)
                    requests, self._requests = self._requests, []
                    start = None
                    if not requests and self._left <= 0:
                        start, self._pending = self._pending, None
                    self._busy = True
                try:
                    for fn in requests:
                        fn()
                    if requests:
                        continue
                    if start is not None:
                        self._begin_frame(start)
                    self._one_step()
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()

    def _begin_frame(self, sample: _Sample) -> None:
        if sample.ready is not None:
            torch.cuda.current_stream(self.device).wait_event(sample.ready)
        with torch.no_grad():
            raw = (sample.colour_a, sample.colour_b, sample.albedo, sample.normal) + (
                (sample.reference,) if sample.reference is not None else ())
            bad = sum(int((~torch.isfinite(t)).sum()) for t in raw)  # one host sync per frame
        self._frame = frame_tensors(
            self.net, sample.colour_a, sample.colour_b, sample.albedo, sample.normal, self.exposure, sample.history,
            sample.reference if self.target == "clean" else None, sample.raw, self.temporal_target, sample.emission)
        self._left = self.iters_per_frame
        self._frame_losses = []
        self._frame_ms = 0.0
        with self._stats_lock:
            if bad:
                self._s["sanitized_frames"] += 1
                self._s["nonfinite_values"] += bad
            self._s["last_frame"] = sample.frame
        if self._left <= 0:
            self._end_frame()

    def _one_step(self) -> None:
        inputs, targets = training_batch(self._frame, self._direction, self.crop, self._rng)
        t0 = time.perf_counter()
        with self._step_lock:
            loss = self._step.step(inputs, targets)
            self._direction ^= 1
            if loss is not None:
                self._publish()
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # honest timing; the loss already synced
        self._frame_ms += (time.perf_counter() - t0) * 1000.0
        self._left -= 1
        with self._stats_lock:
            self._s["steps"] = self._step.steps
            self._s["skipped"] = self._step.skipped
            self._s["clipped"] = self._step.clipped
            if loss is not None:
                self._s["last_loss"] = loss
                self._frame_losses.append(loss)
                self._loss_history.append((self._step.steps, loss))
        if self._left <= 0:
            self._end_frame()

    def _end_frame(self) -> None:
        with self._stats_lock:
            self._s["frames_trained"] += 1
            self._s["train_ms"] = self._frame_ms
            fl = self._frame_losses
            self._s["frame_loss"] = sum(fl) / len(fl) if fl else float("nan")


__all__ = ["OnlineTrainer"]
