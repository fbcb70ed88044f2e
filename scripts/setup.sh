#!/usr/bin/env bash
# Set up everything voxray needs on a fresh Debian/Ubuntu machine (root, or sudo):
# system packages (espeak-ng for the demo corpus, ffmpeg for VoxCeleb2 m4a, Chromium for the
# report test, Debian's asterisk voice prompts as a small real-voice test set), a virtual
# environment in .venv and voxray installed into it with its test extras. Idempotent: a second
# run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
APT_PACKAGES=(espeak-ng ffmpeg chromium asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

stamp=.venv/.voxray-installed
want=$(sha1sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing voxray and its dependencies into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch and torchaudio are pinned together in pyproject.toml (torchaudio 2.11 needs torch 2.11)
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import torch, torchaudio, ray, captum; assert torch.__version__.startswith('2.11'), torch.__version__" \
  || { echo "[setup] the environment is broken: torch/torchaudio/ray/captum do not import"; exit 1; }
