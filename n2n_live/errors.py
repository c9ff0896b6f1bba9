"""User-facing errors: one line that names the problem and the file; CLIs exit with code 2.

Interrupts: Ctrl-C (SIGINT) and SIGTERM (what `timeout`, `kill`, systemd and cluster schedulers send) end every
command the same way: what was done stays on disk (all writes are atomic; n2n-live keeps network.pt, summary.json
and metrics.csv), one line "PROG: interrupted" (SIGTERM: "PROG: interrupted (SIGTERM)"), and the shell's code for
the signal: 130 after Ctrl-C, 143 after SIGTERM (128 + the signal's number, what a shell reports for a process the
signal killed, so a script or scheduler still tells the two apart).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager


class UserError(ValueError):
    """A mistake in the user's input (bad file, bad option). Shown as one line, never as a traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: every `except KeyboardInterrupt` that keeps what was
    done (the headless run, the viewer) handles both alike."""


EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

_sigterm_received = False  # this command's interrupt came from SIGTERM (the exit code and the line say so)
_warned: set = set()  # keys of the warnings this process has printed


def note_sigterm() -> None:
    """Record that SIGTERM arrived; for a signal handler of its own (the viewer's) that stops at a frame boundary."""
    global _sigterm_received
    _sigterm_received = True


def interrupt_exit_code() -> int:
    return EXIT_TERMINATED if _sigterm_received else EXIT_INTERRUPTED


def interrupted_line(prog: str, detail: str = "") -> str:
    """The one line an interrupted command prints; `detail` follows (" after 12 frames; results so far in out")."""
    return f"{prog}: interrupted{' (SIGTERM)' if _sigterm_received else ''}{detail}"


def exit_interrupted(prog: str, detail: str = "", at_once: bool = False):
    """Print the interrupt's one line and exit with its code; `at_once`: skip the interpreter's teardown (unloading
    torch and Mitsuba takes seconds; the caller has written and closed everything)."""
    print(interrupted_line(prog, detail), file=sys.stderr)
    if at_once:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(interrupt_exit_code())
    sys.exit(interrupt_exit_code())


def _raise_terminated(signum, frame):
    note_sigterm()
    raise Terminated


@contextmanager
def sigterm_as_ctrl_c():
    """Inside, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread, as Ctrl-C does. Installed only
    from the main thread and only over the default action: a parent that ignores SIGTERM, or a program embedding
    the command with a handler of its own, keeps its choice."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupts_deferred():
    """Inside, Ctrl-C and SIGTERM are held back and raised (KeyboardInterrupt, Terminated) when the block ends: for
    native start-up code that aborts the whole process when a KeyboardInterrupt arrives inside it (Mitsuba's import:
    "terminate called after throwing an instance of 'nanobind::python_error'", exit -6). Only handlers that would
    raise are replaced: an ignored signal stays ignored, a default SIGTERM still ends the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    raising = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_terminated}
    previous = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
                for sig, handler in raising.items() if signal.getsignal(sig) is handler}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signal.SIGTERM in held:
        note_sigterm()
        raise Terminated
    if held:
        raise KeyboardInterrupt


def quiet_startup_interrupts(prog: str) -> None:
    """Ctrl-C before the command's `main` runs (while torch imports, a second or more) ends quietly too: one line,
    exit 130, no traceback. Call at the top of a command's module, before its heavy imports: an uncaught
    KeyboardInterrupt reaches sys.excepthook; every other exception keeps the previous hook."""
    previous = sys.excepthook
    if getattr(previous, "quiet_interrupts", False):
        return

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            exit_interrupted(prog, at_once=True)  # nothing was written yet
        previous(kind, value, tb)

    hook.quiet_interrupts = True
    sys.excepthook = hook


def warn_once(key, message: str) -> None:
    """`message` as one stderr line ("warning: ..."), the first time this process meets `key`."""
    if key in _warned:
        return
    _warned.add(key)
    print(f"warning: {message}", file=sys.stderr, flush=True)


def warn_cache_unwritable(what: str, folder, exc: BaseException) -> None:
    """A cache folder that cannot be written only costs time: one line per folder and process naming it and why
    (the OSError behind io_utils' one-line UserError), and the command goes on without writing to it."""
    why, e = str(exc), exc
    while e is not None:
        if isinstance(e, OSError) and e.errno:
            why = os.strerror(e.errno).lower()
            break
        e = e.__cause__ or e.__context__
    warn_once(("cache", str(folder)), f"{what} cache folder {folder} cannot be written ({why}): going on without it")


def caused_by_interrupt(exc: BaseException) -> bool:
    """True when `exc` comes from Ctrl-C or SIGTERM: a KeyboardInterrupt raised during `mi.render` (or a scene's
    load) inside Dr.Jit's custom operation comes back as a RuntimeError caused by the KeyboardInterrupt."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def exit_on_user_error(prog: str, at_once: bool = False):
    """Turn UserError (and the renderer's SceneError, a ValueError subclass) into one line and exit 2.

    Ctrl-C and SIGTERM exit 130 and 143 quietly (see the module's docstring): inside, SIGTERM is Ctrl-C
    (`sigterm_as_ctrl_c`). A KeyboardInterrupt raised with a string adds it to the line (run_headless: " after 12
    frames; results so far in DIR"). `at_once`: leave an interrupted command without the interpreter's teardown
    (`exit_interrupted`); for n2n-live, whose torch and Mitsuba threads make it slow, and crash it after an
    interrupt during Mitsuba's start-up ("Fatal Python error: PyThreadState_Get" while finalising).
    numpy's floating-point warnings are silenced inside: non-finite data is repaired and counted or refused
    explicitly (validate.repair_nonfinite, checkpoints), and a stray "RuntimeWarning: invalid value" line must not
    precede the one line a command prints.
    """
    import numpy as np

    global _sigterm_received
    _sigterm_received = False
    try:
        with np.errstate(all="ignore"), sigterm_as_ctrl_c():
            yield
    except KeyboardInterrupt as e:
        exit_interrupted(prog, e.args[0] if e.args and isinstance(e.args[0], str) else "", at_once)
    except Exception as e:  # noqa: BLE001 - everything not named below is re-raised
        # SceneError lives in renderer/ (which knows nothing of n2n_live); recognise it by name.
        if isinstance(e, UserError) or type(e).__name__ == "SceneError":
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        if isinstance(e, OSError):
            # A full or read-only disk, or a file the user may not touch, met outside io_utils.atomic_path (an
            # appended log, an input file): the user's to fix, so one line.
            from .io_utils import WRITE_ERRNOS

            if e.errno in WRITE_ERRNOS:
                print(f"{prog}: error: {e.filename or 'a file'}: {os.strerror(e.errno).lower()}", file=sys.stderr)
                sys.exit(EXIT_USER_ERROR)
        if caused_by_interrupt(e):
            exit_interrupted(prog, at_once=at_once)
        raise
