"""Mitsuba 3 rendering for n2n-live: variant choice, scene loading, camera paths, paired noisy renders.

Importing this package points Dr.Jit at libLLVM 19 (when present and DRJIT_LIBLLVM_PATH is unset) before
anything imports mitsuba or drjit: the LLVM 15/16 builds some distributions ship crash Dr.Jit's LLVM backend.
The heavier modules (scene, tracer) import mitsuba, so they are not imported here.
"""

from .variant import point_drjit_at_llvm19

point_drjit_at_llvm19()
