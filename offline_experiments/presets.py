"""The configurations of `n2n-experiment`: `quick` (a few minutes on a laptop CPU, to see the effect), `cpu`
(about half an hour per network on a quiet 2-core CPU, evaluated on whole images: Table 1's ordering is the goal)
and `paper` (the paper's settings, for a GPU: hours per network)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Preset:
    name: str
    crop: int = 256
    """Training crop size (paper: 256x256 crops)."""
    batch: int = 4
    """Minibatch size (paper, Appendix A.2: 4)."""
    iters: int = 300_000
    """Training iterations per network (reference implementation: 300k)."""
    lr: float = 1e-3
    """Adam learning rate (paper: 1e-3 for everything but Monte Carlo)."""
    rampdown: float = 0.3
    """Fraction of the iterations over which the learning rate ramps smoothly to zero (reference: 0.3)."""
    eval_every: int = 5000
    """Iterations between two points of the PSNR curves (evaluated on the first eval set only)."""
    eval_images: int | None = None
    """Images per eval set (None: all)."""
    eval_limits: tuple[tuple[str, int], ...] = ()
    """Per-set caps on the images, by folder name, e.g. (("cbsd68", 10),): a fixed subset (the first N files in
    name order), stated in table.md, where a set is too large for the baselines' budget."""
    curve_images: int | None = None
    """Images of the first eval set evaluated at each point of the PSNR curves (None: all of them)."""
    eval_crop: int | None = None
    """Centre crop of the eval images (None: full size, as in the paper)."""
    baseline_images: int | None = None
    """Images per eval set on which BM3D & co. run (None: all; BM3D is slow on a CPU)."""
    brown_bandwidths: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)
    """Standard deviations (pixels) of the Gaussian blur of brown noise; the paper does not list its values."""
    impulse_levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    """Corruption levels of the Figure 5 sweep (one network per level and loss)."""
    impulse_eval_levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    """Levels at which `impulse` evaluates its blind networks (PSNR vs corruption level; no extra training)."""
    levels_iters: int = 100_000
    """Iterations per network of the Figure 5 sweep."""
    capture_budget: int = 2000
    """Capture units of Figure 1c: N latents x M realisations."""
    mri_size: int = 256
    """MRI slice size (paper: 256x256)."""
    mri_iters: int = 30_000
    """MRI iterations (~300 epochs of the ~400 slices bundled here at batch 4; the paper: 300 epochs of 5000)."""
    mri_eval_slices: int | None = None
    """Validation slices (None: all)."""
    save_every_s: float = 120.0
    """Seconds between two saves of a network's training state (a killed run resumes from the last one)."""
    workers: int = 8
    """Data-loading processes (corruptions are made on the CPU; text rendering is the slowest)."""

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "paper": Preset(name="paper"),
    "quick": Preset(
        name="quick", crop=64, batch=4, iters=300, rampdown=0.3, eval_every=50, eval_images=3, eval_crop=128,
        baseline_images=3, brown_bandwidths=(1.0, 4.0), impulse_levels=(0.3, 0.6, 0.9), levels_iters=150,
        mri_size=128, mri_iters=100, mri_eval_slices=8, workers=0,
    ),
    # About half an hour per network on a 2-core CPU; lr below the paper's 1e-3 because a 64x64 minibatch's
    # noisier gradient diverged there (docs/design-notes.md, docs/results.md).
    "cpu": Preset(
        name="cpu", crop=64, batch=4, iters=6000, lr=5e-4, rampdown=0.3, eval_every=500,
        eval_images=None, eval_crop=None, eval_limits=(("cbsd68", 10),), curve_images=3, baseline_images=None,
        brown_bandwidths=(1.0, 4.0), impulse_levels=(0.3, 0.6, 0.9), levels_iters=2000,
        mri_size=128, mri_iters=1500, mri_eval_slices=None, workers=0,
    ),
}


def get_preset(name: str, **overrides) -> Preset:
    """The preset `name` with the given fields replaced (None values are ignored)."""
    p = PRESETS[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(p, **overrides) if overrides else p
