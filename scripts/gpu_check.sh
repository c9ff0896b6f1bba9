#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU, Python 3.12 and a CUDA build of torch, but no Mitsuba and no
# network: the live loop at 512x512 measured end to end (docs/benchmarks.md, "GPU check").
#
#   scripts/gpu_check.sh OUT_DIR
#
# Stages, each under its own `timeout` so that a stuck one cannot eat the others' time (about 8 minutes in all):
#   unpack    .carry/site.tar.xz (scripts/gpu_carry.sh) into a temporary folder on PYTHONPATH
#   probe     GPU, driver, torch, libnvoptix, then the Mitsuba variants, each in its own process, up to the first
#             that works: cuda_ad_rgb, else llvm_ad_rgb (rendering on the CPUs while torch trains on the GPU), else
#             scalar_rgb; each refusal is printed with its reason
#   tests     pytest -m "gpu and not slow" (the CUDA-marked tests; the slow compile test is the bench_compiled stage)
#   bench     n2n-bench --size 512 for every model the live loop offers, then the paper's model torch.compile'd
#   live      the live loop's end-to-end time per frame: n2n-bench --live, 100 frames of LiveLoop.step() at
#             512x512 (GPU preset, paced as the headless run is, no evaluation)
#   headless  a 300-frame fly-through at 512x512 with the GPU preset, PSNR every 50 frames (stopped with SIGINT
#             at its time limit, which keeps the frames so far)
# OUT_DIR receives gpu_check.json (every figure), gpu_check.log (every stage's output), psnr.png, metrics.csv,
# last_frame_strip.png and last_frame.exr (at most 8 files, flat: what the device tool brings back); the short
# table is printed last.
#
# Environment (defaults in brackets; the test suite's CPU dry run sets them small):
#   N2N_CHECK_PYTHON [python3]   N2N_CHECK_SITE [.carry/site.tar.xz; "installed": use what the Python has]
#   N2N_CHECK_DEVICE [auto]      N2N_CHECK_SIZE [512]   N2N_CHECK_FRAMES [300]   N2N_CHECK_EVAL_EVERY [50]
#   N2N_CHECK_LIVE_FRAMES [100]  N2N_CHECK_LIVE_WARMUP [n2n-bench's]
#   N2N_CHECK_REFERENCE_SPP [the preset's with cuda_ad_rgb, 1024 when rendering on the CPUs]
#   N2N_CHECK_BENCH_ARGS [""]    N2N_CHECK_COMPILE [1]  N2N_CHECK_TESTS [the tests/ files with gpu marks; none]
#   N2N_CHECK_VARIANT [probed]   N2N_CHECK_PROBE_VARIANTS [cuda_ad_rgb llvm_ad_rgb scalar_rgb]
#   N2N_CHECK_T_SCALE [1: multiplies every time limit]
set -uo pipefail
if [ $# -ne 1 ]; then
  echo "usage: scripts/gpu_check.sh OUT_DIR" >&2
  exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
PY=${N2N_CHECK_PYTHON:-python3}
SITE=${N2N_CHECK_SITE:-$REPO/.carry/site.tar.xz}
DEVICE=${N2N_CHECK_DEVICE:-auto}
SIZE=${N2N_CHECK_SIZE:-512}
FRAMES=${N2N_CHECK_FRAMES:-300}
EVAL_EVERY=${N2N_CHECK_EVAL_EVERY:-50}
LIVE_FRAMES=${N2N_CHECK_LIVE_FRAMES:-100}
REF_SPP=${N2N_CHECK_REFERENCE_SPP:-}
# only the files holding CUDA-marked tests: a module that cannot import here (the viewer's, without its extra) is
# then never collected
TESTS=${N2N_CHECK_TESTS:-$(cd "$REPO" && grep -l "pytest.mark.gpu" tests/*.py | tr '\n' ' ')}
SCALE=${N2N_CHECK_T_SCALE:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/n2n-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
cd "$REPO" || exit 2

limit() { awk -v s="$1" -v k="$SCALE" 'BEGIN {printf "%d", s * k + 0.5}'; }
# stage NAME SECONDS CMD...: run CMD under timeout (SIGINT first: the headless run then writes what it has), log it
# to $WORK/NAME.log and the terminal, and record rc and seconds in $WORK/stages.tsv.
stage() {
  local name=$1 secs; secs=$(limit "$2"); shift 2
  echo "=== $name (limit ${secs}s): $*" | tee "$WORK/$name.log"
  local t0; t0=$(date +%s.%N)
  timeout -s INT -k 15 "$secs" "$@" 2>&1 | tee -a "$WORK/$name.log"
  local rc=${PIPESTATUS[0]}
  local dt; dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$dt" "$secs" >> "$WORK/stages.tsv"
  echo "=== $name: exit $rc after ${dt}s" | tee -a "$WORK/$name.log"
  return 0
}

# unpack: the carried packages first on the path, the repository after them
if [ "$SITE" = installed ]; then
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  echo "=== unpack: skipped (N2N_CHECK_SITE=installed)" | tee "$WORK/unpack.log"
elif [ -f "$SITE" ]; then
  mkdir -p "$WORK/site"
  # Python's tarfile rather than tar -J: the machine's image may lack the xz program
  stage unpack 30 "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='tar')" \
    "$SITE" "$WORK/site"
  export PYTHONPATH="$WORK/site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "gpu_check: $SITE not found: run scripts/gpu_carry.sh first and carry .carry (or N2N_CHECK_SITE=installed)" >&2
  exit 2
fi

# Dr.Jit's LLVM backend (the fallback when OptiX is missing) needs a libLLVM: use one the machine has, if any.
if [ -z "${DRJIT_LIBLLVM_PATH:-}" ]; then
  llvm=$( (ldconfig -p 2>/dev/null | awk '/libLLVM/ {print $NF}'; \
           find /usr/lib /usr/lib64 /usr/local/lib /opt -maxdepth 4 -name 'libLLVM*.so*' 2>/dev/null) \
         | grep -v -E 'libLLVM-1[0-6]|libLLVM.so.1[0-6]' | head -n 1)
  [ -n "$llvm" ] && export DRJIT_LIBLLVM_PATH=$llvm
fi

stage probe 45 "$PY" scripts/gpu_check.py probe "$WORK/probe.json"
# The probed variant; "auto" (the product's own choice) when the probe did not finish; "" when none works.
VARIANT=${N2N_CHECK_VARIANT:-$("$PY" scripts/gpu_check.py variant "$WORK/probe.json")}
if [ -z "$VARIANT" ]; then
  echo "gpu_check: no Mitsuba variant works here (see the probe above); the render stages are skipped" >&2
fi
variant_args=()
[ -n "$VARIANT" ] && [ "$VARIANT" != auto ] && variant_args=(--variant "$VARIANT")

if [ "$TESTS" != none ]; then
  stage tests 60 "$PY" -m pytest -q -p no:cacheprovider --continue-on-collection-errors -m "gpu and not slow" $TESTS
fi

if [ -n "$VARIANT" ]; then
  # n2n-bench runs every model the live loop offers (n2n_live.commands.bench.model_names) in one process.
  stage bench 80 "$PY" -m n2n_live.commands.bench --size "$SIZE" --device "$DEVICE" "${variant_args[@]}" \
    --json "$WORK/bench.json" ${N2N_CHECK_BENCH_ARGS:-}
  if [ "${N2N_CHECK_COMPILE:-1}" = 1 ]; then
    stage bench_compiled 60 "$PY" -m n2n_live.commands.bench --size "$SIZE" --device "$DEVICE" "${variant_args[@]}" \
      --models paper --compile --json "$WORK/bench_compiled.json" ${N2N_CHECK_BENCH_ARGS:-}
  fi

  stage live 45 "$PY" -m n2n_live.commands.bench --live --size "$SIZE" --frames "$LIVE_FRAMES" \
    ${N2N_CHECK_LIVE_WARMUP:+--warmup "$N2N_CHECK_LIVE_WARMUP"} --device "$DEVICE" "${variant_args[@]}" \
    --json "$WORK/live.json"

  extra=(--eval-every "$EVAL_EVERY" --reference-cache "$WORK/reference-cache")
  # the preset's 4096-spp references take seconds on the GPU but minutes on the CPUs
  [ "$VARIANT" != cuda_ad_rgb ] && REF_SPP=${REF_SPP:-1024}
  [ -n "$REF_SPP" ] && extra+=(--reference-spp "$REF_SPP")
  compare=""
  "$PY" -c "import pyoidn" 2>/dev/null && compare=oidn
  stage headless 150 "$PY" -m n2n_live --headless --preset gpu --device "$DEVICE" "${variant_args[@]}" \
    --size "$SIZE" --frames "$FRAMES" --compare "$compare" --snapshots 1 --no-progress \
    --out "$WORK/headless" "${extra[@]}"
fi

# collect: one JSON with every figure, the files worth bringing back, the short table last
for s in unpack probe tests bench bench_compiled live headless; do
  [ -f "$WORK/$s.log" ] && cat "$WORK/$s.log"
done > "$OUT/gpu_check.log"
for f in psnr.png metrics.csv last_frame_strip.png last_frame.exr; do
  # the device tool brings back files of at most 16 MiB
  if [ -f "$WORK/headless/$f" ] && [ "$(stat -c %s "$WORK/headless/$f")" -le $((16 * 1024 * 1024)) ]; then
    cp "$WORK/headless/$f" "$OUT/"
  fi
done
"$PY" scripts/gpu_check.py collect "$WORK" "$OUT/gpu_check.json"
