"""psnr.png: PSNR over the frames of a fly-through, like the paper's Figure 8 (input, noisy targets, clean
targets) plus OIDN on this frame's raw pair and, under temporal reuse, OIDN on the same samples as the network (the
two histories, whose own PSNR is drawn too); the training loss and the flicker below it."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from ..io_utils import atomic_path  # noqa: E402
from ..numbers import finite  # noqa: E402
from .metrics_log import read_metrics  # noqa: E402

MAX_POINTS = 2000  # per curve; more than an 800-pixel-wide plot can show
CURVES = (  # column, label, colour
    ("psnr_input", "input (pair average, 2 x 8 spp)", "tab:gray"),
    ("psnr_input_a", "input image A (8 spp)", "lightgray"),
    ("psnr_denoised", "noisy targets (Noise2Noise)", "tab:red"),
    ("psnr_clean_target", "clean targets", "tab:blue"),
    ("psnr_oidn", "OIDN, this frame (raw pair)", "tab:green"),
    ("psnr_oidn_same", "OIDN, same samples (temporal histories)", "tab:purple"),
    ("psnr_history", "temporal histories (pair average)", "tab:olive"),
)
FLICKER = (  # stability.py: RMS of T(X_t) - T(reprojected X_t-1); lower is steadier
    ("flicker_input", "input", "tab:gray"),
    ("flicker_denoised", "Noise2Noise", "tab:red"),
    ("flicker_oidn", "OIDN, this frame", "tab:green"),
    ("flicker_oidn_same", "OIDN, same samples", "tab:purple"),  # only where two frames in a row were evaluated
    ("flicker_reference", "reference (floor)", "black"),
)


def _has(values) -> bool:
    return any(finite(v) for v in values)


def _finite_points(xs, ys) -> tuple[list, list]:
    """The (x, y) points whose y is a number (frames without a reference have none), at most MAX_POINTS of them:
    a long run's per-frame curves are thinned to what an 800-pixel-wide plot can show, so that replotting costs the
    same memory at frame 100,000 as at frame 2,000."""
    pts = [(x, y) for x, y in zip(xs, ys) if finite(y)]
    step = max(1, -(-len(pts) // MAX_POINTS))
    pts = pts[::step] if step == 1 or pts[-1:] == pts[::step][-1:] else pts[::step] + pts[-1:]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_psnr(csv_path, png_path, title: str | None = None) -> None:
    """Read metrics.csv and write the PSNR plot (and the loss) atomically."""
    m = read_metrics(csv_path, {"frame", "loss", "reference_floor", *(c for c, _, _ in CURVES),
                                *(c for c, _, _ in FLICKER)})
    frames = [f + 1 for f in m.get("frame", [])]  # frames rendered so far: evaluation happens at 10, 20, ...
    flicker = [(c, label, colour) for c, label, colour in FLICKER if c in m and _has(m[c])]
    rows = 3 if flicker else 2
    fig, axes = plt.subplots(rows, 1, figsize=(8, 6 + 2 * (rows - 2)), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1, 1.3][:rows]})
    ax, ax2 = axes[0], axes[1]
    drew = False
    for col, label, colour in CURVES:
        if col in m and _has(m[col]):
            # references are rendered only every eval_every frames: draw the measured points, joined
            xs, ys = _finite_points(frames, m[col])
            ax.plot(xs, ys, label=label, color=colour, linewidth=1.2, marker="o" if len(xs) < 40 else None,
                    markersize=3)
            drew = True
    if "reference_floor" in m and _has(m["reference_floor"]):
        # the reference's own PSNR against the truth: figures near it are capped by the reference, not the method
        xs, ys = _finite_points(frames, m["reference_floor"])
        ax.plot(xs, ys, "k--", linewidth=1.0, label="reference's own noise floor")
    ax.set_ylabel("PSNR (dB, tonemapped)")
    ax.set_title(title or "Online training during a fly-through")
    ax.grid(True, alpha=0.3)
    if drew:
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no reference: no PSNR (set --reference-spp)", ha="center", transform=ax.transAxes)
    if "loss" in m and _has(m["loss"]):
        ax2.semilogy(*_finite_points(frames, m["loss"]), color="tab:red", linewidth=1.0)
    ax2.set_ylabel("L_HDR")
    ax2.grid(True, alpha=0.3)
    if flicker:  # every frame, no reference needed (the reference's own only where two in a row exist)
        ax3 = axes[2]
        for col, label, colour in flicker:
            xs, ys = _finite_points(frames, m[col])
            ax3.plot(xs, ys, label=label, color=colour, linewidth=1.0, marker="o" if len(xs) < 40 else None,
                     markersize=2)
        ax3.set_ylabel("flicker (RMS, T)")
        ax3.grid(True, alpha=0.3)
        ax3.legend(loc="upper right", fontsize="small", ncol=min(len(flicker), 3))
    axes[-1].set_xlabel("frames rendered")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
