"""Reading exported Monte Carlo EXR datasets (`n2n-export`, Intel OIDN training-toolkit naming).

A dataset folder holds, per view and spp level, independent noisy realisations with albedo and normal, and one
high-spp reference per view (`n2n_live.dataset_names`; why these names: `n2n_live.commands.export`):

    <view>_<r>_<NNNN>spp.hdr.exr   .alb.exr   .nrm.exr      r = a, b, ... (independent realisations)
    <view>_<r>_<NNNN>spp.emi.exr                            its directly seen emission (optional: 0 where absent)
    <view>_<r>_ref.hdr.exr                                  (the same reference for every r)

A plain OIDN folder (`<name>_<NNNN>spp.*.exr` + `<name>_ref.hdr.exr`, one realisation) reads too; it can train
with clean targets only. The images are read once, checked (readable, RGB, equal sizes) and kept in memory as
float32: a paper-sized dataset (860 views at 960x540) would need ~30 GB per process, so shard it between
processes (`views_for_rank`) or machines.

Bad files (corrupt or truncated EXR, missing channels, mismatched sizes) raise a one-line UserError naming the
file; with `skip_bad=True` the views they belong to are reported and dropped instead.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from n2n_live.errors import UserError
from n2n_live.exr import read_rgb
from n2n_live.dataset_names import parse_name
from n2n_live.features import assemble, network_input, target


@dataclass
class Realisation:
    """One independent noisy render of a view at one spp level, with its feature buffers."""

    colour: Path
    albedo: Path | None = None
    normal: Path | None = None
    emission: Path | None = None  # the part of `colour` seen straight from a light (older exports have none)


@dataclass
class ViewFiles:
    """The files of one view: noisy realisations per spp level, and the reference (None if absent)."""

    name: str
    noisy: dict[int, dict[str, Realisation]] = field(default_factory=dict)  # spp -> realisation tag -> files
    reference: Path | None = None


@dataclass
class View:
    """A view's images in memory, HWC float32: noisy[spp] = [(colour, albedo, normal, emission), ...] in tag order."""

    name: str
    noisy: dict[int, list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]]]
    reference: np.ndarray | None

    @property
    def size(self) -> tuple[int, int]:
        any_colour = next(iter(self.noisy.values()))[0][0]
        return any_colour.shape[0], any_colour.shape[1]


def scan(folder, spp: list[int] | None = None) -> list[ViewFiles]:
    """Group the folder's EXR files by view, sorted by name. No image is read here.

    An empty or missing folder, or one without any `*_<NNNN>spp.hdr.exr`, is a UserError naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such dataset folder")
    views: dict[str, ViewFiles] = {}
    features: dict[tuple, Path] = {}
    for path in sorted(folder.glob("*.exr")):  # glob skips dot files: temporaries of an interrupted export
        parsed = parse_name(path.name)
        if parsed is None:
            continue
        view, tag, level, feature = parsed
        vf = views.setdefault(view, ViewFiles(view))
        if level is None:
            if feature == "hdr" and vf.reference is None:
                vf.reference = path  # every realisation's reference is the same image (a hard link)
        elif feature == "hdr":
            vf.noisy.setdefault(level, {})[tag] = Realisation(path)
        else:
            features[(view, tag, level, feature)] = path
    for (view, tag, level, feature), path in features.items():
        real = views[view].noisy.get(level, {}).get(tag)
        if real is not None:
            setattr(real, {"alb": "albedo", "nrm": "normal", "emi": "emission"}[feature], path)
    if spp:
        for vf in views.values():
            vf.noisy = {k: v for k, v in vf.noisy.items() if k in spp}
    result = [vf for _, vf in sorted(views.items()) if vf.noisy]
    if not result:
        wanted = f" at {','.join(map(str, spp))} spp" if spp else ""
        raise UserError(f"{folder}: no dataset images{wanted} (expected <view>_<r>_<NNNN>spp.hdr.exr files, see n2n-export)")
    return result


def split(views: list[ViewFiles], val_fraction: float) -> tuple[list[ViewFiles], list[ViewFiles]]:
    """(training views, held-out validation views): evenly spaced views that have a reference are held out."""
    with_ref = [i for i, v in enumerate(views) if v.reference is not None]
    n_val = min(len(with_ref), max(1, round(val_fraction * len(views)))) if val_fraction > 0 and len(views) > 1 else 0
    picked = {with_ref[int(round(j))] for j in np.linspace(len(with_ref) - 1, 0, n_val)} if n_val else set()
    train = [v for i, v in enumerate(views) if i not in picked]
    val = [v for i, v in enumerate(views) if i in picked]
    if not train:
        raise UserError("the dataset has too few views to hold some out for validation (use --val-fraction 0)")
    return train, val


def views_for_rank(views: list, rank: int, world: int) -> list:
    """This process's share of the views (every world-th); all of them where there are fewer views than processes."""
    return views[rank::world] if len(views) >= world else list(views)


def _read(path: Path, what: str, size: tuple[int, int] | None) -> np.ndarray:
    image = read_rgb(path)
    if not np.isfinite(image).all():
        image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)  # fireflies: keep the file, drop the sample
    if size is not None and image.shape[:2] != size:
        raise UserError(f"{path}: {what} is {image.shape[1]}x{image.shape[0]}, the view's other images are {size[1]}x{size[0]}")
    return image


def load(files: list[ViewFiles], need_features: bool = True, need_reference: bool = False,
         min_realisations: int = 1, skip_bad: bool = False, emission: bool = True) -> list[View]:
    """Read and check the views' images. Bad files raise a UserError naming them, or with `skip_bad` drop their view.
    `emission=False` leaves the .emi.exr files unread (None: nothing counts as emitting)."""
    views = []
    for vf in files:
        try:
            views.append(_load_view(vf, need_features, need_reference, min_realisations, emission))
        except UserError as e:
            if not skip_bad:
                raise
            print(f"skipping view {vf.name}: {e}", file=sys.stderr)
    return views


def _load_view(vf: ViewFiles, need_features: bool, need_reference: bool, min_realisations: int,
               emission: bool = True) -> View:
    size = None
    noisy = {}
    for level, reals in sorted(vf.noisy.items()):
        if len(reals) < min_realisations:
            first = next(iter(reals.values())).colour
            raise UserError(f"{first}: only {len(reals)} noisy realisation(s) of view {vf.name} at {level} spp, "
                            f"noisy targets need {min_realisations} (or train with --target clean)")
        images = []
        for _, real in sorted(reals.items()):
            colour = _read(real.colour, "the noisy image", size)
            size = colour.shape[:2]
            feats = []
            for what, path, suffix in (("albedo", real.albedo, "alb"), ("normal", real.normal, "nrm")):
                if path is None:
                    if need_features:
                        missing = real.colour.with_name(real.colour.name.replace(".hdr.exr", f".{suffix}.exr"))
                        raise UserError(f"{missing}: missing (the 9-channel network needs the {what})")
                    feats.append(None)
                else:
                    feats.append(_read(path, f"the {what}", size))
            emitted = _read(real.emission, "the emission", size) if emission and real.emission is not None else None
            images.append((colour, feats[0], feats[1], emitted))
        noisy[level] = images
    reference = None
    if vf.reference is not None:
        reference = _read(vf.reference, "the reference", size)
    elif need_reference:
        raise UserError(f"{vf.name}: no reference image ({vf.name}_a_ref.hdr.exr) for validation or clean targets")
    return View(vf.name, noisy, reference)


def _crop(image: np.ndarray, y: int, x: int, h: int, w: int, flip_x: bool, flip_y: bool) -> np.ndarray:
    c = image[y:y + h, x:x + w]
    if flip_x:
        c = c[:, ::-1]
    if flip_y:
        c = c[::-1]
    return np.ascontiguousarray(c)


def sample_batch(rng: np.random.Generator, views: list[View], batch: int, crop: int,
                 mode: str, net=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A minibatch of random crops: (N, 9, crop, crop) network inputs and (N, 3, crop, crop) linear targets.
    Given `net`, the inputs are what that model takes (features.network_input: e.g. + the linear colour).

    mode "noisy": input one realisation, target another (either direction, the Noise2Noise pair);
    mode "clean": input a random realisation, target the reference. Crops are flipped at random.
    """
    crop = min([crop] + [min(v.size) for v in views])  # tiny datasets: the whole image
    colours, albedos, normals, emissions, targets = [], [], [], [], []
    for _ in range(batch):
        view = views[rng.integers(len(views))]
        levels = sorted(view.noisy)
        reals = view.noisy[levels[rng.integers(len(levels))]]
        h, w = view.size
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        fx, fy = bool(rng.integers(2)), bool(rng.integers(2))
        if mode == "noisy":
            i, j = (int(k) for k in rng.choice(len(reals), size=2, replace=False))
            tgt = reals[j][0]
        else:
            i, tgt = int(rng.integers(len(reals))), view.reference
        colour, albedo, normal, emission = reals[i]
        colours.append(_crop(colour, y, x, crop, crop, fx, fy))
        zeros = np.zeros((crop, crop, 3), np.float32)
        albedos.append(_crop(albedo, y, x, crop, crop, fx, fy) if albedo is not None else zeros)
        normals.append(_crop(normal, y, x, crop, crop, fx, fy) if normal is not None else zeros)
        emissions.append(_crop(emission, y, x, crop, crop, fx, fy) if emission is not None else zeros)
        targets.append(_crop(tgt, y, x, crop, crop, fx, fy))
    stack = lambda arrays: torch.from_numpy(np.stack(arrays))  # noqa: E731
    if net is not None:
        return (network_input(net, stack(colours), stack(albedos), stack(normals), emission=stack(emissions)),
                target(stack(targets)))
    return assemble(stack(colours), stack(albedos), stack(normals)), target(stack(targets))
