"""Small argument parsers shared by the commands."""
from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """'S' -> (S, S); 'WxH' -> (W, H). Positive integers only."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"size must be S or WxH with positive integers, not {text!r}")
    return parts[0], parts[1]
