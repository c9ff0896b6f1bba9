"""Per-frame numbers for the plots, the exit summary and (optionally) a stats.jsonl log, one line per frame."""
from __future__ import annotations

import json
import statistics
from collections import deque

import numpy as np

from ..numbers import json_safe

KEEP = 2000  # frames kept for the plots


class FrameHistory:
    def __init__(self, jsonl_path=None):
        self.rows: deque[dict] = deque(maxlen=KEEP)
        self.frame_ms: list[float] = []  # interval between consecutive live frames, for fps and the summary
        self._file = open(jsonl_path, "a", buffering=1) if jsonl_path else None  # line-buffered: tests tail it

    def add(self, row: dict, rendered: bool) -> None:
        row = json_safe(row)  # NaN/Inf -> None: valid JSON, and the plots and summary skip it
        self.rows.append(row)
        if rendered and row.get("frame_ms") is not None:
            self.frame_ms.append(row["frame_ms"])
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(frame numbers, values) of the rows where `key` has a value, as float64 arrays for ImPlot."""
        pts = [(r["frame"], r[key]) for r in self.rows if r.get(key) is not None]
        if not pts:
            return np.zeros(0), np.zeros(0)
        a = np.asarray(pts, dtype=np.float64)
        return np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(a[:, 1])

    def recent_fps(self, n: int = 10) -> float | None:
        """Live frames per second over the last n rendered frames."""
        ms = self.frame_ms[-n:]
        return 1000.0 / statistics.mean(ms) if ms else None

    def summary(self, skip: int = 5) -> dict | None:
        """Frame time (interval between live frames) statistics, skipping the first `skip` (JIT, warm-up)."""
        ms = self.frame_ms[skip:] if len(self.frame_ms) > skip else self.frame_ms
        if not ms:
            return None
        keys = ("render_ms", "train_ms", "infer_ms")
        rows = [r for r in self.rows if r.get("frame_ms") is not None]
        rows = rows[skip:] if len(rows) > skip else rows
        out = {"frames": len(self.frame_ms), "mean_ms": statistics.mean(ms), "median_ms": statistics.median(ms)}
        for k in keys:
            vals = [r[k] for r in rows if r.get(k) is not None]
            out[k] = statistics.median(vals) if vals else None
        # training steps per second over the same frames (the trainer runs in its own thread, at its own pace)
        timed = [r for r in rows if r.get("t") is not None and r.get("train_steps") is not None]
        out["steps_per_s"] = None
        if len(timed) >= 2 and timed[-1]["t"] > timed[0]["t"] and timed[-1]["train_steps"] >= timed[0]["train_steps"]:
            out["steps_per_s"] = (timed[-1]["train_steps"] - timed[0]["train_steps"]) / (timed[-1]["t"] - timed[0]["t"])
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RateMeter:
    """Events per second of a growing counter (the trainer's step count) over the last `span_s` seconds."""

    def __init__(self, span_s: float = 5.0):
        self.span_s = float(span_s)
        self._points: deque[tuple[float, int]] = deque()

    def add(self, t: float, count: int) -> None:
        if self._points and count < self._points[-1][1]:  # the counter restarted (network reset): so does the rate
            self._points.clear()
        self._points.append((float(t), int(count)))
        while len(self._points) > 2 and t - self._points[1][0] >= self.span_s:
            self._points.popleft()

    def rate(self) -> float | None:
        """Per second over the kept span; None until two points at least 0.5 s apart exist."""
        if len(self._points) < 2:
            return None
        (t0, c0), (t1, c1) = self._points[0], self._points[-1]
        return (c1 - c0) / (t1 - t0) if t1 - t0 >= 0.5 else None
