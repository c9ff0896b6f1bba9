"""Per-frame metrics as CSV: one row per frame, flushed as it is written (an interrupted run keeps its rows)."""
from __future__ import annotations

import csv
from pathlib import Path

from ..numbers import fmt


class MetricsLog:
    """`MetricsLog(path, columns)`: writes the header now and one flushed row per `log(row)`; unknown keys are
    ignored, missing ones left empty. Use as a context manager or call `close()`."""

    def __init__(self, path, columns):
        self.path = Path(path)
        self.columns = list(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w", newline="")
        self._w = csv.writer(self._f)
        self._w.writerow(self.columns)
        self._f.flush()

    def log(self, row: dict) -> None:
        self._w.writerow([fmt(row.get(c), 4, missing="") for c in self.columns])
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path, columns=None) -> dict[str, list[float]]:
    """{column: values} with empty cells as NaN; only `columns` (those present) when given. Read row by row, so
    memory follows the columns kept, not the file's text (a 10,000-frame run is replotted every minute)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return {}
        keep = [(i, h) for i, h in enumerate(header) if columns is None or h in columns]
        cols: dict[str, list[float]] = {h: [] for _, h in keep}
        for r in reader:
            if len(r) != len(header):
                continue  # a row cut short by a crash
            for i, h in keep:
                v = r[i]
                try:
                    cols[h].append(float(v) if v != "" else float("nan"))
                except ValueError:
                    cols[h].append(float("nan"))
    return cols
