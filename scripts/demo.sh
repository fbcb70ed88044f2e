#!/usr/bin/env bash
# Set up, synthesise the demo corpus and run the whole voxray pipeline on it with local Ray.
# Outputs go to demo_data/out (report: demo_data/out/report/index.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
CORPUS=${VOXRAY_DEMO_CORPUS:-demo_data/corpus}
OUT=${VOXRAY_DEMO_OUT:-demo_data/out}
if [ ! -f "$CORPUS/veri_test2.txt" ]; then
  .venv/bin/voxray synth-corpus --out "$CORPUS" --speakers 30 --videos 3 --utts 4 --seed 0
fi
.venv/bin/voxray run --data-root "$CORPUS" --out "$OUT" --profile demo "$@"
