"""The viewer's command-line options, added to `n2n-live`'s parser by `add_arguments(parser)`.

Kept free of GLFW/OpenGL imports so that the headless command can build its parser on any machine.
"""
from __future__ import annotations

import argparse

from ..validate import integer, real, size
from .modes import MODES, SOURCES, parse_split


# Sizes and numbers go through the project's one set of checks (n2n_live.validate).
_size = size(64)
_positive_int = integer(1, 10**9)
_scale = real(0.0, 4.0, lo_open=True)


def _split(text: str) -> str:
    try:
        parse_split(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("viewer (used when a display is available)")
    g.add_argument("--exit-after-frames", type=_positive_int, default=None, metavar="N",
                   help="close the viewer after N frames (tests, benchmarks, screenshots); default: run until closed")
    g.add_argument("--screenshot", metavar="PNG", default=None,
                   help="when the viewer exits, save the window as PNG and the frame's HDR buffers (denoised, "
                        "noisy A/B, albedo, normal, reference) as a multi-layer EXR of the same name")
    g.add_argument("--screenshot-dir", metavar="DIR", default=None,
                   help="folder for F12 screenshots (default: out/screenshots)")
    g.add_argument("--render-scale", type=_scale, default=None, metavar="S",
                   help="render at S x the image area of the window, following window resizes "
                        "(default: the fixed --size, scaled to fit the window)")
    g.add_argument("--window-size", type=_size, default=(1280, 720), metavar="WxH",
                   help="initial window size (default 1280x720)")
    g.add_argument("--mode", choices=MODES, default="denoised",
                   help="initial display mode (keys 1-7 switch while running)")
    g.add_argument("--split", type=_split, default="noisy,denoised", metavar="LEFT,RIGHT",
                   help="what the split view compares, e.g. noisy,denoised or denoised,oidn_same "
                        f"({', '.join(SOURCES)}; oidn: OIDN on this frame's pair, oidn_same: on the "
                        "temporal histories the network reads)")
    g.add_argument("--keyframes", metavar="JSON", default=None,
                   help="play this recorded camera path (saved from the viewer's Camera panel)")
    g.add_argument("--still", action="store_true",
                   help="start with the camera standing still at the path's start (the progressive reference "
                        "accumulates) instead of playing the fly-through")
    g.add_argument("--pause-training", action="store_true", help="start with training paused (T resumes)")
    g.add_argument("--pace", action="store_true",
                   help="render a new frame only when the trainer has finished the previous frame's iterations "
                        "(every frame gets --iters-per-frame steps, as in the paper; the UI stays responsive). "
                        "Default: render continuously, the display never waits for training")
    g.add_argument("--stats-jsonl", metavar="PATH", default=None,
                   help="append one JSON line of timings and counters per viewer frame to PATH")
    return parser
