"""What a user types, checked in one place for every command: numbers, sizes, memory, devices, output locations.

Every command builds its parser from `ArgumentParser` (argparse's own errors become one line, exit 2, without the
usage block) and uses the `type=` helpers below, so `--lr nan`, `--spp 0`, `--size 99999` or `--out` naming a
file are refused the same way everywhere, before any work starts. A mistake is a `UserError` naming the option
(or the file); `errors.exit_on_user_error` prints it as one line and exits 2.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from .errors import UserError

MAX_SIDE = 16384
"""Largest image side accepted anywhere (Mitsuba's films and the U-Net work at any size; memory is the limit)."""

MAX_LANES = 2**32 - 1
"""Dr.Jit indexes one launch (pixels x samples) with 32-bit integers; a larger launch fails inside Mitsuba."""

MAX_SPP = 2**20

# Peak resident memory per pixel, rounded up from measurements (docs/design-notes.md); the sample count does not
# matter for rendering: samples are accumulated into the film.
RENDER_BYTES_PER_PIXEL = 256  # a render pair + feature pass
INFER_BYTES_PER_PIXEL = 1400  # U-Net inference
TRAIN_BYTES_PER_PIXEL = 4100  # one U-Net training step, per pixel of crop x batch
BASE_BYTES = 512 * 2**20  # torch + Mitsuba + Python loaded


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are a UserError: one line from `exit_on_user_error`, exit 2, no usage block first.

    Call `parse_args` inside `exit_on_user_error`; `--help` still prints the help and exits 0.
    """

    def error(self, message: str):
        raise UserError(message)


# ------------------------------------------------------------------------------------------------ numbers

def _range_text(lo, hi, lo_open: bool = False) -> str:
    lo, hi = (v if isinstance(v, int) else float(v) for v in (lo, hi)) if hi is not None else (lo, hi)
    if hi is None:
        return f"> {lo:g}" if lo_open else f">= {lo:g}"
    if isinstance(lo, int) and isinstance(hi, int):
        return f"between {lo} and {hi}"
    return f"in ({lo:g}, {hi:g}]" if lo_open else f"between {lo:g} and {hi:g}"


def check_int(flag: str, value, lo: int, hi: int | None = None) -> int:
    """`value` as an int in [lo, hi]; else a UserError naming `flag`."""
    try:
        v = int(value)
        ok = v == value if isinstance(value, float) else True
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or v < lo or (hi is not None and v > hi):
        raise UserError(f"{flag} must be an integer {_range_text(lo, hi)}, got {value!r}")
    return v


def check_real(flag: str, value, lo: float, hi: float | None = None, lo_open: bool = False) -> float:
    """`value` as a finite float in [lo, hi] (or (lo, hi] with `lo_open`); NaN and +-Inf are refused."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or (v <= lo if lo_open else v < lo) or (hi is not None and v > hi):
        raise UserError(f"{flag} must be a finite number {_range_text(lo, hi, lo_open)}, got {value!r}")
    return v


def _argtype(check, *a, **k):
    """An argparse `type=` from a check: argparse prefixes the message with 'argument --flag: '."""
    def parse(text: str):
        try:
            return check(*a, text, **k)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e).split(" ", 1)[1]) from None  # drop the flag: argparse adds it
    return parse


def integer(lo: int, hi: int | None = None):
    """argparse type: an integer in [lo, hi]."""
    def check(text):
        try:
            value = int(text)
        except ValueError:
            value = text
        return check_int("value", value, lo, hi)
    return _argtype(check)


def real(lo: float, hi: float | None = None, lo_open: bool = False):
    """argparse type: a finite number in [lo, hi] ((lo, hi] with lo_open)."""
    return _argtype(check_real, "value", lo=lo, hi=hi, lo_open=lo_open)


def nonempty(text: str) -> str:
    """argparse type: a string with something in it (`--scene ""` is a mistake, not 'no scene')."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def path_arg(text: str) -> Path:
    """argparse type: a non-empty path (`Path("")` would silently mean the current folder)."""
    return Path(nonempty(text))


# ------------------------------------------------------------------------------------------------ sizes

def parse_size(text: str, flag: str = "--size", lo: int = 1, hi: int = MAX_SIDE) -> tuple[int, int]:
    """'256' -> (256, 256); '320x240' -> (320, 240); each side in [lo, hi], else a UserError naming `flag`."""
    parts = str(text).strip().lower().split("x")
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        w, h = int(parts[0]), int(parts[-1])
    except ValueError:
        raise UserError(f"{flag}: expected S or WxH (e.g. 256 or 320x240), got {text!r}") from None
    if not (lo <= w <= hi and lo <= h <= hi):
        raise UserError(f"{flag}: each side must be between {lo} and {hi}, got {text!r}")
    return w, h


def size(lo: int = 1, hi: int = MAX_SIDE):
    """argparse type: S or WxH with sides in [lo, hi]."""
    def parse(text: str):
        try:
            return parse_size(text, "size", lo, hi)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from None
    return parse


def spp_list(text: str) -> list[int]:
    """argparse type: '8' or '8,64' -> sorted distinct levels, each in [1, MAX_SPP]."""
    try:
        levels = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected spp levels like 8 or 8,64, got {text!r}") from None
    if not levels or levels[0] < 1 or levels[-1] > MAX_SPP:
        raise argparse.ArgumentTypeError(f"spp levels must be between 1 and {MAX_SPP}, got {text!r}")
    return levels


# ------------------------------------------------------------------------------------------------ memory

def available_memory() -> int:
    """Bytes of memory available to a new allocation now (MemAvailable), else the machine's total."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(need: int, what: str, available: int | None = None) -> None:
    """Refuse a job whose estimated memory exceeds what is available, with the estimate in the message."""
    have = available_memory() if available is None else available
    if need > have:
        raise UserError(f"{what}: needs about {_gib(need)} of memory, this machine has {_gib(have)} available")


def check_render(width: int, height: int, spp: int, what: str) -> None:
    """One launch of width x height x spp lanes must fit Dr.Jit's 32-bit indices and the memory."""
    lanes = width * height * spp
    if lanes > MAX_LANES:
        raise UserError(f"{what}: {width}x{height} pixels x {spp} spp is {lanes:.3g} samples in one render, "
                        f"more than Mitsuba's limit of {MAX_LANES + 1:.3g}")
    check_memory(BASE_BYTES + width * height * RENDER_BYTES_PER_PIXEL, what)


def live_bytes(width: int, height: int, crop: int, batch: int = 2) -> int:
    """Estimated peak memory of the live loop (render pair, both images denoised, a training step on a crop)."""
    c = min(crop, width) * min(crop, height)
    return (BASE_BYTES + width * height * (RENDER_BYTES_PER_PIXEL + 2 * INFER_BYTES_PER_PIXEL)
            + batch * c * TRAIN_BYTES_PER_PIXEL)


def check_live(width: int, height: int, spp: int, crop: int, what: str) -> None:
    check_render(width, height, spp, what)
    check_memory(live_bytes(width, height, crop), what)


# ------------------------------------------------------------------------------------------------ devices

def resolve_device(name: str | None, local_rank: int | None = None):
    """'auto' -> CUDA when torch sees a GPU (cuda:local_rank under torchrun), else the CPU; 'cpu', 'cuda', 'cuda:N'.

    A device that is not there (cuda without a GPU, cuda:3 on a 2-GPU machine) or not a device is a UserError.
    """
    import torch

    spec = (name or "auto").strip().lower()
    cuda = f"cuda:{local_rank}" if local_rank is not None else "cuda"
    if spec == "auto":
        return torch.device(cuda if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: not a device (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: torch sees no CUDA GPU on this machine (use --device cpu or auto)")
        if device.index is None:
            device = torch.device(cuda)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


# ------------------------------------------------------------------------------------------------ outputs

def _probe_folder(path: Path, flag: str) -> None:
    """The nearest existing ancestor of `path` must be a folder we can create files in (tried, not guessed:
    os.access says yes to root on a read-only file system)."""
    p = path
    while not p.exists():
        if p.is_symlink():
            raise UserError(f"{flag} {path}: {p} is a broken link")
        parent = p.parent
        if parent == p:
            break
        p = parent
    if not p.is_dir():
        raise UserError(f"{flag} {path}: {p} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".n2n-write-test.", dir=p)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write in {p} ({e.strerror or type(e).__name__})") from None


def check_output_dir(path, flag: str = "--out") -> Path:
    """An output folder: absent (it will be created) or an existing folder, and writable. Checked before any work."""
    path = Path(path)
    if str(path).strip() == "":
        raise UserError(f"{flag}: an empty path")
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is not a folder")
    _probe_folder(path, flag)
    return path


def check_output_file(path, flag: str = "--out") -> Path:
    """An output file: not an existing folder, in a folder that exists or can be created, writable."""
    path = Path(path)
    if str(path).strip() == "" or path.name == "":
        raise UserError(f"{flag}: an empty path")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder, expected a file name")
    _probe_folder(path.parent, flag)
    return path


# ------------------------------------------------------------------------------------------------ data

def repair_nonfinite(image, source) -> tuple:
    """(image with NaN/Inf values replaced by 0, how many were replaced). An image with no finite value at all is a
    UserError naming `source`: there is nothing to denoise. A few bad values would otherwise spread through the
    U-Net's receptive field (five 2x2 pools: the whole of a small image) and turn the output black or NaN."""
    import numpy as np

    a = np.asarray(image)
    finite = np.isfinite(a)
    bad = int(a.size - np.count_nonzero(finite))
    if bad == 0:
        return image, 0
    if bad == a.size:
        raise UserError(f"{source}: every pixel value is NaN or infinite")
    return np.where(finite, a, 0).astype(a.dtype, copy=False), bad
