"""`n2n-denoise`: apply a trained network to a user's own image.

    n2n-denoise --checkpoint CKPT --input noisy.exr [--albedo alb.exr --normal nrm.exr] --out clean.exr
    n2n-denoise --checkpoint CKPT --input data/view_a_0008spp.hdr.exr --out clean.exr   # .alb/.nrm.exr beside
    n2n-denoise --checkpoint gaussian.pt --input photo.png --out photo_denoised.png

Any checkpoint works: live-saved or batch-trained Monte Carlo networks (kind "mc", any model of n2n_live.models:
the checkpoint records which; EXR input, linear HDR output; 9 or 10 input channels need the albedo and normal,
given as files, as `albedo`/`normal` layers of the input EXR, or beside an input named X.hdr.exr as X.alb.exr and
X.nrm.exr, n2n-export's naming; a kernel network that filters a light apart also reads X.emi.exr there), and the synthetic-noise models of the experiments (other kinds; 3 or 1 input channels, images in [0, 1]
shifted to [-0.5, 0.5], PNG/JPG/EXR input). Monte Carlo networks go through the live Denoiser's inference seam
(`denoiser.mc_output`), so a file gives what the live app shows for the same input. Large images are denoised in overlapping tiles blended with linear
ramps, so memory stays bounded. The output format follows the extension (.exr linear, .png/.jpg 8-bit; an MC
result is tonemapped with T for 8-bit output) and is written atomically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ..dataset_names import emission_beside, features_beside
from ..live.denoiser import mc_output
from ..errors import UserError, exit_on_user_error
from ..images import LDR_SUFFIXES, read_ldr
from ..validate import (BASE_BYTES, INFER_BYTES_PER_PIXEL, ArgumentParser, check_memory, check_output_file, integer,
                       path_arg, repair_nonfinite, resolve_device)
from ..tiling import denoise_tiled

PROG = "n2n-denoise"
READ_SUFFIXES = {*LDR_SUFFIXES, ".exr"}
WRITE_SUFFIXES = {".png", ".jpg", ".jpeg", ".exr"}


# --- reading and writing images ---

def read_image(path: Path, channels: int | None = None) -> np.ndarray:
    """HxWx3 float32 (linear for EXR, [0, 1] for PNG/JPG); `channels` 1 gives HxWx1 luminance for PNG/JPG."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise UserError(f"{path}: unsupported image type {suffix or '(none)'} (use {', '.join(sorted(READ_SUFFIXES))})")
    if suffix == ".exr":
        from ..exr import read_rgb

        return read_rgb(path)
    return read_ldr(path, 3 if channels is None else channels)


def write_image(path: Path, image: np.ndarray, tonemap: bool) -> None:
    """HWC float32 -> .exr (as is) or 8-bit .png/.jpg (tonemapped with T if `tonemap`, else clipped)."""
    from ..io_utils import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".exr":
        from ..exr import write_exr

        write_exr(path, {"": image})
        return
    if suffix not in WRITE_SUFFIXES - {".exr"}:
        raise UserError(f"{path}: unsupported output type {suffix or '(none)'} (use .exr, .png or .jpg)")
    from PIL import Image

    from ..tonemap import T

    v = T(image) if tonemap else np.clip(image, 0.0, 1.0)
    u8 = (np.clip(v, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    u8 = u8[..., 0] if u8.shape[-1] == 1 else u8
    with atomic_path(path) as tmp:
        Image.fromarray(u8).save(tmp, format="PNG" if suffix == ".png" else "JPEG", quality=95)


# --- the command ---

def _repaired(args, image: np.ndarray, source) -> np.ndarray:
    """NaN/Inf values replaced (validate.repair_nonfinite); counted in args.repaired for one warning line."""
    image, bad = repair_nonfinite(image, source)
    if bad:
        args.repaired.append((str(source), bad))
    return image


def _mc_input(args, n_in: int, net=None) -> tuple[torch.Tensor, np.ndarray]:
    """(NCHW network input, the colour image) for a Monte Carlo network (features.network_input: a kernel net also
    takes the linear colour, a temporal one the history feature of a single frame)."""
    from ..exr import read_exr, read_rgb
    from ..features import assemble, network_input

    if args.input.suffix.lower() != ".exr":
        raise UserError(f"{args.input}: a Monte Carlo network needs linear HDR input (.exr)")
    layers = read_exr(args.input)
    if "" not in layers or layers[""].shape[-1] < 3:
        raise UserError(f"{args.input}: no RGB channels (layers: {', '.join(repr(k) for k in layers) or 'none'})")
    colour = _repaired(args, layers[""][..., :3], args.input)
    h, w = colour.shape[:2]
    if n_in == 3:
        x = assemble(torch.from_numpy(colour), torch.zeros(h, w, 3), torch.zeros(h, w, 3))[:, :3]
        return x, colour
    files = {"albedo": args.albedo, "normal": args.normal}
    missing = [what for what, f in files.items() if f is None and not (what in layers and layers[what].shape[-1] >= 3)]
    beside = features_beside(args.input) if missing else None
    if beside is not None:  # n2n-export's naming: X.hdr.exr with X.alb.exr and X.nrm.exr
        for what in missing:
            files[what] = beside[0] if what == "albedo" else beside[1]
        print(f"{PROG}: using {' and '.join(files[w].name for w in missing)} beside the input "
              f"(--albedo/--normal override)", file=sys.stderr)
    feats = []
    for what, file in files.items():
        if file is not None:
            img = read_rgb(file)
            src = file
        elif what in layers and layers[what].shape[-1] >= 3:
            img, src = layers[what][..., :3], args.input
        else:
            raise UserError(f"{args.checkpoint}: this network needs albedo and normal (9 input channels); "
                            f"pass --albedo FILE --normal FILE (missing: {what})")
        if img.shape[:2] != (h, w):
            raise UserError(f"{src}: {what} is {img.shape[1]}x{img.shape[0]}, the input is {w}x{h}")
        img = _repaired(args, img, src if src != args.input else f"{src} ({what})")
        feats.append(torch.from_numpy(np.ascontiguousarray(img)))
    emitted = emission_beside(args.input) if getattr(net, "emission", False) else None
    if emitted is not None:  # a kernel net filters a light apart; without the file nothing counts as emitting
        img = read_rgb(emitted)
        if img.shape[:2] != (h, w):
            raise UserError(f"{emitted}: the emission is {img.shape[1]}x{img.shape[0]}, the input is {w}x{h}")
        print(f"{PROG}: using {emitted.name} beside the input (the light seen straight on)", file=sys.stderr)
        emitted = torch.from_numpy(np.ascontiguousarray(_repaired(args, img, emitted)))
    return network_input(net, torch.from_numpy(colour), feats[0], feats[1], emission=emitted), colour


def denoise_file(args) -> tuple[np.ndarray, bool]:
    """(HWC float32 result, whether it is linear HDR) for the command's arguments."""
    from ..checkpoint import load_checkpoint

    device = resolve_device(args.device)
    args.repaired = []
    net, state = load_checkpoint(args.checkpoint, device)
    kind, n_in = state.get("kind", "mc"), net.n_in
    if kind == "mc":
        if n_in not in (3, 9, 10):
            raise UserError(f"{args.checkpoint}: a Monte Carlo network with {n_in} input channels is not supported")
        x, _ = _mc_input(args, n_in, net)
        y = mc_output(net, x.to(device), args.tile, args.overlap, amp=args.amp)
        return y[0].permute(1, 2, 0).cpu().numpy(), True
    if n_in not in (1, 3):
        raise UserError(f"{args.checkpoint}: a '{kind}' network with {n_in} input channels is not supported")
    if args.albedo or args.normal:
        print(f"{PROG}: note: a '{kind}' network takes no albedo or normal; ignoring them", file=sys.stderr)
    img = _repaired(args, read_image(args.input, channels=n_in), args.input)
    if img.shape[-1] != n_in:  # EXR input for a grayscale model: its luminance
        img = img.mean(axis=-1, keepdims=True) if n_in == 1 else np.repeat(img, 3, axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(device) - 0.5
    y = denoise_tiled(net, x, args.tile, args.overlap, amp=args.amp) + 0.5
    return y[0].permute(1, 2, 0).cpu().numpy(), False


def parse_args(argv=None) -> argparse.Namespace:
    ap = ArgumentParser(prog=PROG, description="Denoise an image with a trained n2n-live network.")
    ap.add_argument("--checkpoint", required=True, type=path_arg, metavar="CKPT", help="network checkpoint (.pt)")
    ap.add_argument("--input", required=True, type=path_arg, metavar="FILE", help=".exr (Monte Carlo) or .png/.jpg")
    ap.add_argument("--albedo", type=path_arg, metavar="FILE", help="albedo EXR (9-channel Monte Carlo networks)")
    ap.add_argument("--normal", type=path_arg, metavar="FILE", help="normal EXR (9-channel Monte Carlo networks)")
    ap.add_argument("--out", required=True, type=path_arg, metavar="FILE", help="output .exr or .png/.jpg")
    ap.add_argument("--tile", type=integer(32, 8192), default=512, help="tile size for large images (default 512)")
    ap.add_argument("--overlap", type=integer(0, 4096), default=32, help="tile overlap in pixels (default 32)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    args = ap.parse_args(argv)
    if args.overlap >= args.tile:
        ap.error(f"--overlap ({args.overlap}) must be smaller than --tile ({args.tile})")
    check_output_file(args.out, "--out")
    if args.out.suffix.lower() not in WRITE_SUFFIXES:
        ap.error(f"--out must end in .exr, .png or .jpg (got {args.out.name})")
    for flag in ("checkpoint", "input", "albedo", "normal"):
        p = getattr(args, flag)
        if p is not None and not p.is_file():
            raise UserError(f"{p}: no such file (--{flag})")
    check_memory(BASE_BYTES + args.tile**2 * INFER_BYTES_PER_PIXEL, f"--tile {args.tile}")
    return args


def main(argv=None) -> None:
    with exit_on_user_error(PROG):
        args = parse_args(argv)
        image, hdr = denoise_file(args)
        if not np.isfinite(image).all():  # never write a poisoned result (a checkpoint is checked when loaded)
            raise UserError(f"{args.checkpoint}: the network produced non-finite values; nothing written")
        write_image(args.out, image, tonemap=hdr)
        # One line, also when some input values had to be repaired.
        repaired = "".join(f"{n} NaN/Inf value(s) of {src} replaced by 0; " for src, n in args.repaired)
        print(f"{PROG}: {'warning: ' + repaired if repaired else ''}wrote {args.out} "
              f"({image.shape[1]}x{image.shape[0]})", file=sys.stderr)


if __name__ == "__main__":
    main()
