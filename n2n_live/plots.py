"""psnr.png: PSNR over the frames of a fly-through, like the paper's Figure 8 (input, noisy targets, clean
targets) plus OIDN; and the training loss below it."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from .io_utils import atomic_path  # noqa: E402
from .metrics_log import read_metrics  # noqa: E402

CURVES = (  # column, label, colour
    ("psnr_input", "input (pair average, 2 x 8 spp)", "tab:gray"),
    ("psnr_input_a", "input image A (8 spp)", "lightgray"),
    ("psnr_denoised", "noisy targets (Noise2Noise)", "tab:red"),
    ("psnr_clean_target", "clean targets", "tab:blue"),
    ("psnr_oidn", "OIDN", "tab:green"),
)


def _has(values) -> bool:
    return any(not math.isnan(v) for v in values)


def _finite(xs, ys) -> tuple[list, list]:
    pts = [(x, y) for x, y in zip(xs, ys) if not math.isnan(y)]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_psnr(csv_path, png_path, title: str | None = None) -> None:
    """Read metrics.csv and write the PSNR plot (and the loss) atomically."""
    m = read_metrics(csv_path)
    frames = [f + 1 for f in m.get("frame", [])]  # frames rendered so far: evaluation happens at 10, 20, ...
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    drew = False
    for col, label, colour in CURVES:
        if col in m and _has(m[col]):
            # references are rendered only every eval_every frames: draw the measured points, joined
            xs, ys = _finite(frames, m[col])
            ax.plot(xs, ys, label=label, color=colour, linewidth=1.2, marker="o" if len(xs) < 40 else None,
                    markersize=3)
            drew = True
    if "reference_floor" in m and _has(m["reference_floor"]):
        # the reference's own PSNR against the truth: figures near it are capped by the reference, not the method
        xs, ys = _finite(frames, m["reference_floor"])
        ax.plot(xs, ys, "k--", linewidth=1.0, label="reference's own noise floor")
    ax.set_ylabel("PSNR (dB, tonemapped)")
    ax.set_title(title or "Online training during a fly-through")
    ax.grid(True, alpha=0.3)
    if drew:
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no reference: no PSNR (set --reference-spp)", ha="center", transform=ax.transAxes)
    if "loss" in m and _has(m["loss"]):
        ax2.semilogy(frames, m["loss"], color="tab:red", linewidth=1.0)
    ax2.set_ylabel("L_HDR")
    ax2.set_xlabel("frames rendered")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
