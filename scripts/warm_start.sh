#!/usr/bin/env bash
# Reproduces n2n_live/weights/warm_start.pt from scratch: n2n-live's default network trained on noisy pairs of the
# bundled scenes only (no reference image is rendered or read). The recipe, its budget and its options:
# offline_experiments/warm_start.py (python -m offline_experiments.warm_start --help).
#
#   scripts/warm_start.sh                                            # the committed weights (~7 min, 2 CPU cores)
#   scripts/warm_start.sh --views 1 --size 32 --iters 3 --crop 32 --work out/ws --weights out/ws/w.pt  # smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # see n2n_live/commands/cli.py: spinning threads on shared cores
exec "$PY" -m offline_experiments.warm_start "$@"
