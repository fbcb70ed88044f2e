#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint (ruff) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
# lint and format check first (rules in pyproject.toml [tool.ruff]): a finding fails the run
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# pytest exits 5 when it collected no tests: that is a failure here, like any non-zero code
exec .venv/bin/python -m pytest "$@"
