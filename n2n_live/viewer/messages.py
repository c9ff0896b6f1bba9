"""The viewer's message log: info, warning and error lines for the Messages panel and the banner over the image."""
from __future__ import annotations

import sys
import time
from collections import deque


class Messages:
    """Recent info/warning/error lines for the UI."""

    def __init__(self, keep: int = 50):
        self.items: deque[tuple[float, str, str]] = deque(maxlen=keep)

    def _add(self, level: str, text: str) -> None:
        self.items.append((time.monotonic(), level, text))
        if level != "info":  # also on the terminal: a log survives the window
            print(f"n2n-live: {'error' if level == 'error' else 'warning'}: {text}", file=sys.stderr, flush=True)

    def info(self, text: str) -> None:
        self._add("info", text)

    def warn(self, text: str) -> None:
        self._add("warn", text)

    def error(self, text: str) -> None:
        self._add("error", text)

    def last_error(self, within_s: float) -> str | None:
        now = time.monotonic()
        for t, level, text in reversed(self.items):
            if level == "error" and now - t <= within_s:
                return text
        return None
