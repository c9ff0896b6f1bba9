"""`n2n-denoise`: apply a trained network to a user's own image.

    n2n-denoise --checkpoint CKPT --input noisy.exr [--albedo alb.exr --normal nrm.exr] --out clean.exr
    n2n-denoise --checkpoint gaussian.pt --input photo.png --out photo_denoised.png

Any checkpoint works: live-saved or batch-trained Monte Carlo networks (kind "mc", any model of n2n_live.models:
the checkpoint records which; EXR input, linear HDR output; 9 or 10 input channels need the albedo and normal, given as files or as `albedo`/`normal` layers of the input
EXR), and the synthetic-noise models of the experiments (other kinds; 3 or 1 input channels, images in [0, 1]
shifted to [-0.5, 0.5], PNG/JPG/EXR input). Large images are denoised in overlapping tiles blended with linear
ramps, so memory stays bounded. The output format follows the extension (.exr linear, .png/.jpg 8-bit; an MC
result is tonemapped with T for 8-bit output) and is written atomically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .errors import UserError, exit_on_user_error
from .network import run_padded

PROG = "n2n-denoise"
LDR_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_SUFFIXES = LDR_SUFFIXES | {".exr"}


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weights: linear ramps over `overlap` pixels on sides that meet another tile."""
    w = torch.ones(n)
    r = min(overlap, n // 2)
    if r > 0:
        ramp = torch.arange(1, r + 1, dtype=torch.float32) / (r + 1)
        if not at_start:
            w[:r] = ramp
        if not at_end:
            w[n - r:] = ramp.flip(0)
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


@torch.no_grad()
def denoise_tiled(net: torch.nn.Module, x: torch.Tensor, tile: int = 512, overlap: int = 32,
                  amp: bool = False) -> torch.Tensor:
    """Network output for an NCHW input of any size: whole if it fits in `tile`, else overlapping tiles.

    Tiles are `tile` pixels square (a multiple of 32 avoids padding), overlap by `overlap` pixels and are
    blended with linear ramps; the output is float32 on x's device.
    """
    if overlap >= tile:
        raise UserError(f"tile overlap ({overlap}) must be smaller than the tile ({tile})")
    net.eval()
    n, _, h, w = x.shape

    def run(t):
        with torch.autocast(t.device.type, dtype=torch.bfloat16, enabled=amp):
            return run_padded(net, t).float()

    if h <= tile and w <= tile:
        return run(x)
    out = None
    weight = torch.zeros(1, 1, h, w, device=x.device)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    for y in ys:
        for xx in xs:
            th, tw = min(tile, h - y), min(tile, w - xx)
            y_out = run(x[:, :, y:y + th, xx:xx + tw])
            if out is None:
                out = torch.zeros(n, y_out.shape[1], h, w, device=x.device)
            wy = _ramp(th, overlap, y == 0, y + th >= h).to(x.device)
            wx = _ramp(tw, overlap, xx == 0, xx + tw >= w).to(x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, y:y + th, xx:xx + tw] += y_out * wt
            weight[:, :, y:y + th, xx:xx + tw] += wt
    return out / weight


# --- reading and writing images ---

def read_image(path: Path, channels: int | None = None) -> np.ndarray:
    """HxWx3 float32 (linear for EXR, [0, 1] for PNG/JPG); `channels` 1 gives HxWx1 luminance for PNG/JPG."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UserError(f"{path}: unsupported image type {suffix or '(none)'} (use .exr, .png or .jpg)")
    if suffix == ".exr":
        from .exr import read_rgb

        return read_rgb(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            a = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise UserError(f"{path}: not a readable image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return a[..., None] if a.ndim == 2 else a


def write_image(path: Path, image: np.ndarray, tonemap: bool) -> None:
    """HWC float32 -> .exr (as is) or 8-bit .png/.jpg (tonemapped with T if `tonemap`, else clipped)."""
    from .io_utils import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".exr":
        from .exr import write_exr

        write_exr(path, {"": image})
        return
    if suffix not in LDR_SUFFIXES:
        raise UserError(f"{path}: unsupported output type {suffix or '(none)'} (use .exr, .png or .jpg)")
    from PIL import Image

    from .tonemap import T

    v = T(image) if tonemap else np.clip(image, 0.0, 1.0)
    u8 = (np.clip(v, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    u8 = u8[..., 0] if u8.shape[-1] == 1 else u8
    with atomic_path(path) as tmp:
        Image.fromarray(u8).save(tmp, format="PNG" if suffix == ".png" else "JPEG", quality=95)


# --- the command ---

def _mc_input(args, n_in: int, net=None) -> tuple[torch.Tensor, np.ndarray]:
    """(NCHW network input, the colour image) for a Monte Carlo network (features.network_input: a kernel net also
    takes the linear colour, a temporal one the history feature of a single frame)."""
    from .exr import read_exr, read_rgb
    from .features import assemble, network_input

    if args.input.suffix.lower() != ".exr":
        raise UserError(f"{args.input}: a Monte Carlo network needs linear HDR input (.exr)")
    layers = read_exr(args.input)
    if "" not in layers or layers[""].shape[-1] < 3:
        raise UserError(f"{args.input}: no RGB channels (layers: {', '.join(repr(k) for k in layers) or 'none'})")
    colour = layers[""][..., :3]
    h, w = colour.shape[:2]
    if n_in == 3:
        x = assemble(torch.from_numpy(colour), torch.zeros(h, w, 3), torch.zeros(h, w, 3))[:, :3]
        return x, colour
    feats = []
    for what, file in (("albedo", args.albedo), ("normal", args.normal)):
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
        feats.append(torch.from_numpy(np.ascontiguousarray(img)))
    return network_input(net, torch.from_numpy(colour), feats[0], feats[1]), colour


def denoise_file(args) -> tuple[np.ndarray, bool]:
    """(HWC float32 result, whether it is linear HDR) for the command's arguments."""
    from .checkpoint import load_checkpoint

    try:
        device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise UserError(f"--device {args.device}: not a torch device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available on this machine")
    for p in (args.albedo, args.normal):
        if p is not None and not Path(p).is_file():
            raise UserError(f"{p}: no such file")
    net, state = load_checkpoint(args.checkpoint, device)
    kind, n_in = state.get("kind", "mc"), net.n_in
    if kind == "mc":
        if n_in not in (3, 9, 10):
            raise UserError(f"{args.checkpoint}: a Monte Carlo network with {n_in} input channels is not supported")
        x, _ = _mc_input(args, n_in, net)
        y = denoise_tiled(net, x.to(device), args.tile, args.overlap, amp=args.amp)
        return y[0].permute(1, 2, 0).cpu().numpy(), True
    if n_in not in (1, 3):
        raise UserError(f"{args.checkpoint}: a '{kind}' network with {n_in} input channels is not supported")
    if args.albedo or args.normal:
        print(f"{PROG}: note: a '{kind}' network takes no albedo or normal; ignoring them", file=sys.stderr)
    img = read_image(args.input, channels=n_in)
    if img.shape[-1] != n_in:  # EXR input for a grayscale model: its luminance
        img = img.mean(axis=-1, keepdims=True) if n_in == 1 else np.repeat(img, 3, axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(device) - 0.5
    y = denoise_tiled(net, x, args.tile, args.overlap, amp=args.amp) + 0.5
    return y[0].permute(1, 2, 0).cpu().numpy(), False


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description="Denoise an image with a trained n2n-live network.")
    ap.add_argument("--checkpoint", required=True, type=Path, metavar="CKPT", help="network checkpoint (.pt)")
    ap.add_argument("--input", required=True, type=Path, metavar="FILE", help=".exr (Monte Carlo) or .png/.jpg")
    ap.add_argument("--albedo", type=Path, metavar="FILE", help="albedo EXR (9-channel Monte Carlo networks)")
    ap.add_argument("--normal", type=Path, metavar="FILE", help="normal EXR (9-channel Monte Carlo networks)")
    ap.add_argument("--out", required=True, type=Path, metavar="FILE", help="output .exr or .png/.jpg")
    ap.add_argument("--tile", type=int, default=512, help="tile size for large images (default 512)")
    ap.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default 32)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    args = ap.parse_args(argv)
    if args.tile < 32 or args.overlap < 0:
        ap.error("--tile must be >= 32 and --overlap >= 0")
    if args.out.suffix.lower() not in IMAGE_SUFFIXES:
        ap.error(f"--out must end in .exr, .png or .jpg (got {args.out.name})")
    return args


def main(argv=None) -> None:
    with exit_on_user_error(PROG):
        args = parse_args(argv)
        image, hdr = denoise_file(args)
        write_image(args.out, image, tonemap=hdr)
        print(f"{PROG}: wrote {args.out} ({image.shape[1]}x{image.shape[0]})", file=sys.stderr)


if __name__ == "__main__":
    main()
