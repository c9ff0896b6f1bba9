"""Dynamic resolution: the render size that holds a target frame rate, chosen from a fixed ladder of sizes.

Every distinct film size makes Dr.Jit compile the path tracer's kernels once (seconds on a CPU; a size seen before
comes from the kernel cache). So sizes come from a short ladder and the controller moves along it with hysteresis:
a size is compiled at most once per run however often the controller returns to it. The display scales the image
to the window whatever the size; training continues across sizes (crops are clamped to the frame), only the still
camera's accumulation starts over. Which size mode is active, and when a frame is due: size_policy.py.

    frame times at this size (after `settle` frames: the first frame at a new size compiles)
      -> median of the last `window` -> predicted time at the other rungs (proportional to pixels)
      -> down while the median is above target x (1 + HYSTERESIS); up when the next rung is predicted below
         target x (1 - HYSTERESIS); at most `max_rungs` rungs per decision
"""
from __future__ import annotations

import statistics

# Long side of the render, pixels. Steps of 12-25 %: fine enough to sit close to the target, few enough to compile.
LADDER = (48, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 288, 320, 384, 448, 512, 576, 640, 768, 896, 1024)
HYSTERESIS = 0.1


def size_for(long_side: int, aspect: float) -> tuple[int, int]:
    """(width, height) with the longer of the two = `long_side` and height / width = `aspect`; sides multiples of 8."""
    if aspect <= 1.0:
        w, h = long_side, max(8, int(round(long_side * aspect / 8.0)) * 8)
    else:
        w, h = max(8, int(round(long_side / aspect / 8.0)) * 8), long_side
    return w, h


class AutoSize:
    """Proposes render sizes that hold `target_fps`; feed it one live frame's duration at a time (`update`)."""

    def __init__(self, target_fps: float, min_long: int, max_long: int, start: tuple[int, int],
                 settle: int = 3, window: int = 5, max_rungs: int = 2):
        self.target_fps = float(target_fps)
        self.rungs = [s for s in LADDER if min_long <= s <= max_long] or [max(min_long, min(max_long, 128))]
        self.settle, self.window, self.max_rungs = int(settle), int(window), int(max_rungs)
        self.sizes_used: set[tuple[int, int]] = set()
        self._times: list[float] = []
        self.restart(start)

    def restart(self, size: tuple[int, int]) -> None:
        """Continue from `size` (its aspect, the nearest rung), with fresh frame times."""
        w, h = int(size[0]), int(size[1])
        self.aspect = h / max(w, 1)
        self.index = min(range(len(self.rungs)), key=lambda i: abs(self.rungs[i] - max(w, h)))
        self.hold()

    @property
    def size(self) -> tuple[int, int]:
        return size_for(self.rungs[self.index], self.aspect)

    @property
    def bounds(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return size_for(self.rungs[0], self.aspect), size_for(self.rungs[-1], self.aspect)

    def hold(self) -> None:
        """Forget the frame times so far and skip the next `settle` frames (a new size or scene compiles)."""
        self._times.clear()
        self._skip = self.settle

    def update(self, frame_ms: float | None) -> tuple[int, int] | None:
        """One live frame took `frame_ms`; returns a new (width, height) to render at, or None to stay."""
        if frame_ms is None or not frame_ms > 0:
            return None
        if self._skip > 0:
            self._skip -= 1
            return None
        self._times.append(float(frame_ms))
        if len(self._times) < self.window:
            return None
        median = statistics.median(self._times[-self.window:])
        target_ms = 1000.0 / self.target_fps
        here = self.rungs[self.index] ** 2
        new = self.index
        if median > target_ms * (1.0 + HYSTERESIS):
            while new > 0 and self.index - new < self.max_rungs and median * self.rungs[new] ** 2 / here > target_ms:
                new -= 1
        else:
            while (new + 1 < len(self.rungs) and new - self.index < self.max_rungs
                   and median * self.rungs[new + 1] ** 2 / here < target_ms * (1.0 - HYSTERESIS)):
                new += 1
        if new == self.index:
            self._times = self._times[-self.window:]
            return None
        self.index = new
        self.hold()
        self.sizes_used.add(self.size)
        return self.size
