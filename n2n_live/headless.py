"""The headless fly-through: no window, the same LiveLoop as the viewer, results written to a folder.

DIR/config.json        the configuration (and the variant/device actually used)
DIR/metrics.csv        one row per frame, flushed as written (an interrupted run keeps its rows)
DIR/psnr.png           PSNR over the frames like the paper's Figure 8 (+ the loss), also written on Ctrl-C
DIR/frames/            noisy / denoised / reference (/ oidn / clean) PNGs of a few frames, tonemapped, 8-bit
DIR/last_frame_strip.png   noisy | denoised | reference (| OIDN | clean targets) of the last frame
DIR/last_frame.exr     the last frame's buffers: main RGB = noisy_a, layers noisy_b, albedo, normal, denoised,
                       reference (oidn, clean when compared)
DIR/network.pt         the final checkpoint (checkpoint.py)
DIR/summary.json       means over the last 10 frames
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .config import LiveConfig
from .exr import write_exr
from .io_utils import atomic_path, write_json
from .live import FrameResult, LiveLoop, mean_last
from .metrics_log import MetricsLog
from .plots import plot_psnr
from .tonemap import T

BASE_COLUMNS = ["frame", "render_ms", "train_ms", "infer_ms", "loss", "psnr_input", "psnr_denoised"]
COMPARE_COLUMNS = {"clean": "psnr_clean_target", "oidn": "psnr_oidn"}
EXTRA_COLUMNS = ["psnr_input_pair", "reference_ms", "oidn_ms", "train_steps", "skipped", "version"]
LAST_N = 10
DEFAULT_OUT = Path("out") / "headless"


def columns_for(cfg: LiveConfig) -> list[str]:
    return BASE_COLUMNS + [COMPARE_COLUMNS[c] for c in ("clean", "oidn") if c in cfg.compare] + EXTRA_COLUMNS


def to_png_array(img: torch.Tensor, exposure: float = 1.0) -> np.ndarray:
    """HWC linear -> tonemapped 8-bit RGB."""
    t = T(img.detach().float().cpu(), exposure).clamp(0, 1)
    return (t.numpy() * 255.0 + 0.5).astype(np.uint8)


def write_png(path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp)


def _images(r: FrameResult) -> list[tuple[str, torch.Tensor]]:
    imgs = [("noisy", r.pair.noisy_a), ("denoised", r.denoised)]
    for name, img in (("reference", r.reference), ("oidn", r.oidn), ("clean", r.clean)):
        if img is not None:
            imgs.append((name, img))
    return imgs


def save_frame_pngs(folder: Path, r: FrameResult, exposure: float) -> None:
    for name, img in _images(r):
        write_png(folder / f"frame_{r.frame:04d}_{name}.png", to_png_array(img, exposure))


def save_strip(path: Path, r: FrameResult, exposure: float) -> None:
    """Side by side, each panel labelled: noisy | denoised | reference (| oidn | clean)."""
    from PIL import Image, ImageDraw

    labels = {"noisy": f"noisy ({r.psnr_input:.2f} dB)" if r.psnr_input else "noisy",
              "denoised": f"N2N ({r.psnr_denoised:.2f} dB)" if r.psnr_denoised else "N2N",
              "reference": "reference",
              "oidn": f"OIDN ({r.psnr_oidn:.2f} dB)" if r.psnr_oidn else "OIDN",
              "clean": f"clean tgt ({r.psnr_clean_target:.2f} dB)" if r.psnr_clean_target else "clean targets"}
    panels = [(labels[name], to_png_array(img, exposure)) for name, img in _images(r)]
    h, w = panels[0][1].shape[:2]
    bar, gap = 14, 2
    strip = Image.new("RGB", (len(panels) * (w + gap) - gap, h + bar), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for i, (label, a) in enumerate(panels):
        strip.paste(Image.fromarray(a), (i * (w + gap), bar))
        draw.text((i * (w + gap) + 2, 1), label, fill=(255, 255, 255))
    with atomic_path(path) as tmp:
        strip.save(tmp)


def save_exr(path: Path, r: FrameResult) -> None:
    layers = {"": r.pair.noisy_a, "noisy_b": r.pair.noisy_b, "albedo": r.pair.albedo, "normal": r.pair.normal,
              "denoised": r.denoised}
    for name, img in (("reference", r.reference), ("oidn", r.oidn), ("clean", r.clean)):
        if img is not None:
            layers[name] = img
    write_exr(path, layers)


def snapshot_frames(frames: int, count: int) -> set[int]:
    """`count` evenly spaced frames, the first and the last included."""
    if count <= 0:
        return set()
    if count == 1 or frames == 1:
        return {frames - 1}
    return {round(i * (frames - 1) / (count - 1)) for i in range(count)}


def _row(r: FrameResult) -> dict:
    return {k: getattr(r, k) for k in set(BASE_COLUMNS + EXTRA_COLUMNS + list(COMPARE_COLUMNS.values()))}


def summarise(rows: list[dict]) -> dict:
    s = {"frames": len(rows), "last_n": min(LAST_N, len(rows))}
    for k in ("psnr_input", "psnr_input_pair", "psnr_denoised", "psnr_oidn", "psnr_clean_target",
              "render_ms", "train_ms", "infer_ms", "reference_ms", "oidn_ms", "loss"):
        s[k] = mean_last([row.get(k) for row in rows], LAST_N)
    return s


def summary_line(s: dict) -> str:
    def db(k):
        return f"{s[k]:.2f} dB" if not math.isnan(s[k]) else "n/a"

    if math.isnan(s["psnr_input"]):
        text = f"last {s['last_n']} frames: no reference (--reference-spp 0), no PSNR"
    else:
        text = (f"last {s['last_n']} frames: input {db('psnr_input')}, denoised {db('psnr_denoised')} "
                f"({s['psnr_denoised'] - s['psnr_input']:+.2f} dB)")
        if not math.isnan(s["psnr_oidn"]):
            text += f", OIDN {db('psnr_oidn')}"
        if not math.isnan(s["psnr_clean_target"]):
            text += f", clean targets {db('psnr_clean_target')}"
    text += (f"; per frame: render {s['render_ms']:.0f} ms, train {s['train_ms']:.0f} ms, "
             f"infer {s['infer_ms']:.0f} ms")
    return text


def run_headless(cfg: LiveConfig, progress: bool = True, stream=sys.stdout) -> dict:
    """Run the fly-through of `cfg.frames` frames and write every output; returns the summary.

    Ctrl-C (KeyboardInterrupt) stops the trainer threads within 2 s, writes the plot and whatever else can be
    written from the frames so far, and re-raises.
    """
    out = Path(cfg.out) if cfg.out else DEFAULT_OUT
    t_start = time.monotonic()
    loop = LiveLoop(cfg)  # a bad scene fails here, before anything is written
    interrupted = False
    rows: list[dict] = []
    last: FrameResult | None = None
    log = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {**cfg.to_dict(), "variant_used": loop.variant,
                                          "device_used": str(loop.device), "threads": torch.get_num_threads()})
        log = MetricsLog(out / "metrics.csv", columns_for(cfg))
        snaps = snapshot_frames(cfg.frames, cfg.snapshots)
        bar = tqdm(range(cfg.frames), desc=f"n2n-live {loop.loaded.name}", unit="frame", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        for i in bar:
            # one frame: render pair -> train (thread or inline) -> denoise -> metrics
            r = loop.step()
            row = _row(r)
            log.log(row)
            rows.append(row)
            last = r
            if i in snaps:
                save_frame_pngs(out / "frames", r, cfg.exposure)
            if r.psnr_input is not None:
                bar.set_postfix_str(f"in {r.psnr_input:.1f} dB, N2N {r.psnr_denoised:.1f} dB, loss {r.loss:.3g}",
                                    refresh=False)
        bar.close()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stopped = loop.close(timeout=1.0 if interrupted else 2.0)
        if log is not None:
            log.close()
    # outputs from what was rendered so far (also after Ctrl-C: keep it short then)
    if rows:
        plot_psnr(out / "metrics.csv", out / "psnr.png", title=f"{loop.loaded.name}, {cfg.width}x{cfg.height}, "
                  f"{cfg.spp} spp, {cfg.iters_per_frame} it/frame, lr {cfg.lr:g}")
    if last is not None:
        save_strip(out / "last_frame_strip.png", last, cfg.exposure)
        if not interrupted:
            save_frame_pngs(out / "frames", last, cfg.exposure)
            save_exr(out / "last_frame.exr", last)
    if stopped and rows:
        loop.save(out / "network.pt", meta={"interrupted": interrupted})
    summary = summarise(rows)
    summary.update(out=str(out), interrupted=interrupted, seconds=time.monotonic() - t_start,
                   train_steps=last.train_steps if last else 0, skipped=last.skipped if last else 0)
    write_json(out / "summary.json", summary)
    if interrupted:
        print(f"n2n-live: interrupted after {len(rows)} frames; results so far in {out}", file=stream)
        raise KeyboardInterrupt
    print(f"n2n-live: results in {out}/ (metrics.csv, psnr.png, frames/, last_frame_strip.png, last_frame.exr, "
          f"network.pt)", file=stream)
    print(f"n2n-live: {summary_line(summary)}", file=stream)
    return summary
