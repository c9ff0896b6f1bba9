"""The render size policy: which size the live frames are rendered at, and when the next one may start.

    auto    (default) the preset's target frame rate: after each live frame the ladder controller (autosize.py)
            may move the size, from the frame's own work (live frame + UI; not the interval, which the cap below
            stretches); not while paced (the trainer sets the pace then). Frames start at most target-fps apart:
            a faster display would only take the CPU (or GPU) from the trainer.
    fixed   --size, or the Render size panel: the size stays until the user sets another one.
    window  --render-scale S: S x the window's image area, once the window size has held RESIZE_SETTLE_S (a
            drag resizes every UI frame, and every distinct size compiles kernels).

The policy only decides; the viewer applies a new size (`Viewer.set_render_size`: LiveLoop.resize, the still
camera's streams start over) and tells the policy with `applied`.
"""
from __future__ import annotations

from .autosize import AutoSize

AUTO, FIXED, WINDOW = "auto", "fixed", "window"

# Target frame rate and the bounds of the long side per preset (config.PRESETS): a CPU frame is dominated by the
# path tracer and the U-Net, both proportional to pixels; on a GPU the paper's 512x512 is the middle of the range.
TARGETS = {"cpu": (3.0, 64, 256), "gpu": (30.0, 256, 1024)}
RESIZE_SETTLE_S = 0.3  # window mode: wait until the window size has held this long


class SizePolicy:
    """`mode` (AUTO, FIXED or WINDOW) and `size`, the (width, height) the loop renders at now."""

    def __init__(self, preset: str, size: tuple[int, int], pinned: bool = False, scale: float | None = None):
        self.size = (int(size[0]), int(size[1]))
        self.mode = WINDOW if scale is not None else FIXED if pinned else AUTO
        self.scale = float(scale or 0.5)  # window mode: render size / image area
        fps, lo, hi = TARGETS.get(preset, TARGETS["cpu"])
        self.auto = AutoSize(fps, lo, hi, self.size)
        self._wanted, self._since = None, 0.0  # window mode: the size the window asks for, and since when
        self._last_start = None  # when the last live frame's UI frame began (the auto mode's frame-rate cap)

    @property
    def is_auto(self) -> bool:
        return self.mode == AUTO

    def choose(self, mode: str) -> None:
        """Switch to AUTO, FIXED or WINDOW; auto continues from the current size with fresh frame times."""
        if mode == AUTO and self.mode != AUTO:
            self.auto.restart(self.size)
        self.mode = mode

    def applied(self, size: tuple[int, int]) -> None:
        """The loop renders at `size` from now on."""
        self.size = (int(size[0]), int(size[1]))
        self.hold()

    def hold(self) -> None:
        """The next frames compile kernels (a new size, once per distinct size, or a new scene): do not time them."""
        self.auto.hold()

    def next_frame_at(self) -> float | None:
        """When the auto mode's frame-rate cap lets the next live frame start; None: no cap."""
        if self.mode != AUTO or self._last_start is None:
            return None
        return self._last_start + 1.0 / self.auto.target_fps

    def frame_due(self, now: float) -> bool:
        due = self.next_frame_at()
        return due is None or now >= due

    def after_frame(self, start: float, work_ms: float, paced: bool) -> tuple[int, int] | None:
        """A live frame's UI frame began at `start` and took `work_ms`; returns a size to move to, or None."""
        self._last_start = start
        if self.mode != AUTO or paced:
            return None
        return self.auto.update(work_ms)

    def follow(self, area_w: float, area_h: float, now: float) -> tuple[int, int] | None:
        """Window mode: the image area x scale once the window's size has settled and differs; else None."""
        if self.mode != WINDOW:
            return None
        want = (max(8, int(area_w * self.scale)), max(8, int(area_h * self.scale)))
        if want != self._wanted:
            self._wanted, self._since = want, now
        elif want != self.size and now - self._since >= RESIZE_SETTLE_S:
            return want
        return None

    def label(self) -> str:
        """How the size is chosen, for the status line."""
        if self.mode == AUTO:
            return f"auto {self.auto.target_fps:g} fps"
        return "window x scale" if self.mode == WINDOW else "pinned"
