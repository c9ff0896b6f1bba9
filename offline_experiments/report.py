"""What an experiment leaves in its folder: table.md (in the form of Table 1), curves.png (PSNR vs iteration, as
Figure 1), grid.png (input / results / baseline / ground truth, as Figures 2-4), levels.png (Figure 5, impulse
sweep only), config.json and stats.jsonl (written as the run goes). Every file is written atomically."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from n2n_live.io_utils import atomic_path, write_json, write_text
from n2n_live.numbers import fmt

# The paper's names for the eval sets (CBSD68 stands in for BSD300's test images).
SET_NAMES = {"kodak": "Kodak", "cbsd68": "BSD300 (CBSD68)", "bsd300": "BSD300", "set14": "Set14"}


@dataclass
class Column:
    """One column of the table: a trained network, a baseline or the corrupted input."""
    label: str
    psnr: dict[str, list[float]]  # row (eval set) -> PSNR of each image
    kind: str = "network"  # network | baseline | input

    def row_mean(self, row: str) -> float | None:
        v = self.psnr.get(row)
        return sum(v) / len(v) if v else None


@dataclass
class Result:
    experiment: str
    title: str
    rows: list[str]
    columns: list[Column]
    average_row: bool = True
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    curve_refs: dict[str, float] = field(default_factory=dict)  # horizontal lines (input, baseline)
    curve_set: str = ""
    grid: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (caption, (C, H, W)); last: truth
    grid_name: str = ""
    paper: dict[str, dict[str, float]] = field(default_factory=dict)  # row -> column label -> paper's dB
    paper_source: str = ""
    levels: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # Figure 5: label -> (p, dB)
    levels_ylabel: str = "PSNR relative to clean targets (dB)"
    notes: list[str] = field(default_factory=list)
    appendix: list[str] = field(default_factory=list)  # further markdown sections of table.md


def display_name(row: str) -> str:
    return SET_NAMES.get(row.lower(), row)


def _cell(v: float | None) -> str:
    return fmt(v, 2, missing="—")


def table_markdown(result: Result) -> str:
    """Rows: eval sets and their average (the mean of the per-set means, as in Table 1); columns: networks,
    baselines, input. PSNR in dB."""
    cols = result.columns
    lines = [f"# {result.title}", "", "PSNR (dB) on [0, 1]-clipped images; each cell is the mean over the set's images.",
             "", "| data set | images | " + " | ".join(c.label for c in cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    sizes = {row: max((len(c.psnr.get(row, ())) for c in cols), default=0) for row in result.rows}
    for row in result.rows:
        lines.append(f"| {display_name(row)} | {sizes[row]} | " + " | ".join(_cell(c.row_mean(row)) for c in cols) + " |")
    if result.average_row and len(result.rows) > 1:
        avgs = []
        for c in cols:
            means = [m for r in result.rows if (m := c.row_mean(r)) is not None]
            avgs.append(sum(means) / len(means) if means else None)
        lines.append(f"| **Average** | {sum(sizes.values())} | " + " | ".join(f"**{_cell(a)}**" for a in avgs) + " |")
    counts = {c.label: sum(len(v) for v in c.psnr.values()) for c in cols}
    lines += ["", "Images evaluated per column: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "."]
    if result.paper:
        labels = list(dict.fromkeys(k for row in result.paper.values() for k in row))
        lines += ["", f"The paper's numbers ({result.paper_source}):", "",
                  "| data set | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        for row, vals in result.paper.items():
            lines.append(f"| {row} | " + " | ".join(_cell(vals.get(k)) for k in labels) + " |")
    if result.notes:
        lines += [""] + [f"- {n}" for n in result.notes]
    for section in result.appendix:
        lines += ["", section.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(result: Result, path: Path) -> None:
    """PSNR vs training iteration, one line per network (Figure 1), dashed lines for input and baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, pts in result.curves.items():
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=2.5, lw=1.4, label=label)
    for i, (label, v) in enumerate(result.curve_refs.items()):
        ax.axhline(v, ls="--", lw=1.0, color=f"C{(len(result.curves) + i) % 10}", label=label)
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"PSNR (dB), {display_name(result.curve_set)}")
    ax.set_title(result.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(result.curves) > 6 else 1)
    _savefig(fig, path)


def _panel(img: torch.Tensor, size: int = 256):
    h, w = img.shape[-2:]
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2, (w - cw) // 2
    a = img[..., top:top + ch, left:left + cw].clamp(0, 1)
    if a.shape[0] == 1:
        a = a.expand(3, -1, -1)
    return a.permute(1, 2, 0).numpy()


def plot_grid(result: Result, path: Path) -> None:
    """The same crop of one eval image through every method, ground truth last (Figures 2-4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.grid)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 3.0))
    for ax, (caption, img) in zip(axes if n > 1 else [axes], result.grid):
        ax.imshow(_panel(img), interpolation="nearest")
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{result.title}: {result.grid_name}", fontsize=9)
    _savefig(fig, path)


def plot_levels(result: Result, path: Path) -> None:
    """Figure 5: PSNR of noisy-target training relative to clean targets, against the corruption level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for label, pts in result.levels.items():
        ax.plot([100 * p for p, _ in pts], [d for _, d in pts], marker="o", label=label)
    if "relative" in result.levels_ylabel:
        ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("corrupted pixels (%)")
    ax.set_ylabel(result.levels_ylabel)
    ax.set_title(result.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _savefig(fig, path)


def write_report(result: Result, out: Path) -> list[Path]:
    """Write table.md, curves.png, grid.png (and levels.png); return the paths written."""
    out = Path(out)
    written = [out / "table.md"]
    write_text(written[0], table_markdown(result))
    if result.curves:
        plot_curves(result, out / "curves.png")
        written.append(out / "curves.png")
    if result.grid:
        plot_grid(result, out / "grid.png")
        written.append(out / "grid.png")
    if result.levels:
        plot_levels(result, out / "levels.png")
        written.append(out / "levels.png")
    return written


def write_config(out: Path, config: dict) -> None:
    write_json(Path(out) / "config.json", config)
