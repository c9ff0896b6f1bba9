"""Section 3.4: undersampled MRI as a random k-space sampling process.

Each frequency k of an image's spectrum is kept with probability p(k) = exp(-lambda |k|) (a Bernoulli, "Russian
roulette" process), kept values are divided by their probability and the rest set to zero, and the inverse FFT
gives the image the network sees. On expectation the sampled spectrum is the true one, so two independent
samplings of the same slice are a valid input/target pair for L2 training (Eq. 6).

Conventions: images are real NCHW tensors with one channel, spectra are `torch.fft.fft2` outputs in the
unshifted layout (DC at [0, 0]); |k| is the distance from DC in frequency-index units. As in the reference
implementation, the keep decision of k and of its conjugate partner -k are made together, so the sampled
spectrum stays Hermitian and its inverse FFT is real.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

RETAINED = 0.10  # the paper keeps 10 % of the k-space samples

# ---------------------------------------------------------------------------------------------------------
# The sampling density and the sampling process.


def _radius(h: int, w: int) -> torch.Tensor:
    ky = torch.fft.fftfreq(h, d=1.0 / h).view(h, 1)
    kx = torch.fft.fftfreq(w, d=1.0 / w).view(1, w)
    return torch.sqrt(ky**2 + kx**2)


def _partner(a: torch.Tensor) -> torch.Tensor:
    """a[..., -ky mod h, -kx mod w]: the value at each frequency's conjugate partner."""
    return torch.roll(torch.flip(a, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


def _self_conjugate(h: int, w: int) -> torch.Tensor:
    """Frequencies that are their own partner (DC and the Nyquist rows/columns' crossings)."""
    idx = torch.arange(h * w, dtype=torch.float64).view(h, w)
    return _partner(idx) == idx


def keep_probabilities(h: int, w: int, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(p, q): the density p(k) = exp(-lambda |k|) and the actual keep probability q(k) of the process.

    Each frequency draws u(k), is a candidate when u < sqrt(p), and is kept when it and its partner are both
    candidates: q = p for ordinary frequencies, sqrt(p) for self-conjugate ones (the reference code's trick).
    """
    p = torch.exp(-lam * _radius(h, w))
    q = torch.where(_self_conjugate(h, w), torch.sqrt(p), p)
    return p, q


def solve_lambda(h: int, w: int, retained: float = RETAINED) -> float:
    """Bisection for lambda such that the expected fraction of kept frequencies is `retained`."""
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(keep_probabilities(h, w, mid)[1].double().mean()) > retained:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class KSpaceSampler:
    """Samples spectra of h x w images with 10 % (or `retained`) of the frequencies kept on average."""

    def __init__(self, h: int, w: int, retained: float = RETAINED):
        self.h, self.w, self.retained = h, w, retained
        self.lam = solve_lambda(h, w, retained)
        self.p, self.q = keep_probabilities(h, w, self.lam)

    def sample_mask(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(N, 1, h, w) bool keep masks, Hermitian-symmetric."""
        u = torch.rand((n, 1, self.h, self.w), generator=gen)
        candidate = u < torch.sqrt(self.p)
        return candidate & _partner(candidate)

    def __call__(self, x: torch.Tensor, gen: torch.Generator):
        """Undersample real images x (N, 1, h, w).

        Returns (image, measured, keep): the inverse FFT of the kept values scaled by 1/q (what the network
        sees; unbiased), the measured spectrum values (unscaled, zero where not kept: the frequencies the
        scanner actually knows) and the keep mask.
        """
        keep = self.sample_mask(x.shape[0], gen).to(x.device)
        spec = torch.fft.fft2(x)
        measured = torch.where(keep, spec, torch.zeros_like(spec))
        image = torch.fft.ifft2(measured / self.q.to(x.device)).real
        return image, measured, keep

    def sampled_spectrum(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The scaled sampled spectrum F(image) itself (its expectation is F(x))."""
        image, _, _ = self(x, gen)
        return torch.fft.fft2(image)


def spectral_replace(pred: torch.Tensor, measured: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """F^-1(R_x(F(f(x)))): replace the frequencies known from the input by their measured values.

    Linear and differentiable, so training through it is end to end; applied to the network's output in the
    loss and at evaluation alike.
    """
    spec = torch.fft.fft2(pred)
    return torch.fft.ifft2(torch.where(keep, measured.to(spec.dtype), spec)).real


def zero_filled(measured: torch.Tensor) -> torch.Tensor:
    """The classic baseline: inverse FFT of the measured frequencies with zeros elsewhere, no 1/p weighting."""
    return torch.fft.ifft2(measured).real


# ---------------------------------------------------------------------------------------------------------
# NIfTI volumes -> axial slices.

NIFTI_SUFFIXES = (".nii", ".nii.gz")
EMPTY_LEVEL = 0.1  # a pixel counts as tissue above this normalised intensity
EMPTY_FRACTION = 0.05  # slices with less tissue than this are skipped


def find_volumes(source: str | Path) -> list[Path]:
    """A NIfTI file, or every NIfTI file under a folder (recursive), sorted."""
    from n2n_live.errors import UserError

    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UserError(f"MRI data not found: {source}")
    files = sorted(f for f in source.rglob("*") if f.is_file() and f.name.lower().endswith(NIFTI_SUFFIXES))
    if not files:
        raise UserError(f"no NIfTI volumes (.nii, .nii.gz) in {source}")
    return files


def _fit(slice_: torch.Tensor, size: int) -> torch.Tensor:
    """Scale a (1, H, W) slice down to fit size x size (never up) and zero-pad it to size x size, centred."""
    h, w = slice_.shape[-2:]
    if max(h, w) > size:
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        slice_ = F.interpolate(slice_[None], size=(nh, nw), mode="bilinear", antialias=True,
                               align_corners=False)[0]
        h, w = nh, nw
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(slice_, (left, size - w - left, top, size - h - top))


def load_slices(path: str | Path, size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Axial slices of a NIfTI volume: (S, 1, size, size) in [0, 1] and each slice's relative position in [0, 1].

    The volume is reoriented to RAS so that the third axis is inferior -> superior, normalised per volume
    (minimum -> 0, 99.5th percentile of the foreground -> 1, clipped), and slices with less than 5 % tissue
    are skipped.
    """
    import nibabel as nib
    from n2n_live.errors import UserError

    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        vol = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:  # nibabel raises many types for a broken file
        raise UserError(f"cannot read NIfTI volume {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    while vol.ndim > 3:
        vol = vol[..., 0]  # first frame of a 4-D series
    if vol.ndim != 3 or min(vol.shape) < 2:
        raise UserError(f"{path} is not a 3-D volume (shape {vol.shape})")
    vol = np.nan_to_num(vol)
    lo = float(vol.min())
    fg = vol[vol > lo]
    hi = float(np.percentile(fg, 99.5)) if fg.size else lo + 1.0
    vol = np.clip((vol - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    slices, positions = [], []
    depth = vol.shape[2]
    for z in range(depth):
        s = np.ascontiguousarray(np.rot90(vol[:, :, z]))  # rows: anterior at the top
        if np.mean(s > EMPTY_LEVEL) < EMPTY_FRACTION:
            continue
        slices.append(_fit(torch.from_numpy(s)[None], size))
        positions.append(z / max(depth - 1, 1))
    if not slices:
        warnings.warn(f"{path}: every slice is empty; skipped", stacklevel=2)
        return torch.zeros((0, 1, size, size)), torch.zeros(0)
    return torch.stack(slices), torch.tensor(positions)


# When training and validation read the same volumes (the bundled data is a single subject, Colin27, at two
# resolutions in the same space), they are split by position along the axial axis: the central slab is held
# out for validation, with a gap on either side so that neighbouring slices do not leak into training.
VAL_SLAB = (0.45, 0.60)
VAL_GAP = 0.03


def load_mri_sets(train_sources, eval_sources, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train slices, validation slices) from lists of NIfTI files/folders."""
    from n2n_live.errors import UserError

    train_files = [f for s in train_sources for f in find_volumes(s)]
    eval_files = [f for s in eval_sources for f in find_volumes(s)]
    same = {f.resolve() for f in train_files} & {f.resolve() for f in eval_files}

    def gather(files, keep):
        out = []
        for f in files:
            try:
                slices, pos = load_slices(f, size)
            except UserError as e:  # one broken volume in a folder of many: skip it, name it
                warnings.warn(f"skipping {e}", stacklevel=2)
                continue
            if f.resolve() in same:
                slices = slices[keep(pos)]
            out.append(slices)
        return torch.cat(out) if out else torch.zeros((0, 1, size, size))

    lo, hi = VAL_SLAB
    train = gather(train_files, lambda z: (z < lo - VAL_GAP) | (z >= hi + VAL_GAP))
    val = gather(eval_files, lambda z: (z >= lo) & (z < hi))
    if len(train) == 0:
        raise UserError(f"no non-empty training slices in {', '.join(map(str, train_sources))}")
    if len(val) == 0:
        raise UserError(f"no non-empty validation slices in {', '.join(map(str, eval_sources))}")
    return train, val
