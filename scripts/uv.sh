# Sourced by setup.sh and lock.sh: the pinned uv (installed from PyPI into $PYTHON if missing) as
# the array UV, and the settings both use: never download a Python, use this machine's.
UV_VERSION=0.13.9
PY=${PYTHON:-python3}
export UV_PYTHON_DOWNLOADS=never UV_PYTHON="$PY"
if ! "$PY" -m uv --version 2>/dev/null | grep -q "^uv $UV_VERSION "; then
  echo "[setup] installing uv $UV_VERSION from PyPI"
  "$PY" -m pip install -q "uv==$UV_VERSION"
fi
UV=("$PY" -m uv)
