#!/usr/bin/env bash
# Prepares a fresh machine for `make run` / `make test`: Debian packages (as root), then .venv with the
# project and its extras. Idempotent and quick when nothing changed (a stamp keyed on pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

# libllvm19: Dr.Jit's LLVM backend (CPU rendering). LLVM 14 is refused and 15/16 crash on the first render.
# xvfb, xauth, Mesa: the viewer's real-window tests (OpenGL 4.5 core through llvmpipe). xdotool drives input.
DEBS="libllvm19 xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 xdotool"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for p in $DEBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: missing Debian packages:$missing" >&2
    echo "setup: run as root:  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
stamp=.venv/.setup-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=".venv/bin/python -m pip"
$pip install -q --upgrade pip >/dev/null
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $pip install -q torch
  else
    # No NVIDIA GPU: the CPU build (on this project's machines torch 2.13.0 is a CPU wheel on local disk);
    # an unpinned `torch` would pull several GB of CUDA libraries for nothing.
    $pip install -q "${TORCH_SPEC:-torch==2.13.0}"
  fi
fi
$pip install -q -e ".[all]"
echo "$want" > "$stamp"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, mitsuba; print("torch", torch.__version__, "mitsuba", mitsuba.__version__)'))"
