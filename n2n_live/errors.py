"""User-facing errors: one line that names the problem and the file; CLIs exit with code 2."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager


class UserError(ValueError):
    """A mistake in the user's input (bad file, bad option). Shown as one line, never as a traceback."""


EXIT_USER_ERROR = 2


@contextmanager
def exit_on_user_error(prog: str):
    """Turn UserError (and the renderer's SceneError, a ValueError subclass) into one line and exit 2.

    Ctrl-C exits 130 quietly: whatever was written so far stays on disk (all writes are atomic). numpy's
    floating-point warnings are silenced inside: non-finite data is repaired and counted or refused explicitly
    (validate.repair_nonfinite, checkpoints), and a stray "RuntimeWarning: invalid value" line must not precede
    the one line a command prints.
    """
    import numpy as np

    try:
        with np.errstate(all="ignore"):
            yield
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except OSError as e:
        # A full or read-only disk, or a file the user may not touch, met outside io_utils.atomic_path (an appended
        # log, an input file): the user's to fix, so one line.
        from .io_utils import WRITE_ERRNOS

        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"{prog}: error: {e.filename or 'a file'}: {os.strerror(e.errno).lower()}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except ValueError as e:
        # SceneError lives in renderer/ (which knows nothing of n2n_live); recognise it by name.
        if type(e).__name__ == "SceneError":
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        raise
