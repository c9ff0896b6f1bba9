"""Choose the Mitsuba variant this machine can run: CUDA+OptiX, else LLVM, else scalar.

Each candidate is tried for real (a one-ray scene) because `mi.set_variant` succeeds on machines where the
backend then fails: a CUDA driver without OptiX, or Dr.Jit picking up an LLVM it crashes with.
"""

from __future__ import annotations

import glob
import os

from .errors import SceneError

PREFERENCE = ("cuda_ad_rgb", "llvm_ad_rgb", "scalar_rgb")

# Standard install locations of LLVM 19 (Debian/Ubuntu multiarch, llvm.org apt, Fedora, Homebrew).
# Dr.Jit's LLVM backend aborted the process with the LLVM 15 and 16 builds of Debian
# ("Cannot select ... fminimum"), and it would otherwise pick the first libLLVM it finds.
_LLVM19_PATTERNS = (
    "/usr/lib/*/libLLVM-19.so*",
    "/usr/lib/*/libLLVM.so.19*",
    "/usr/lib/llvm-19/lib/libLLVM*.so*",
    "/usr/lib64/libLLVM-19.so*",
    "/usr/lib64/libLLVM.so.19*",
    "/usr/lib64/llvm19/lib/libLLVM*.so*",
    "/opt/homebrew/opt/llvm@19/lib/libLLVM.dylib",
    "/usr/local/opt/llvm@19/lib/libLLVM.dylib",
)

_verified: set[str] = set()  # variants that passed the smoke test in this process


def find_llvm19() -> str | None:
    """Path of an installed libLLVM 19, or None."""
    for pattern in _LLVM19_PATTERNS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def point_drjit_at_llvm19() -> None:
    """Set DRJIT_LIBLLVM_PATH to libLLVM 19 if it exists and the user has not chosen a library.

    Dr.Jit reads the variable when its LLVM backend starts, so this must run before mitsuba/drjit are used;
    `import renderer` calls it.
    """
    if os.environ.get("DRJIT_LIBLLVM_PATH"):
        return
    path = find_llvm19()
    if path:
        os.environ["DRJIT_LIBLLVM_PATH"] = path


def _smoke_test(variant: str) -> str | None:
    """Set `variant` and trace one ray; return None if that works, else a one-line reason."""
    import drjit as dr
    import mitsuba as mi

    # Asking for a backend that is absent makes Dr.Jit print warnings; check first.
    if variant.startswith("cuda") and not dr.has_backend(dr.JitBackend.CUDA):
        return "no CUDA device"
    if variant.startswith("llvm") and not dr.has_backend(dr.JitBackend.LLVM):
        return "Dr.Jit found no usable libLLVM (set DRJIT_LIBLLVM_PATH)"
    try:
        mi.set_variant(variant)
        # A shape forces the ray-tracing backend (OptiX on CUDA, Embree on CPU) to build and run.
        scene = mi.load_dict({"type": "scene", "s": {"type": "sphere"}})
        ray = mi.Ray3f(mi.Point3f(0, 0, -3), mi.Vector3f(0, 0, 1))
        t = scene.ray_intersect(ray).t
        dr.eval(t)
        t = float(t[0]) if dr.is_array_v(t) else float(t)
        if abs(t - 2.0) > 1e-3:
            return f"test ray hit at t={t}, expected 2"
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return " ".join(str(exc).split())[:300] or type(exc).__name__
    return None


def choose_variant(requested: str | None = None) -> str:
    """Pick, set (`mi.set_variant`) and return the Mitsuba variant to render with.

    Without `requested`: the first of cuda_ad_rgb, llvm_ad_rgb, scalar_rgb that works. With it: exactly that
    variant, or a SceneError saying why it cannot be used. Only RGB and spectral variants are accepted: the
    rest of the program expects three colour channels.
    """
    point_drjit_at_llvm19()
    import mitsuba as mi

    available = list(mi.variants())
    if requested:
        if requested not in available:
            raise SceneError(f"unknown Mitsuba variant '{requested}' (this Mitsuba has: {', '.join(available)})")
        if not (requested.endswith("_rgb") or requested.endswith("_spectral")):
            raise SceneError(f"Mitsuba variant '{requested}' is not supported: use an _rgb or _spectral variant")
        candidates = (requested,)
    else:
        candidates = tuple(v for v in PREFERENCE if v in available)

    reasons = []
    for variant in candidates:
        if variant in _verified:
            mi.set_variant(variant)
            return variant
        reason = _smoke_test(variant)
        if reason is None:
            _verified.add(variant)
            return variant
        reasons.append(f"{variant}: {reason}")
    if requested:
        raise SceneError(f"Mitsuba variant '{requested}' does not work on this machine ({reasons[0]})")
    raise SceneError("no Mitsuba variant works on this machine (" + "; ".join(reasons) + ")")


def torch_device_for_variant(variant: str | None = None) -> str:
    """The torch device that shares memory with `variant` ('cuda' for cuda_* variants, else 'cpu')."""
    if variant is None:
        import mitsuba as mi

        variant = mi.variant() or ""
    return "cuda" if variant.startswith("cuda") else "cpu"
