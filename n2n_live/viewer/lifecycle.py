"""The viewer process from the window opening to the exit, and a shutdown within 2 s of the last frame.

    Window -> a "loading" frame -> LiveLoop(cfg) -> the viewer's frames (Ctrl-C or SIGTERM: leave at the next frame
    boundary) -> leave (window closed, Esc, Ctrl-C, SIGTERM, --exit-after-frames) -> the trainers asked to stop ->
    viewer and window closed -> the trainers' step in flight waited for, at most what is left of STOP_BUDGET_S ->
    exit code (Ctrl-C 130, SIGTERM 143)

A training step cannot be interrupted: when one outlives the budget, the process ends at once (`os._exit`; the
trainer is a daemon thread) instead of finalising the interpreter while that thread is inside a torch operation,
which crashes.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time

from ..errors import EXIT_INTERRUPTED, interrupt_exit_code, interrupted_line, interrupts_deferred, note_sigterm
from .window import Window

STOP_BUDGET_S = 1.5  # from leaving the loop to returning: window teardown + the trainer's step in flight


class Lifetime:
    """Owns the window and the live loop: `with Lifetime(cfg, window_size) as life: ...`, then `life.exit(code)`."""

    def __init__(self, cfg, window_size: tuple[int, int]):
        from renderer.variant import choose_variant

        from ..live.loop import LiveLoop  # imports torch/Mitsuba: after argument parsing

        self.window = Window(*window_size, title=f"n2n-live: {cfg.scene}")
        self.window.show_text(f"loading {cfg.scene} ...")  # loading and compiling take seconds on a CPU
        try:
            with interrupts_deferred():  # a Ctrl-C inside Mitsuba's import would abort the process (a second or two)
                choose_variant(cfg.variant)
            self.loop = LiveLoop(cfg)
        except BaseException:
            self.window.close()
            raise
        self.viewer = None
        self.stopped = True  # every trainer thread ended within the budget
        self.closed_ms = None  # from leaving the frame loop to everything closed
        self._previous_handlers = {}  # signal -> the handler before attach()

    def __enter__(self) -> Lifetime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def attach(self, viewer):
        """Close `viewer` with the rest. From now on Ctrl-C and SIGTERM end its loop at the next frame boundary (a
        KeyboardInterrupt raised inside Mitsuba or a GLFW callback could be swallowed there); a second one
        interrupts at once. (Before, while the scene loads, both raise KeyboardInterrupt: errors.exit_on_user_error.)
        A signal the process ignores (SIGINT in a background job, SIGTERM by a parent's choice) stays ignored."""
        self.viewer = viewer
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                if signum == signal.SIGTERM:
                    note_sigterm()  # exit 143 instead of 130
                if viewer.interrupted:
                    raise KeyboardInterrupt
                viewer.interrupted = viewer.quit = True

            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) != signal.SIG_IGN:
                    self._previous_handlers[sig] = signal.signal(sig, handler)
        return viewer

    def close(self) -> None:
        """Ask the trainers to stop first, so that their step in flight ends while the window goes away, then close
        the viewer and the window and wait for the trainers, at most what is left of the budget."""
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous)
        self._previous_handlers = {}
        t0 = time.perf_counter()
        for t in self.loop.trainers:
            t.request_stop()
        try:
            if self.viewer is not None:
                self.viewer.close()
            self.window.close()
        finally:
            self.stopped = self.loop.close(timeout=max(0.1, STOP_BUDGET_S - (time.perf_counter() - t0)))
        # the process ends next: keep the millions of objects torch and Mitsuba made out of the exit's collection
        gc.freeze()
        self.closed_ms = (time.perf_counter() - t0) * 1000.0

    def exit(self, code: int, message: str | None = None) -> int:
        """Leave the CLI's way: 0 returns 0, 130 (interrupted) raises KeyboardInterrupt (the CLI says "interrupted"
        and exits 130, or 143 after SIGTERM), another code prints `message` and raises SystemExit. At once, with
        `message`, when a trainer outlived the budget (everything the viewer writes is closed by then)."""
        interrupted = code == EXIT_INTERRUPTED
        if interrupted:
            code, message = interrupt_exit_code(), interrupted_line("n2n-live")
        if not self.stopped:
            if message:
                print(message, file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        if interrupted:
            raise KeyboardInterrupt
        if code:
            print(message, file=sys.stderr)
            raise SystemExit(code)
        return 0
