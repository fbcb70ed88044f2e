#!/usr/bin/env bash
# The GPU check (issue #25): on a machine with a CUDA GPU, from the repo root with the project's
# .venv (scripts/setup.sh makes it), in under 8 minutes:
#   1. pytest -m gpu tests/gpu                           (GPU results equal the CPU's)
#   2. voxray synth-corpus (small) + voxray run --profile smoke on it, on CUDA: the smoke profile
#      keeps base.yaml's num_gpus: auto / use_gpu: auto, so each pool's actors and the training
#      worker take one GPU each once Ray sees one (nvidia-smi is sampled to show the GPU in use)
#   3. python -m bench all --quick                       (every benchmark, each in its own process)
# The cheap correctness checks go first: a part that runs out of time loses only its own rest
# (the stages and benchmarks it finished are in its figures).
# Each part runs under its own timeout; its figures and exit code are appended to one Markdown
# file, bench/results/gpu-<UTC date and time>.md (or under the folder given as $1), whose path
# is printed at the start and the end; each part's full output lies beside it (.log files).
# Exits 2 without running anything when no CUDA device is visible to the .venv's torch, else
# 1 when a part failed or timed out, else 0.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
RESULTS_DIR=${1:-bench/results}
# seconds per part: 455 together, 475 with each part's 5 s to die when killed (under 8 minutes)
PROBE_TIMEOUT=30
PYTEST_TIMEOUT=40
SYNTH_TIMEOUT=30
SMOKE_TIMEOUT=185
BENCH_TIMEOUT=170

die() {
  echo "gpu_check: $*" >&2
  exit 2
}

[ -x "$PY" ] || die "no Python at $PY: run scripts/setup.sh first (or set PYTHON)"
cuda=$(timeout "$PROBE_TIMEOUT" "$PY" - <<'EOF' 2>&1
import torch
if torch.version.cuda is None:
    raise SystemExit(f"torch {torch.__version__} is built without CUDA")
if not torch.cuda.is_available():
    raise SystemExit(f"no CUDA device visible to torch {torch.__version__} (CUDA {torch.version.cuda})")
print(f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
)
rc=$?
[ "$rc" -ne 124 ] || cuda="the CUDA probe (importing torch) timed out after ${PROBE_TIMEOUT} s"
[ "$rc" -eq 0 ] || die "refusing to run: ${cuda:-the CUDA probe failed (exit $rc)}"

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR" || die "cannot create $RESULTS_DIR"
results="$RESULTS_DIR/gpu-$stamp.md"
work=$(mktemp -d /tmp/voxray-gpu-check.XXXXXX)
smi_pid=""
trap '[ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null; rm -rf "$work"' EXIT
echo "gpu_check: figures go to $results"

{
  echo "# GPU check, $stamp"
  echo
  echo "- device: $cuda"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- CPUs: $(nproc); timeouts (s): pytest $PYTEST_TIMEOUT, synth $SYNTH_TIMEOUT, smoke $SMOKE_TIMEOUT, bench $BENCH_TIMEOUT"
} >>"$results"

# Sample the GPU every second while a part runs; its peaks are one of the part's figures.
smi_start() {
  smi_pid=""
  command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 1000 \
    >"$work/smi.csv" 2>/dev/null &
  smi_pid=$!
}
smi_stop() {
  [ -n "$smi_pid" ] || return 0
  kill "$smi_pid" 2>/dev/null
  wait "$smi_pid" 2>/dev/null
  smi_pid=""
  awk -F', *' 'NF == 2 { if ($1 > u) u = $1; if ($2 > m) m = $2; n++ }
    END { if (n) printf "- GPU (nvidia-smi, %d samples): peak utilisation %d%%, peak memory %d MiB\n", n, u, m }' \
    "$work/smi.csv"
}

failed=()
# run_part NAME TIMEOUT FIGURES-FILTER COMMAND...: COMMAND's output to NAME's log; the figures
# (lines of the log FIGURES-FILTER keeps), time and exit code to the results file.
run_part() {
  local name=$1 limit=$2 filter=$3
  shift 3
  local log="${results%.md}.$name.log" start rc
  echo "gpu_check: $name (timeout ${limit}s) ..."
  start=$(date +%s)
  smi_start
  timeout -k 5 "$limit" "$@" >"$log" 2>&1
  rc=$?
  {
    echo
    echo "## $name"
    echo
    echo "- command: \`$*\`"
    echo "- exit code: $rc$([ "$rc" -eq 124 ] && echo " (timed out after ${limit} s)"), $(($(date +%s) - start)) s"
    smi_stop
    echo
    echo '```'
    grep -E "$filter" "$log" | tail -n 60
    if [ "$rc" -ne 0 ]; then
      echo "... last lines of $log:"
      tail -n 25 "$log"
    fi
    echo '```'
  } >>"$results"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
  echo "gpu_check: $name: exit $rc"
}

# 1. the GPU tests
run_part pytest-gpu "$PYTEST_TIMEOUT" '(passed|failed|skipped|error)' \
  "$PY" -m pytest -m gpu tests/gpu -q -p no:cacheprovider

# 2. the smoke profile end to end on CUDA
corpus="$work/corpus"
out="$work/out"
run_part synth-corpus "$SYNTH_TIMEOUT" '^wrote' \
  "$PY" -m voxray synth-corpus --out "$corpus" --speakers 6 --videos 2 --utts 2 --seed 11 \
  --test-speakers 2 --jobs 4
if [ -d "$corpus/wav" ]; then
  run_part smoke "$SMOKE_TIMEOUT" 'stage [a-z_]+: done|visible|GPU|cuda|error|Error' \
    "$PY" -m voxray run --data-root "$corpus" --out "$out" --profile smoke
else
  echo -e "\n## smoke\n\n- not run: synth-corpus made no corpus" >>"$results"
  failed+=("smoke (not run)")
fi

# 3. the benchmarks (each prints its figures as one JSON line last)
run_part bench "$BENCH_TIMEOUT" '^(== bench|\{|failed:)' "$PY" -m bench all --quick

{
  echo
  echo "## summary"
  echo
  if [ ${#failed[@]} -eq 0 ]; then echo "- every part passed"; else echo "- failed: ${failed[*]}"; fi
} >>"$results"
echo "gpu_check: figures in $results"
[ ${#failed[@]} -eq 0 ] || { echo "gpu_check: failed: ${failed[*]}" >&2; exit 1; }
