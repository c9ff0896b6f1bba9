#!/usr/bin/env bash
# Builds .carry/: the Python packages scripts/gpu_check.sh needs on a GPU machine that has Python 3.12 and a CUDA
# build of torch but no Mitsuba and no network (docs/benchmarks.md, "GPU check"). Run it here, then name ".carry"
# in the device call's `carry`.
#
#   .carry/site.tar.xz    mitsuba + drjit (trimmed, see below) + OpenEXR, unpacked from the cp312 manylinux wheels
#   .carry/versions.txt   what is inside, and what was left out and why
#
# The mitsuba wheel alone (~63 MB) is over the 64 MiB that may travel with the repository, so the installed package
# travels trimmed and xz-compressed: without include/, cmake/, pkgconfig/, the .pyi stubs, and without the variants
# the project never selects (it tries cuda_ad_rgb, then llvm_ad_rgb, then scalar_rgb: renderer/variant.py). The
# plugins stay whole: each plugin library holds every variant, so they cannot be trimmed per variant. mi.variants()
# still lists every variant (the list is compiled in); asking for a dropped one fails with ModuleNotFoundError.
# pyoidn is NOT carried: its core library alone, xz-compressed, would with Mitsuba pass the limit; gpu_check.sh
# runs without the OIDN comparison and keeps the last frame's EXR buffers for it.
#
# Environment: PYTHON (the interpreter whose installed versions are carried; default .venv/bin/python, else python3),
# N2N_CARRY_PYTHON (target CPython version, default 3.12), N2N_CARRY_DIR (default .carry), N2N_CARRY_XZ (xz's
# options, default -9 -T0).
set -euo pipefail
cd "$(dirname "$0")/.."

LIMIT_MB=60  # the repository and the carried folder together (64 MiB may travel; keep a margin)
PYVER=${N2N_CARRY_PYTHON:-3.12}
DEST=${N2N_CARRY_DIR:-.carry}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
KEEP_VARIANTS="cuda_ad_rgb llvm_ad_rgb scalar_rgb"

# The versions tested here (pyproject.toml's ranges, as installed in the project's venv); MITSUBA=... etc. override.
installed() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null || true; }
MITSUBA=${MITSUBA:-$(installed mitsuba)}
DRJIT=${DRJIT:-$(installed drjit)}
OPENEXR=${OPENEXR:-$(installed OpenEXR)}
for v in MITSUBA DRJIT OPENEXR; do
  if [ -z "${!v}" ]; then
    echo "gpu_carry: $v's version unknown: install the project (make setup) or set $v=VERSION" >&2
    exit 2
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "gpu_carry: downloading cp${PYVER/./} wheels: mitsuba $MITSUBA, drjit $DRJIT, OpenEXR $OPENEXR"
# pip matches manylinux tags exactly, so name every glibc level the wheels use (drjit is tagged 2_27/2_28).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$work/wheels" \
  "mitsuba==$MITSUBA" "drjit==$DRJIT" "OpenEXR==$OPENEXR" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
shopt -s nullglob
wheels=("$work"/wheels/*.whl)
if [ ${#wheels[@]} -ne 3 ]; then
  echo "gpu_carry: expected 3 wheels, got ${#wheels[@]}: $(ls "$work/wheels" 2>/dev/null | tr '\n' ' ')" >&2
  exit 1
fi

site="$work/site"
mkdir -p "$site"
for w in "${wheels[@]}"; do
  "$PY" -m zipfile -e "$w" "$site"
done
# Trim: headers, build files, stubs, caches, the data the wheels install outside the packages, unused variants.
rm -rf "$site"/mitsuba/include "$site"/drjit/include "$site"/mitsuba/cmake "$site"/drjit/cmake \
       "$site"/mitsuba/pkgconfig "$site"/mitsuba/mitsuba_stubs "$site"/share
find "$site" \( -name '*.pyi' -o -name '__pycache__' -o -name 'RECORD' \) -prune -exec rm -rf {} +
kept=()
for f in "$site"/mitsuba/{scalar,llvm,cuda}_*.cpython-*.so; do
  v=$(basename "$f"); v=${v%%.cpython-*}
  if [[ " $KEEP_VARIANTS " == *" $v "* ]]; then kept+=("$v"); else rm -f "$f"; fi
done
if [ ${#kept[@]} -ne 3 ]; then
  echo "gpu_carry: the mitsuba wheel lacks some of: $KEEP_VARIANTS (kept: ${kept[*]})" >&2
  exit 1
fi
so_count=$(find "$site" -name "*.cpython-${PYVER/./}-x86_64-linux-gnu.so" | wc -l)
echo "gpu_carry: unpacked $(du -sm "$site" | cut -f1) MB ($so_count cp${PYVER/./} extension modules); compressing"

rm -rf "$DEST"
mkdir -p "$DEST"
tar -C "$site" -cf - . | xz ${N2N_CARRY_XZ:--9 -T0} > "$DEST/site.tar.xz.tmp"
mv "$DEST/site.tar.xz.tmp" "$DEST/site.tar.xz"
{
  echo "python cp${PYVER/./} x86_64 (manylinux)"
  echo "mitsuba $MITSUBA (variants: ${kept[*]})"
  echo "drjit $DRJIT"
  echo "OpenEXR $OPENEXR"
  echo "not carried: pyoidn (core library ~46 MB xz: over the limit with Mitsuba)"
  echo "not carried (on the device image): torch numpy matplotlib pillow tqdm pytest"
} > "$DEST/versions.txt"

# What travels: the tracked tree, untracked files git does not ignore, and the carried folder.
repo_bytes=$( (git ls-files -z; git ls-files -z --others --exclude-standard) \
             | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s += $1} END {print s + 0}')
carry_bytes=$(du -sb "$DEST" | cut -f1)
total=$((repo_bytes + carry_bytes))
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }
echo "gpu_carry: $DEST/site.tar.xz $(mb "$carry_bytes") MB + repository $(mb "$repo_bytes") MB = $(mb "$total") MB" \
     "(limit $LIMIT_MB MB)"
if [ "$total" -gt $((LIMIT_MB * 1000000)) ]; then
  echo "gpu_carry: over the limit" >&2
  exit 1
fi
