"""The headless fly-through: no window, the same LiveLoop as the viewer, results written to a folder.

DIR/config.json        the configuration (and the variant/device actually used)
DIR/metrics.csv        one row per frame, flushed as written (an interrupted run keeps its rows)
DIR/psnr.png           PSNR over the frames like the paper's Figure 8 (+ the loss); written after the first frame,
                       every 30 s and at the end (a run stopped by Ctrl-C keeps the latest)
DIR/frames/            noisy / denoised / reference (/ oidn / oidn_same / clean) PNGs of a few frames, tonemapped
DIR/last_frame_strip.png   input | Noise2Noise (| clean targets | OIDN this frame | OIDN same samples) | reference
                       of the last frame, labelled
DIR/last_frame.exr     the last frame's buffers: main RGB = noisy_a, layers noisy_b, albedo, normal, denoised,
                       reference (oidn, oidn_same, clean when compared)

"OIDN, this frame" (psnr_oidn) denoises this frame's raw pair; "OIDN, same samples" (psnr_oidn_same; --temporal
only, on evaluated frames) the two temporal histories the network reads, whose own PSNR is psnr_history.
DIR/network.pt         the final checkpoint (checkpoint.py)
DIR/summary.json       means over the last 10 frames
"""
from __future__ import annotations

import collections
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from renderer.variant import choose_variant

from ..live.config import LiveConfig
from ..errors import caused_by_interrupt, interrupts_deferred
from ..exr import write_exr
from ..io_utils import atomic_path, write_json
from ..live.loop import FrameResult, LiveLoop
from ..evaluation.metrics_log import MetricsLog
from ..evaluation.plots import plot_psnr
from ..numbers import finite, finite_mean, fmt, json_safe
from ..tonemap import T

BASE_COLUMNS = ["frame", "render_ms", "train_ms", "infer_ms", "loss", "psnr_input", "psnr_denoised"]
COMPARE_COLUMNS = {"clean": ("psnr_clean_target",), "oidn": ("psnr_oidn", "psnr_oidn_same")}  # same: empty w/o temporal
EXTRA_COLUMNS = ["psnr_input_a", "reference_floor", "reference_ms", "clean_target_ms", "oidn_ms", "train_steps",
                 "skipped", "sanitized_frames", "version"]
FLICKER_COLUMNS = ["flicker_input", "flicker_denoised", "flicker_oidn", "flicker_oidn_same", "flicker_reference",
                   "psnr_history"]
LAST_N = 10
RECENT_ROWS = 100  # rows kept in memory for the summary's means over the last LAST_N frames
STRIP_MIN_PANEL = 192  # px: small frames are enlarged (nearest neighbour, whole factors) so that labels fit
PLOT_EVERY_S = 30.0
DEFAULT_OUT = Path("out") / "headless"


def columns_for(cfg: LiveConfig) -> list[str]:
    oidn_flicker = ["flicker_oidn", "flicker_oidn_same"] if "oidn" in cfg.compare else []
    flicker = ["flicker_input", "flicker_denoised"] + oidn_flicker + (
        ["flicker_reference"] if cfg.reference_spp > 0 else []) + (
        ["psnr_history"] if cfg.temporal and cfg.reference_spp > 0 else [])
    compared = [c for k in ("clean", "oidn") if k in cfg.compare for c in COMPARE_COLUMNS[k]]
    return BASE_COLUMNS + compared + EXTRA_COLUMNS + flicker


def to_png_array(img: torch.Tensor, exposure: float = 1.0) -> np.ndarray:
    """HWC linear -> tonemapped 8-bit RGB."""
    t = T(img.detach().float().cpu(), exposure).clamp(0, 1)
    return (t.numpy() * 255.0 + 0.5).astype(np.uint8)


def write_png(path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp)


def _images(r: FrameResult) -> list[tuple[str, torch.Tensor]]:
    """The frame's images in the strip's order: input (this frame's pair average; under --temporal the network read
    the histories), the networks, OIDN this frame, OIDN same samples, then the reference."""
    imgs = [("noisy", 0.5 * (r.pair.noisy_a + r.pair.noisy_b)), ("denoised", r.denoised)]
    for name, img in (("clean", r.clean), ("oidn", r.oidn), ("oidn_same", r.oidn_same), ("reference", r.reference)):
        if img is not None:
            imgs.append((name, img))
    return imgs


def save_frame_pngs(folder: Path, r: FrameResult, exposure: float) -> None:
    for name, img in _images(r):
        write_png(folder / f"frame_{r.frame:04d}_{name}.png", to_png_array(img, exposure))


def _label(name: str, r: FrameResult, spp: int | None, reference_spp: int | None) -> str:
    def db(v):
        return f" {v:.2f} dB" if finite(v) else ""

    return {"noisy": f"input 2x{spp} spp{db(r.psnr_input)}" if spp else f"input{db(r.psnr_input)}",
            "denoised": f"Noise2Noise{db(r.psnr_denoised)}",
            "clean": f"clean targets{db(r.psnr_clean_target)}",
            "oidn": f"OIDN this frame{db(r.psnr_oidn)}",
            "oidn_same": f"OIDN same samples{db(r.psnr_oidn_same)}",
            "reference": f"reference {reference_spp} spp" if reference_spp else "reference"}[name]


def save_strip(path: Path, r: FrameResult, exposure: float, spp: int | None = None,
               reference_spp: int | None = None) -> None:
    """Side by side, each panel labelled (with its PSNR against the reference):
    input | Noise2Noise (| clean targets) (| OIDN this frame) (| OIDN same samples) (| reference)."""
    from PIL import Image, ImageDraw, ImageFont

    panels = [(_label(name, r, spp, reference_spp), to_png_array(img, exposure)) for name, img in _images(r)]
    h, w = panels[0][1].shape[:2]
    scale = max(1, math.ceil(STRIP_MIN_PANEL / w))
    pw, ph = w * scale, h * scale
    try:
        font = ImageFont.load_default(size=max(10, min(16, pw // 14)))
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    bar, gap = font.getbbox("Ag")[3] + 6, 2
    strip = Image.new("RGB", (len(panels) * (pw + gap) - gap, ph + bar), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for i, (label, a) in enumerate(panels):
        x = i * (pw + gap)
        strip.paste(Image.fromarray(a).resize((pw, ph), Image.NEAREST), (x, bar))
        while len(label) > 4 and draw.textlength(label, font=font) > pw - 4:
            label = label[:-1]
        draw.text((x + 3, 3), label, fill=(255, 255, 255), font=font)
    with atomic_path(path) as tmp:
        strip.save(tmp)


def save_exr(path: Path, r: FrameResult) -> None:
    layers = {"": r.pair.noisy_a, "noisy_b": r.pair.noisy_b, "albedo": r.pair.albedo, "normal": r.pair.normal,
              "denoised": r.denoised}
    for name, img in (("reference", r.reference), ("oidn", r.oidn), ("oidn_same", r.oidn_same), ("clean", r.clean)):
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
    compared = [c for cols in COMPARE_COLUMNS.values() for c in cols]
    return {k: getattr(r, k) for k in set(BASE_COLUMNS + EXTRA_COLUMNS + compared + FLICKER_COLUMNS)}


def summarise(rows, frames: int | None = None) -> dict:
    """Means over the last LAST_N frames of `rows` (the recent rows; `frames`: how many there were in all): PSNRs
    over those of them that were evaluated (eval_every), times over all (reference_ms is then the reference's cost
    per frame, amortised)."""
    last = list(rows)[-LAST_N:]
    s = {"frames": len(rows) if frames is None else frames, "last_n": len(last),
         "evaluated_frames": [row["frame"] for row in last if finite(row.get("psnr_input"))]}
    for k in ("psnr_input", "psnr_input_a", "psnr_denoised", "psnr_oidn", "psnr_oidn_same", "psnr_clean_target",
              "reference_floor",
              "render_ms", "train_ms", "infer_ms", "reference_ms", "clean_target_ms", "oidn_ms", "loss",
              *FLICKER_COLUMNS):
        s[k] = finite_mean([row.get(k) for row in last], last=LAST_N)
    return s


def summary_line(s: dict) -> str:
    def db(k):
        return fmt(s[k], 2, " dB", missing="n/a")

    if not finite(s["psnr_input"]):
        text = f"last {s['last_n']} frames: no reference (--reference-spp 0), no PSNR"
    else:
        text = (f"frames {', '.join(str(f + 1) for f in s['evaluated_frames'])}: input (pair average) "
                f"{db('psnr_input')}, denoised {db('psnr_denoised')} ({s['psnr_denoised'] - s['psnr_input']:+.2f} dB)")
        if finite(s["psnr_oidn"]):
            text += f", OIDN this frame {db('psnr_oidn')}"
        if finite(s.get("psnr_oidn_same")):  # --temporal: OIDN on the histories the network reads
            text += f", OIDN same samples {db('psnr_oidn_same')}"
        if finite(s.get("psnr_history")):
            text += f", temporal histories (what the network reads) {db('psnr_history')}"
        if finite(s["psnr_clean_target"]):
            text += f", clean targets {db('psnr_clean_target')}"
        text += f"; reference {s.get('reference_spp', '?')} spp, its own noise floor {db('reference_floor')}"
    text += (f"; per frame: render {s['render_ms']:.0f} ms, train {s['train_ms']:.0f} ms, "
             f"infer {s['infer_ms']:.0f} ms")
    return text


def run_headless(cfg: LiveConfig, progress: bool = True, stream=None) -> dict:
    """Run the fly-through of `cfg.frames` frames and write every output; returns the summary.

    Ctrl-C or SIGTERM (KeyboardInterrupt; errors.Terminated) must end the run within 2 s: it stops the trainer
    threads (waiting at most 0.5 s), writes the checkpoint (when they stopped in time) and summary.json, and raises
    KeyboardInterrupt(" after N frames; results so far in DIR") for the caller's one line. metrics.csv already holds
    the frames' rows and psnr.png a recent plot; the plot, the strip and the PNGs are not redrawn then (each takes
    seconds on a busy CPU: together they would miss the 2 s).
    """
    stream = stream or sys.stdout  # looked up now: a default bound at import would outlive a redirected stdout
    out = Path(cfg.out) if cfg.out else DEFAULT_OUT
    t_start = time.monotonic()
    with interrupts_deferred():  # a Ctrl-C inside Mitsuba's import would abort the process (a second or two)
        choose_variant(cfg.variant)
    loop = LiveLoop(cfg)  # a bad scene fails here, before anything is written
    interrupted = False
    # Only the recent rows stay in memory (metrics.csv has them all): a long run's memory must not grow per frame.
    rows: collections.deque = collections.deque(maxlen=RECENT_ROWS)
    frames_done = 0
    last: FrameResult | None = None
    log = bar = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {**cfg.to_dict(), "variant_used": loop.variant,
                                          "device_used": str(loop.device), "threads": torch.get_num_threads(),
                                          "warm_start_used": loop.warm})
        log = MetricsLog(out / "metrics.csv", columns_for(cfg))
        snaps = snapshot_frames(cfg.frames, cfg.snapshots)
        title = (f"{loop.loaded.name}, {cfg.width}x{cfg.height}, {cfg.spp} spp, {cfg.iters_per_frame} it/frame, "
                 f"lr {cfg.lr:g}")
        last_plot = time.monotonic()
        bar = tqdm(range(cfg.frames), desc=f"n2n-live {loop.loaded.name}", unit="frame", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        for i in bar:
            # one frame: render pair -> train (thread or inline) -> denoise -> metrics
            r = loop.step(evaluate=True if i + 1 == cfg.frames else None)  # the last frame is always measured
            row = _row(r)
            log.log(row)
            rows.append(row)
            frames_done += 1
            last = r
            if i in snaps:
                save_frame_pngs(out / "frames", r, cfg.exposure)
            if r.psnr_input is not None:
                bar.set_postfix_str(f"in {r.psnr_input:.1f} dB, N2N {r.psnr_denoised:.1f} dB, loss {r.loss:.3g}",
                                    refresh=False)
            # a recent plot stays on disk if the run is interrupted (the first one also shows early that it works)
            if (i == 0 or time.monotonic() - last_plot > PLOT_EVERY_S) and i + 1 < cfg.frames:
                plot_psnr(out / "metrics.csv", out / "psnr.png", title=title)
                last_plot = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    except Exception as e:  # noqa: BLE001 - only a Ctrl-C that arrived inside a Mitsuba render is kept
        if not caused_by_interrupt(e):
            raise
        interrupted = True
    finally:
        if bar is not None:
            bar.close()  # the interrupt's line then starts on a line of its own
        stopped = loop.close(timeout=0.5 if interrupted else 2.0)
        if log is not None:
            log.close()
    # outputs from what was rendered (after Ctrl-C only the quick ones)
    if rows and not interrupted:
        plot_psnr(out / "metrics.csv", out / "psnr.png", title=title)
    if last is not None and not interrupted:
        save_strip(out / "last_frame_strip.png", last, cfg.exposure, cfg.spp, cfg.reference_spp)
        save_frame_pngs(out / "frames", last, cfg.exposure)
        save_exr(out / "last_frame.exr", last)
    if stopped and rows:
        loop.save(out / "network.pt", meta={"interrupted": interrupted})
    summary = summarise(rows, frames_done)
    summary.update(reference_spp=cfg.reference_spp, eval_every=cfg.eval_every, out=str(out),
                   interrupted=interrupted, seconds=time.monotonic() - t_start,
                   train_steps=last.train_steps if last else 0, skipped=last.skipped if last else 0)
    # NaN (no reference, no OIDN...) -> null: strict JSON readers reject NaN
    write_json(out / "summary.json", json_safe(summary))
    if interrupted:
        raise KeyboardInterrupt(f" after {frames_done} frame{'' if frames_done == 1 else 's'}; results so far in {out}")
    print(f"n2n-live: results in {out}/ (metrics.csv, psnr.png, frames/, last_frame_strip.png, last_frame.exr, "
          f"network.pt)", file=stream)
    print(f"n2n-live: {summary_line(summary)}", file=stream)
    return summary
