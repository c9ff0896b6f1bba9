"""The live app's one configuration: a dataclass with a docstring per field, and two presets.

The headless command and the viewer both build a `LiveConfig` (from a preset, then the user's flags) and hand
it to `LiveLoop`. Fields read by the trainer at run time (`lr`, `iters_per_frame`, `crop`) can also be changed
on the running objects (`OnlineTrainer.set_lr`, `.iters_per_frame`, `.crop`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from renderer.scene import check_spec

from .. import features
from ..errors import UserError
from ..models import MODEL_CHOICES
from ..reprojection import FILTERS
from .warm_start import INIT_CHOICES
from ..validate import MAX_SIDE, MAX_SPP, check_int, check_live, check_real, resolve_device

COMPARE_CHOICES = ("clean", "oidn")
TEMPORAL_TARGETS = ("raw", "history", "mix")
SPIKE_CLIP = 2.0  # gradient norm cap, as a multiple of its running mean (docs/design-notes.md)
WEIGHT_AVERAGE = 0.9  # per-step decay of the published weights' running average (docs/design-notes.md)
WEIGHT_AVERAGE_RAMP = 400  # steps over which that decay ramps up from 0 (50 frames at 8 iterations per frame)


@dataclass
class LiveConfig:
    scene: str = "cornell-box"
    """A bundled scene name (`scenes.names()`) or the path of a Mitsuba 3 XML file with a sensor."""

    width: int = 256
    """Frame width in pixels. Any size works: the network pads to a multiple of 32 and crops back."""

    height: int = 256
    """Frame height in pixels."""

    spp: int = 8
    """Samples per pixel of each of the two noisy images of a frame (the paper: 8)."""

    iters_per_frame: int = 8
    """Training iterations per rendered frame (the paper: 8). Iterations alternate the directions A->B and B->A,
    each on a new random crop; the alternation continues across frames, so odd counts train both equally."""

    crop: int = 256
    """Side of the random square training crop (the paper: 256); clamped to the frame size."""

    device: str = "auto"
    """Where the network trains and runs: 'auto' (CUDA when torch sees a GPU, else CPU), 'cpu', 'cuda' or 'cuda:N'
    (validate.resolve_device: a device this machine does not have is refused)."""

    seed: int = 0
    """Seeds the network initialisation, the training crops and the renderer's sample seeds."""

    lr: float = 3e-4
    """Adam learning rate, constant (the paper uses 3e-4 for Monte Carlo denoising, for stability)."""

    variant: str | None = None
    """Mitsuba variant (e.g. 'llvm_ad_rgb', 'cuda_ad_rgb', 'scalar_rgb'); None picks the fastest that works."""

    exposure: float = 1.0
    """Exposure multiplier applied before the tonemap T (network input, display, PNGs and PSNR)."""

    sync: bool = False
    """Render -> train -> denoise in one thread, one after the other: deterministic for a fixed seed (tests,
    debugging). Off: a background thread trains while the main thread renders and displays."""

    pace: bool = False
    """Asynchronous mode only: before submitting a frame, wait until the trainer has finished the previous
    frame's iterations, so every frame gets `iters_per_frame` steps as in the paper's fly-through (rendering
    still overlaps training). The headless command turns it on; the viewer leaves it off (display never waits)."""

    reference_spp: int = 0
    """Samples per pixel of the converged reference PSNR is measured against; 0 = no reference and no PSNR (the
    viewer's default: training never needs a clean image). It is rendered as two independent halves whose
    difference gives its own noise floor (evaluation/references.py), so it must be far cleaner than what it judges: the
    presets use >= 2048 spp."""

    eval_every: int = 1
    """Render the reference (and measure PSNR) only on frames whose 1-based number is a multiple of this; the last
    frame of a headless run is always evaluated. Converged references are expensive: 10 keeps them a modest share
    of a CPU run."""

    reference_cache: str | None = None
    """Folder where references are cached on disk, keyed by scene content, camera, size and spp (None: the
    default, $N2N_REFERENCE_CACHE or ~/.cache/n2n-live/references; 'off': no disk cache)."""

    clean_target_spp: int = 256
    """Samples per pixel of the per-frame reference the clean-target network trains on ('clean' in compare). It is
    rendered every frame, so it is cheaper than the evaluation reference, with seeds of its own."""

    compare: tuple[str, ...] = ()
    """Baselines computed per frame, a subset of {'clean', 'oidn'}: 'clean' trains a second network online with a
    per-frame reference of clean_target_spp as target (the paper's clean-target curve; needs reference_spp > 0 to
    be measured), 'oidn' runs Intel Open Image Denoise (pyoidn, CPU, quality 'high') on the average of the two
    noisy images."""

    frames: int = 1000
    """Frames of the headless fly-through (the paper's Figure 8 shows 1000). The viewer runs until closed."""

    out: str | None = None
    """Headless output folder (None: ./out/headless)."""

    snapshots: int = 4
    """Headless: how many evenly spaced frames (the last one included) are saved as noisy/denoised/reference PNGs."""

    load: str | None = None
    """A checkpoint (checkpoint.py) to start from instead of a freshly initialised network (over `init`)."""

    init: str = "warm"
    """How a new network starts: 'warm' = the bundled weights pre-trained offline on noisy pairs only, when they fit
    its architecture (live/warm_start.py; else fresh, with a notice); 'none' = freshly initialised from `seed`, the
    paper's from-scratch run."""

    model: str = "kernel"
    """The denoiser (n2n_live.models): 'kernel' = a small U-Net predicting per-pixel kernels applied a-trous to the
    linear noisy colour (the default: it won n2n-compare, docs/benchmarks.md); 'paper' = the Table 2 U-Net with
    direct colour output, the paper's model (use it to reproduce the paper)."""

    temporal: bool = True
    """Accumulate each noisy stream over frames in its own reprojected history (n2n_live.live.temporal) and train and
    denoise on the histories; the network gets the history length as a 10th input channel. On by default (with the
    kernel model it won n2n-compare and flickers less than OIDN); off for the paper's setting."""

    temporal_target: str = "raw"
    """Under temporal reuse, what a stream is trained towards: the other stream's 'raw' frame (unbiased: a history
    lags where the camera moves, and a network trained towards it learns the lag), its 'history' (less noisy,
    biased where the camera moves) or a 'mix' of the two (docs/benchmarks.md compares them)."""

    blend: bool = True
    """Under temporal reuse (kernel model): read this frame's raw colour beside the history and blend the two by a
    per-pixel weight the network predicts, so that where the history is worse than this frame it can be ignored."""

    demodulate: bool = True
    """Kernel model: filter colour / albedo and multiply the albedo back, so texture is not blurred."""

    emission: bool = True
    """Kernel model: filter what the camera sees straight from an emitter (the renderer's per-stream emission pass)
    apart from the light surfaces reflect, never divided by the albedo, so a light's edge is not smeared into the
    ceiling beside it, and keep it out of the histories so that they do not drag it along (models/kernel.py,
    live/temporal.py)."""

    despeckle: bool = True
    """Kernel model with emission apart: when denoising (not training), cut the reflected light's fireflies, pixels
    brighter than 3x their 3x3 median + 0.05, before the kernels spread them (models/kernel.py `despeckle`; biased
    by the dropped energy, so the training targets and what the network learns stay Noise2Noise's)."""

    clamp: bool = False
    """Clamp each reprojected history into its own stream's raw 3x3 neighbourhood range (temporal.py)."""

    spike_clip: bool = True
    """Scale a training step's gradient down to SPIKE_CLIP x the running mean of its norm (train_step.TrainStep; not
    for the paper's model): an 8-spp target's firefly otherwise stalls Adam for hundreds of steps
    (docs/benchmarks.md: +2.75 dB on the Bitterli box at 64x64)."""

    weight_average: bool = True
    """Denoise with a running average of the trained weights (WEIGHT_AVERAGE per step; not for the paper's model),
    not the last step's: online steps on 8-spp targets jitter the weights, and the image with them."""

    resample: str = "bilinear"
    """How histories are resampled into the new view: 'bilinear' or 'catmull-rom' (reprojection.reproject)."""

    def validate(self) -> "LiveConfig":
        """Check the values a user can get wrong (validate.py: finite, in range, fits in memory); a mistake is a
        UserError naming the option."""
        self.width = check_int("--size (width)", self.width, 1, MAX_SIDE)
        self.height = check_int("--size (height)", self.height, 1, MAX_SIDE)
        self.spp = check_int("--spp", self.spp, 1, MAX_SPP)
        self.crop = check_int("--crop", self.crop, 1, MAX_SIDE)
        self.frames = check_int("--frames", self.frames, 1, 10**8)
        self.iters_per_frame = check_int("--iters-per-frame", self.iters_per_frame, 0, 10**4)
        self.reference_spp = check_int("--reference-spp", self.reference_spp, 0, MAX_SPP)
        if self.reference_spp == 1:
            raise UserError("--reference-spp: 1 cannot be split into two independent halves (use 0 or >= 2)")
        self.eval_every = check_int("--eval-every", self.eval_every, 1, 10**8)
        self.clean_target_spp = check_int("--clean-target-spp", self.clean_target_spp, 1, MAX_SPP)
        self.snapshots = check_int("--snapshots", self.snapshots, 0, 1000)
        self.lr = check_real("--lr", self.lr, 0.0, 1.0, lo_open=True)
        self.exposure = check_real("--exposure", self.exposure, 0.0, 1e6, lo_open=True)
        if not self.scene or not str(self.scene).strip():
            raise UserError("--scene: an empty scene name")
        check_spec(self.scene)  # a bundled name, or an XML file with a sensor: refused before any work
        check_live(self.width, self.height, self.spp, self.crop, f"--size {self.width}x{self.height} --spp {self.spp}")
        if self.init not in INIT_CHOICES:
            raise UserError(f"--init must be one of {', '.join(INIT_CHOICES)}, got {self.init!r}")
        if self.model not in MODEL_CHOICES:
            raise UserError(f"--model must be one of {', '.join(MODEL_CHOICES)}, got {self.model!r}")
        for name, value, choices in (("temporal_target", self.temporal_target, TEMPORAL_TARGETS),
                                     ("resample", self.resample, FILTERS)):
            if value not in choices:
                raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        resolve_device(self.device)  # the same one line as every other command's --device
        self.compare = tuple(self.compare)
        bad = [c for c in self.compare if c not in COMPARE_CHOICES]
        if bad:
            raise UserError(f"--compare accepts {', '.join(COMPARE_CHOICES)}; unknown: {', '.join(bad)}")
        if "clean" in self.compare and self.reference_spp <= 0:
            raise UserError("--compare clean trains on reference images: set --reference-spp > 0")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _ours(cfg, field: str) -> bool:
    """A setting of the project's own training or display, on unless cfg turns it off; the paper's model keeps the
    paper's online setting (`--model paper --temporal off --init none`). Any cfg-like object (the trainer's)."""
    return bool(getattr(cfg, field, True)) and getattr(cfg, "model", "kernel") != "paper"


def spike_clip(cfg) -> float | None:
    """The trainer's gradient-spike cap (train_step.TrainStep), or None: the paper's model keeps the paper's plain
    Adam, so that `--model paper --temporal off --init none` stays the paper's online setting."""
    return SPIKE_CLIP if _ours(cfg, "spike_clip") else None


def weight_average(cfg) -> float | None:
    """The per-step decay of the weights the trainer publishes (OnlineTrainer._publish), or None for the last step's
    weights: the paper's model keeps the paper's setting, like spike_clip."""
    return WEIGHT_AVERAGE if _ours(cfg, "weight_average") else None


def model_inputs(cfg) -> dict:
    """What cfg's network reads: 9 features; + the history length under temporal reuse; + this frame's raw
    colour beside the history, blended by a learned per-pixel weight (cfg.blend, kernel model)."""
    kernel = cfg.model == "kernel"
    extra = {"demodulate": True} if kernel and cfg.demodulate else {}
    if kernel and getattr(cfg, "emission", False):
        extra["emission"] = True
        if getattr(cfg, "despeckle", False):
            extra["despeckle"] = True
    if not cfg.temporal:
        return {"n_in": features.N_FEATURES, **extra}
    if cfg.blend and cfg.model == "kernel":
        return {"n_in": features.N_TEMPORAL_RAW, "blend": True, **extra}
    return {"n_in": features.N_TEMPORAL, **extra}


PRESETS: dict[str, LiveConfig] = {
    # Two CPU cores: 128x128 frames trained on whole frames. lr 1e-3, not the paper's 3e-4: a fly-through's ~650
    # steps (the paper's: 8000) leave a 3e-4 network still blurry. References of 2048 spp, because a cheaper one
    # would cap and flatter the better method; every 10th frame and the last, cached on disk.
    "cpu": LiveConfig(width=128, height=128, crop=128, frames=80, lr=1e-3, reference_spp=2048, eval_every=10,
                      compare=("oidn",)),
    # One GPU: the paper's setting (512x512, 8 spp, 8 iterations on 256x256 crops, lr 3e-4), 1000 frames.
    "gpu": LiveConfig(width=512, height=512, crop=256, frames=1000, lr=3e-4, reference_spp=4096, eval_every=50,
                      compare=("oidn",)),
}


def preset(name: str, **overrides) -> LiveConfig:
    """A fresh copy of a preset with `overrides` applied (unknown preset: UserError)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return dataclasses.replace(PRESETS[name], **overrides)


def default_preset_name() -> str:
    """'gpu' when torch sees CUDA, else 'cpu'."""
    return "gpu" if torch.cuda.is_available() else "cpu"
