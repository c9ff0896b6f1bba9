"""One live frame: render a noisy pair -> hand it to the trainer -> denoise it with the latest weights -> metrics.

`LiveLoop` is shared by the headless command and the viewer. Every Mitsuba call (scene loading, rendering,
references) happens in the thread that constructs the loop and calls `step`; the trainer threads only see
copies of the rendered tensors.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch
from renderer import seeds

from .. import models
from . import oidn, warm_start
from .config import LiveConfig, model_inputs
from .denoiser import Denoiser
from ..errors import UserError
from ..evaluation.references import ReferenceStore, default_cache_dir, score_frame, should_evaluate
from ..evaluation.stability import FlickerMeter
from .temporal import TemporalAccumulator
from ..timing import sync as _sync
from .trainer import OnlineTrainer
from ..validate import resolve_device


@dataclass
class FrameResult:
    """Everything one `LiveLoop.step` produced. Images are HWC linear float32 tensors; metrics are dB or None."""

    frame: int
    camera: object
    pair: object  # renderer.tracer.FramePair
    denoised: torch.Tensor  # average of both denoised noisy images
    reference: torch.Tensor | None = None  # the converged reference, only on evaluated frames (evaluation/)
    oidn: torch.Tensor | None = None  # "OIDN, this frame": on this frame's raw pair average ('oidn' in cfg.compare)
    # "OIDN, same samples": on the average of the two temporal histories the network reads (--temporal, 'oidn'
    # compared, evaluated frames only: one more OIDN call there); None with temporal off, where it equals `oidn`
    oidn_same: torch.Tensor | None = None
    history: object = None  # --temporal: the TemporalPair (per-stream histories) trained on and denoised
    clean: torch.Tensor | None = None  # the clean-target network's output ('clean' in cfg.compare)
    render_ms: float = 0.0  # the noisy pair (both images + albedo/normal), as the renderer measured it
    train_ms: float = float("nan")  # training time of the last frame the trainer finished
    infer_ms: float = 0.0  # denoising both images with the Noise2Noise network
    loss: float = float("nan")  # mean L_HDR over the last trained frame's iterations
    # this frame's pair average (A+B)/2 vs reference: what the denoised output saw with temporal off; with it on,
    # the network read the histories (psnr_history)
    psnr_input: float | None = None
    psnr_denoised: float | None = None
    psnr_clean_target: float | None = None
    psnr_oidn: float | None = None  # OIDN, this frame
    psnr_oidn_same: float | None = None  # OIDN, same samples (the histories)
    train_steps: int = 0
    psnr_input_a: float | None = None  # noisy image A alone (8 spp): secondary, the paper's 'input'
    reference_ms: float = 0.0  # rendering the reference (0 when it came from the cache or was not needed)
    reference_floor: float | None = None  # the reference's own PSNR against the truth, estimated from its halves
    clean_target_ms: float = 0.0  # rendering the clean-target network's per-frame target
    oidn_ms: float = 0.0
    clean_ms: float = 0.0  # inference of the clean-target network
    version: int = -1  # weights version used for `denoised`
    skipped: int = 0  # non-finite training steps skipped so far
    sanitized_frames: int = 0  # frames whose NaN/Inf samples were replaced
    flicker_input: float | None = None  # stability.py: RMS of T(X_t) - T(reprojected X_t-1), tonemapped
    flicker_denoised: float | None = None
    flicker_oidn: float | None = None
    flicker_oidn_same: float | None = None  # only where two frames in a row were evaluated (oidn_same on both)
    flicker_reference: float | None = None  # the floor reprojection leaves (needs references on both frames)
    psnr_history: float | None = None  # --temporal: the pair average of the two accumulated histories


class LiveLoop:
    """render -> submit (or train_now in sync mode) -> denoise -> metrics, one call of `step` per frame.

    `render_pair(camera, frame) -> pair`, when given, is where each frame's noisy pair comes from instead of the
    loop's PathTracer (n2n-compare replays recorded frames); references and clean targets still use the tracer.
    """

    def __init__(self, cfg: LiveConfig, render_pair=None):
        from renderer.scene import load_scene
        from renderer.tracer import PathTracer
        from renderer.variant import choose_variant

        self.cfg = cfg.validate()
        self._load_scene, self._PathTracer = load_scene, PathTracer
        self.device = resolve_device(cfg.device)
        if "oidn" in cfg.compare and not oidn.available():
            raise UserError("--compare oidn needs pyoidn (pip install 'n2n-live[oidn]')")
        self.variant = choose_variant(cfg.variant)
        self.loaded = load_scene(cfg.scene, cfg.width, cfg.height)
        self.tracer = PathTracer(self.loaded, spp=cfg.spp, seed=cfg.seed)
        self._render_pair = render_pair
        self.references = self._reference_store()

        torch.manual_seed(cfg.seed)
        self.flicker = FlickerMeter(cfg.exposure)
        self._build_networks(warm=cfg.init == "warm" and not cfg.load)  # --load wins over --init
        if cfg.load:
            self.trainer.load(cfg.load)
        self.frame = 0  # frames rendered so far; drives the renderer's seeds (never reused)
        self._path_start = 0  # frame at which the current scene's fly-through began
        if not cfg.sync:
            for t in self.trainers:
                t.start()

    def _build_networks(self, warm: bool) -> None:
        """New networks, trainers and denoisers of cfg.model (+ the temporal accumulator when cfg.temporal), from the
        warm start when `warm` and it fits (else freshly initialised, with a notice on stderr)."""
        cfg = self.cfg
        net = models.build(cfg.model, **model_inputs(cfg))
        notice = warm_start.load_into(net) if warm else None
        self.warm = warm and notice is None  # the viewer says which start a switch got
        if notice:
            print(notice, file=sys.stderr, flush=True)
        self.temporal = TemporalAccumulator(filter=cfg.resample, clamp=cfg.clamp) if cfg.temporal else None
        self.denoiser = Denoiser.copy_of(net, self.device, cfg.exposure)
        self.trainer = OnlineTrainer(net, cfg, self.device, target="noisy", name="trainer")
        self.clean_trainer = self.clean_denoiser = None
        if "clean" in cfg.compare:
            clean_net = models.rebuild(net)
            clean_net.load_state_dict(net.state_dict())  # the same start as the Noise2Noise network
            self.clean_denoiser = Denoiser.copy_of(clean_net, self.device, cfg.exposure)
            self.clean_trainer = OnlineTrainer(clean_net, cfg, self.device, target="clean", name="clean-trainer")

    def set_denoiser(self, model: str, temporal: bool) -> None:
        """Switch the model and/or temporal reuse: new networks (their inputs differ; the warm start where it fits
        and cfg.init is 'warm'), trained from the next frame.
        Raises UserError for an unknown model or when the trainer does not stop in time (nothing changed then)."""
        if model not in models.MODEL_CHOICES:
            raise UserError(f"model must be one of {', '.join(models.MODEL_CHOICES)}, got {model!r}")
        if (model, bool(temporal)) == (self.cfg.model, self.cfg.temporal):
            return
        running, paused = self.trainer.running, self.trainer.paused
        if not self.close(timeout=2.0):
            raise UserError("the trainer did not stop in time: try again")
        self.cfg.model, self.cfg.temporal = model, bool(temporal)
        self._build_networks(warm=self.cfg.init == "warm")
        self.flicker.reset()
        if paused:
            self.trainer.pause()
        if running:
            for t in self.trainers:
                t.start()

    def _reference_store(self) -> ReferenceStore | None:
        cfg = self.cfg
        if cfg.reference_spp <= 0:
            return None
        cache = None if cfg.reference_cache == "off" else (cfg.reference_cache or default_cache_dir())
        return ReferenceStore(self.tracer, cfg.reference_spp, cache, cfg.exposure)

    def evaluates(self, frame: int | None = None) -> bool:
        """Whether `frame` (default: the next) is measured against a reference (cfg.eval_every)."""
        f = self.frame if frame is None else frame
        return self.references is not None and should_evaluate(f, self.cfg.eval_every)

    @property
    def trainers(self) -> list[OnlineTrainer]:
        return [t for t in (self.trainer, self.clean_trainer) if t is not None]

    def camera_at(self, frame: int | None = None):
        """The scene's fly-through camera at `frame` (default: the next frame to render)."""
        f = self.frame if frame is None else frame
        return self.loaded.path.at(f - self._path_start)

    # ------------------------------------------------------------------ one frame
    def step(self, camera=None, evaluate: bool | None = None, pair_filter=None) -> FrameResult:
        """One frame. `evaluate` forces (True) or skips (False) the reference; None follows cfg.eval_every.
        `pair_filter(pair) -> pair`, when given, sits between rendering and training: whatever it returns is
        trained on, denoised and returned (the viewer's still-camera accumulation, viewer/reference.py)."""
        cfg = self.cfg
        cam = self.camera_at() if camera is None else camera
        # render the noisy pair (+ albedo, normal); the clean-target network's per-frame target
        render = self._render_pair or self.tracer.render_pair
        raw = pair = render(cam, self.frame)
        if pair_filter is not None:
            pair = pair_filter(pair)
        if self.temporal is not None:
            # per-stream histories (A only from A's samples, B only from B's): train and denoise on them
            pair = self.temporal.update(pair, cam)
        target, clean_target_ms = None, 0.0
        if self.clean_trainer is not None:
            t0 = time.perf_counter()
            target = self.tracer.render_reference(cam, cfg.clean_target_spp,
                                                  first_seed=seeds.clean_target(cfg.clean_target_spp).start)
            clean_target_ms = (time.perf_counter() - t0) * 1000.0

        # train: in this thread (sync) or hand the pair to the trainer thread (newest wins)
        if cfg.sync:
            self.trainer.train_now(pair)
            if self.clean_trainer is not None:
                self.clean_trainer.train_now(pair, target)
        else:
            if cfg.pace:
                for t in self.trainers:
                    t.wait_idle()
            self.trainer.submit(pair)
            if self.clean_trainer is not None:
                self.clean_trainer.submit(pair, target)

        # denoise both noisy images with the latest published weights and average them
        version, state = self.trainer.weights()
        self.denoiser.update(version, state)
        t0 = time.perf_counter()
        denoised = self.denoiser.denoise_pair(pair)
        _sync(self.device)
        infer_ms = (time.perf_counter() - t0) * 1000.0

        clean, clean_ms = None, 0.0
        if self.clean_trainer is not None:
            self.clean_denoiser.update(*self.clean_trainer.weights())
            t0 = time.perf_counter()
            clean = self.clean_denoiser.denoise_pair(pair)
            _sync(self.device)
            clean_ms = (time.perf_counter() - t0) * 1000.0

        evaluated = self.references is not None and (self.evaluates() if evaluate is None else evaluate)
        oidn_img, oidn_same, oidn_ms = None, None, 0.0
        if "oidn" in cfg.compare:
            t0 = time.perf_counter()
            oidn_img = oidn.denoise_pair(raw)  # OIDN, this frame: this frame's samples only
            oidn_ms = (time.perf_counter() - t0) * 1000.0  # this frame's call only: what a user of OIDN pays
            if self.temporal is not None and evaluated:
                oidn_same = oidn.denoise_pair(pair)  # OIDN, same samples: the histories the network reads

        stats = self.trainer.stats
        r = FrameResult(
            frame=self.frame, camera=cam, pair=raw, denoised=denoised, oidn=oidn_img, oidn_same=oidn_same,
            history=pair if self.temporal is not None else None, clean=clean,
            render_ms=float(getattr(pair, "render_ms", float("nan"))), train_ms=stats["train_ms"],
            infer_ms=infer_ms, loss=stats["frame_loss"], train_steps=stats["steps"], oidn_ms=oidn_ms,
            clean_ms=clean_ms, clean_target_ms=clean_target_ms, version=version, skipped=stats["skipped"],
            sanitized_frames=stats["sanitized_frames"])
        if evaluated:
            # PSNR on tonemapped values against this camera's converged reference (evaluation/references.py)
            ref = self.references.get(cam)
            s = score_frame(raw, ref.image, cfg.exposure, denoised=denoised, clean=clean, oidn=oidn_img,
                            oidn_same=oidn_same)
            if self.temporal is not None:
                r.psnr_history = score_frame(pair, ref.image, cfg.exposure).input
            r.reference, r.reference_ms, r.reference_floor = ref.image, ref.ms, ref.noise_floor
            r.psnr_input, r.psnr_input_a, r.psnr_denoised = s.input, s.input_a, s.denoised
            r.psnr_clean_target, r.psnr_oidn, r.psnr_oidn_same = s.clean, s.oidn, s.oidn_same
        # temporal stability of each image against its own previous frame, reprojected (stability.py)
        fl = self.flicker.update(cam, getattr(raw, "position", None), raw.normal, {
            "input": 0.5 * (raw.noisy_a + raw.noisy_b), "denoised": denoised, "oidn": oidn_img,
            "oidn_same": oidn_same, "reference": r.reference})
        r.flicker_input, r.flicker_denoised = fl.get("input"), fl.get("denoised")
        r.flicker_oidn, r.flicker_reference = fl.get("oidn"), fl.get("reference")
        r.flicker_oidn_same = fl.get("oidn_same")
        self.frame += 1
        return r

    # ------------------------------------------------------------------ changes at run time
    def set_scene(self, spec: str) -> None:
        """Load another scene (name or XML path). On error (SceneError/UserError) the current scene stays.

        The networks keep their weights (online training adapts; `trainer.reset()` starts afresh)."""
        loaded = self._load_scene(spec, self.loaded.width, self.loaded.height)
        self.tracer = self._PathTracer(loaded, spp=self.cfg.spp, seed=self.cfg.seed)
        self.loaded = loaded
        self.cfg.scene = spec
        self.references = self._reference_store()
        self._path_start = self.frame
        if self.temporal is not None:
            self.temporal.reset()  # another scene: nothing to reuse
        self.flicker.reset()

    def resize(self, width: int, height: int) -> None:
        """New frame size; the network pads any size, crops are clamped to the frame."""
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise UserError(f"size must be positive, got {width}x{height}")
        if (width, height) == (self.loaded.width, self.loaded.height):
            return
        if hasattr(self.tracer, "resize"):
            self.tracer.resize(width, height)
            if getattr(self.loaded, "width", width) != width:  # the tracer did not update the scene record
                self.loaded = self._load_scene(self.cfg.scene, width, height)
                self.tracer = self._PathTracer(self.loaded, spp=self.cfg.spp, seed=self.cfg.seed)
        else:
            self.loaded = self._load_scene(self.cfg.scene, width, height)
            self.tracer = self._PathTracer(self.loaded, spp=self.cfg.spp, seed=self.cfg.seed)
        self.cfg.width, self.cfg.height = width, height
        self.references = self._reference_store()

    def set_spp(self, spp: int) -> None:
        self.cfg.spp = int(spp)
        if hasattr(self.tracer, "spp"):
            self.tracer.spp = int(spp)

    # ------------------------------------------------------------------ end
    def save(self, path, meta: dict | None = None) -> None:
        """Checkpoint of the Noise2Noise network (checkpoint.py)."""
        meta = {"scene": self.cfg.scene, "frames": self.frame, **(meta or {})}
        self.trainer.save(path, meta)  # waits for the step in flight, at most

    def close(self, timeout: float = 2.0) -> bool:
        """Stop the trainer threads; returns within `timeout` seconds (True if all ended)."""
        for t in self.trainers:  # ask all at once, then wait for all: one shared deadline
            t.request_stop()
        deadline = time.monotonic() + timeout
        ok = True
        for t in self.trainers:
            ok &= t.stop(max(0.0, deadline - time.monotonic()))
        return ok

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

