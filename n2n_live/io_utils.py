"""Atomic file writes: a reader (or a crash) never sees a half-written file, and a full or read-only disk is one
line naming the file, not a library's traceback."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

# errno values that say the disk, not the program, stopped a write.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def write_failure(exc: BaseException, folder) -> str | None:
    """Why a write into `folder` failed, in a few words, when the disk is the cause (full, read-only, permission);
    None otherwise. Libraries that hide errno (torch.save: "unexpected pos", OpenEXR: RuntimeError) are recognised by
    their message or by the state of the file system after the failure."""
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return os.strerror(exc.errno).lower()
    if not isinstance(exc, Exception) or isinstance(exc, UserError):
        return None
    if "no space left" in str(exc).lower():
        return os.strerror(errno.ENOSPC).lower()
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return os.strerror(errno.EROFS).lower()
    if st.f_bavail * st.f_frsize < 2**20:  # what a failed write leaves of a full disk
        return os.strerror(errno.ENOSPC).lower()
    return None


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` on success, remove it on failure.

    The temporary name keeps the suffix so that libraries choosing a format by extension still work.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as e:
        reason = write_failure(e, path.parent)
        if reason:
            raise UserError(f"{path}: cannot write ({reason})") from None
        raise
    os.close(fd)
    # mkstemp creates the file 0600; give the result the permissions of any new file (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        reason = write_failure(e, path.parent)
        if reason:
            raise UserError(f"{path}: not written ({reason})") from None
        raise


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def user_cache_dir(name: str, env: str) -> Path:
    """Where n2n-live caches `name` (references, baselines): $`env` when set, else
    $XDG_CACHE_HOME/n2n-live/`name` (~/.cache/n2n-live/`name`)."""
    if os.environ.get(env):
        return Path(os.environ[env])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "n2n-live" / name
