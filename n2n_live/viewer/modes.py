"""What the image area can show: display modes (keys 1-7) and the sources a split view compares."""
from __future__ import annotations

from dataclasses import dataclass

# How the shader turns a texture into colour.
KIND_RADIANCE, KIND_LINEAR, KIND_NORMAL, KIND_HEAT = 0, 1, 2, 3


@dataclass(frozen=True)
class Source:
    name: str  # texture / buffer name
    label: str
    kind: int


SOURCES = {
    s.name: s
    for s in (
        Source("denoised", "denoised", KIND_RADIANCE),
        Source("noisy", "noisy input", KIND_RADIANCE),
        Source("albedo", "albedo", KIND_LINEAR),
        Source("normal", "normal", KIND_NORMAL),
        Source("reference", "reference", KIND_RADIANCE),
        Source("error", "error (denoised)", KIND_HEAT),
        Source("error_noisy", "error (noisy)", KIND_HEAT),
        Source("oidn", "OIDN (this frame)", KIND_RADIANCE),  # on this frame's raw pair
        # on the two temporal histories the network reads (the same as "oidn" with temporal reuse off)
        Source("oidn_same", "OIDN (same samples)", KIND_RADIANCE),
    )
}
OIDN_SOURCES = ("oidn", "oidn_same")  # need pyoidn

# Display modes in key order: key 1 is MODES[0].
MODES = ("denoised", "noisy", "albedo", "normal", "reference", "error", "split")
MODE_LABELS = {
    "denoised": "1 denoised (average of the pair)",
    "noisy": "2 noisy input",
    "albedo": "3 albedo",
    "normal": "4 normal",
    "reference": "5 reference (progressive)",
    "error": "6 error heat-map vs reference",
    "split": "7 split view",
}


def parse_split(text: str) -> tuple[str, str]:
    """'noisy,denoised' -> ('noisy', 'denoised'); raises ValueError naming the valid sources."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or any(p not in SOURCES for p in parts):
        raise ValueError(f"split must be two of {', '.join(SOURCES)} separated by a comma, not {text!r}")
    return parts[0], parts[1]
