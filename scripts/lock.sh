#!/usr/bin/env bash
# Regenerate uv.lock from pyproject.toml (run after adding or changing a dependency, then commit
# uv.lock beside pyproject.toml): `bash scripts/lock.sh`. The lock is universal (every platform
# and Python that pyproject.toml allows), so setup resolves the same versions on every machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/uv.sh
"${UV[@]}" lock "$@"
echo "[lock] uv.lock is up to date with pyproject.toml: commit it"
