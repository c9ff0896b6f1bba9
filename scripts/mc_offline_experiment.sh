#!/usr/bin/env bash
# The paper's offline Monte Carlo experiment (Lehtinen et al. 2018, Section 3.4) as a recipe:
#   1. export a dataset from the bundled scenes (two independent 64-spp renders per view, albedo, normal, and a
#      high-spp reference; some views held out for validation by n2n-train),
#   2. train the same network on the same data with noisy targets (Noise2Noise) and with clean targets,
#   3. print the validation PSNR of the input and of both networks at equal steps (the paper: 64-spp input
#      22.31 dB, clean targets 31.83 dB, noisy targets 0.5 dB less at equal epochs).
# Every step resumes: re-running the script after an interruption continues where it stopped.
#
#   scripts/mc_offline_experiment.sh [OUT]                 # GPU-sized defaults (hours)
#   PRESET=cpu scripts/mc_offline_experiment.sh out/mc-cpu # a few minutes on a 2-core CPU (tiny budget)
#   NPROC=4 scripts/mc_offline_experiment.sh               # each training run on 4 GPUs (torchrun, DDP)
#
# Knobs (environment): SCENES VIEWS SIZE SPP REF_SPP ITERS BATCH CROP VAL_EVERY NPROC PARALLEL THREADS
# PARALLEL=1 runs the two trainings at the same time (e.g. one per core or per GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-out/mc_offline}
if [ "${PRESET:-}" = "cpu" ]; then
  : "${VIEWS:=6}" "${SIZE:=64}" "${REF_SPP:=1024}" "${ITERS:=400}" "${CROP:=64}" "${VAL_EVERY:=50}" "${THREADS:=1}"
fi
SCENES=${SCENES:-cornell-box,interior,outdoor,caustics}
VIEWS=${VIEWS:-64}
SIZE=${SIZE:-256}
SPP=${SPP:-64}
REF_SPP=${REF_SPP:-4096}
ITERS=${ITERS:-20000}
BATCH=${BATCH:-4}
CROP=${CROP:-256}
VAL_EVERY=${VAL_EVERY:-1000}
NPROC=${NPROC:-1}
PARALLEL=${PARALLEL:-0}
THREADS=${THREADS:-}

BIN=.venv/bin
[ -x "$BIN/n2n-train" ] || BIN=$(dirname "$(command -v n2n-train)")
PY="$BIN/python"
[ -x "$PY" ] || PY=python3
if [ "$NPROC" -gt 1 ]; then
  TRAIN=("$BIN/torchrun" --standalone --nproc-per-node "$NPROC" -m offline_experiments.batch_train)
else
  TRAIN=("$BIN/n2n-train")
fi
EXTRA=()
[ -n "$THREADS" ] && EXTRA+=(--threads "$THREADS")

mkdir -p "$OUT"
echo "== export: $SCENES, $VIEWS views each, ${SIZE}px, $SPP spp inputs, $REF_SPP spp references -> $OUT/data"
start=$(date +%s)
"$BIN/n2n-export" --scene "$SCENES" --views "$VIEWS" --size "$SIZE" --spp "$SPP" --ref-spp "$REF_SPP" --out "$OUT/data"
export_s=$(( $(date +%s) - start ))

train() {  # target
  "${TRAIN[@]}" --data "$OUT/data" --target "$1" --out "$OUT/run-$1" --iters "$ITERS" --batch "$BATCH" \
    --crop "$CROP" --val-every "$VAL_EVERY" --ckpt-every "$VAL_EVERY" --val-fraction 0.15 "${EXTRA[@]}" "${@:2}"
}
start=$(date +%s)
if [ "$PARALLEL" = "1" ]; then
  echo "== training with noisy and with clean targets, at the same time ($ITERS steps each)"
  train noisy --quiet & pid=$!
  train clean --quiet
  wait "$pid"
else
  echo "== training with noisy targets ($ITERS steps)"
  train noisy
  echo "== training with clean targets ($ITERS steps)"
  train clean
fi
train_s=$(( $(date +%s) - start ))

"$PY" - "$OUT" "$export_s" "$train_s" <<'EOF'
import json, platform, sys
from pathlib import Path

out, export_s, train_s = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
runs = {}
for target in ("noisy", "clean"):
    stats = [json.loads(l) for l in (out / f"run-{target}" / "stats.jsonl").read_text().splitlines() if l.strip()]
    runs[target] = {r["step"]: r for r in stats if "val_psnr" in r}
config = json.loads((out / "run-noisy" / "config.json").read_text())
steps = sorted(set(runs["noisy"]) & set(runs["clean"]))
last = steps[-1]
inp = runs["clean"][last]["input_psnr"]
lines = [f"validation PSNR (dB, tonemapped), {config['val_views']} held-out views, {config['train_views']} training views, "
         f"{config['size'][1]}x{config['size'][0]}, {config['spp_levels']} spp inputs",
         "", "| step | input | noisy targets | clean targets | clean - noisy |", "|---:|---:|---:|---:|---:|"]
for s in steps:
    n, c = runs["noisy"][s]["val_psnr"], runs["clean"][s]["val_psnr"]
    lines.append(f"| {s} | {runs['clean'][s]['input_psnr']:.2f} | {n:.2f} | {c:.2f} | {c - n:+.2f} |")
lines += ["", f"paper (860 scenes, 960x540, 64 spp, 2000 epochs): input 22.31, clean targets 31.83, noisy ~31.3 dB",
          f"budget: export {export_s} s, training {train_s} s ({last} steps x minibatch {config['batch']} each), "
          f"{config['world_size']} process(es) on {config['device']}; machine: {platform.machine()} "
          f"{platform.processor() or ''}".rstrip()]
text = "\n".join(lines)
print(text)
(out / "results.md").write_text(text + "\n")
(out / "results.json").write_text(json.dumps({"steps": steps, "input_psnr": inp,
    "noisy": {s: runs["noisy"][s]["val_psnr"] for s in steps}, "clean": {s: runs["clean"][s]["val_psnr"] for s in steps},
    "export_seconds": export_s, "train_seconds": train_s, "config": config}, indent=2) + "\n")
EOF
