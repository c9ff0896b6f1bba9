"""Numbers that may be missing (None, NaN or Inf: a frame not evaluated, a skipped step): one test, one mean, one
JSON form and one formatter for every table, log and panel."""
from __future__ import annotations

import math


def finite(v) -> bool:
    """A real number that is neither NaN nor +-Inf (None and strings are not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def finite_mean(values, last: int | None = None) -> float:
    """Mean of the finite values (of the last `last` finite ones when given); NaN when there are none."""
    vals = [float(v) for v in values if finite(v)]
    if last is not None:
        vals = vals[-last:]
    return sum(vals) / len(vals) if vals else float("nan")


def json_safe(obj):
    """`obj` with every NaN/Inf float replaced by None (JSON has no NaN), through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def fmt(v, digits: int = 2, unit: str = "", missing: str = "-") -> str:
    """`v` with `digits` decimals and `unit`; `missing` for None, NaN and Inf; other values (ints, strings) as str."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return missing
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"
