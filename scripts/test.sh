#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint (ruff) and run the test suite.
#   bash scripts/test.sh            the default tier: every test but the paper, slow and soak ones
#   bash scripts/test.sh --full     the default tier, each paper's profile and the slow node-kill tests
#   bash scripts/test.sh --paper    each seed paper's profile end to end alone
#   bash scripts/test.sh --soak     the fault-injection soak alone
#   bash scripts/test.sh --unit     the unit tests alone (no Ray), the quick loop while coding
# Other arguments go to pytest (e.g. a test file, -k NAME). The tiers and their times: README.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
# lint and format check first (rules in pyproject.toml [tool.ruff]): a finding fails the run
.venv/bin/ruff check .
.venv/bin/ruff format --check .

tier=(-m "not soak and not slow and not paper")
dist=loadfile
case "${1:-}" in
  --full) tier=(-m "not soak"); shift ;;
  # the four paper profiles are one file: spread its tests over both workers
  --paper) tier=(-m paper); dist=load; shift ;;
  --soak) tier=(-m soak); shift ;;
  --unit) tier=(-m unit); shift ;;
esac
# Two xdist workers, a test file on one worker (its module fixtures made once; the shared smoke
# run's tests are one file, so it runs once): see tests/conftest.py.
# pytest exits 5 when it collected no tests: that is a failure here, like any non-zero code
exec .venv/bin/python -m pytest -n 2 --dist "$dist" "${tier[@]}" "$@"
