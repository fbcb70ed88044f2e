#!/usr/bin/env bash
# Set up, synthesise the demo corpus and run the whole voxray pipeline on it with local Ray.
# Outputs go to demo_data/out (report: demo_data/out/report/index.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
CORPUS=${VOXRAY_DEMO_CORPUS:-demo_data/corpus}
OUT=${VOXRAY_DEMO_OUT:-demo_data/out}
SYNTH=(--speakers 90 --videos 2 --utts 2 --seed 0)
# A corpus synthesised with other settings (an older demo) is moved aside with its outputs, so
# that one folder never mixes two corpora. Outputs made with other settings (an edited demo
# profile) need no such care: each stage's fingerprint redoes what they change (README).
if [ -f "$CORPUS/veri_test2.txt" ] && [ "$(cat "$CORPUS/.synth-args" 2>/dev/null)" != "${SYNTH[*]}" ]; then
  stamp=$(date +%Y%m%d-%H%M%S)
  echo "demo: $CORPUS was synthesised with other settings; moving it (and $OUT) to *.old-$stamp"
  mv "$CORPUS" "$CORPUS.old-$stamp"
  if [ -e "$OUT" ]; then mv "$OUT" "$OUT.old-$stamp"; fi
fi
if [ ! -f "$CORPUS/veri_test2.txt" ]; then
  .venv/bin/voxray synth-corpus --out "$CORPUS" "${SYNTH[@]}"
  echo "${SYNTH[*]}" > "$CORPUS/.synth-args"
fi
.venv/bin/voxray run --data-root "$CORPUS" --out "$OUT" --profile demo "$@"
