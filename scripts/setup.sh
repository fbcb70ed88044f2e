#!/usr/bin/env bash
# Set up everything voxray needs on a fresh Debian/Ubuntu machine (root, or sudo):
# system packages (espeak-ng for the demo corpus, ffmpeg for VoxCeleb2 m4a, Chromium for the
# report test, Debian's asterisk voice prompts as a small real-voice test set), a virtual
# environment in .venv and voxray installed into it with its test extras, at exactly the versions
# of the committed uv.lock (installed with uv, itself pinned and installed from PyPI if missing).
# Idempotent: a second run only checks. Fails when pyproject.toml changed and uv.lock was not
# regenerated (`bash scripts/lock.sh`), so CI catches a stale lock.
set -euo pipefail
cd "$(dirname "$0")/.."

# Asterisk voices: one recorded speaker each, the real-voice corpus of `voxray real-corpus`
# (the prompt-* packages are raw GSM, decoded with ffmpeg). gcc + python3-dev build webrtcvad
# (a dependency of the resemblyzer test peer; PyPI has no wheel of it).
APT_PACKAGES=(espeak-ng ffmpeg chromium gcc python3-dev
  asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav
  asterisk-core-sounds-es-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav
  asterisk-prompt-fr-armelle asterisk-prompt-es-co)

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

source scripts/uv.sh

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  # --seed: pip stays available in .venv for a one-off install
  "${UV[@]}" venv -q --seed .venv
fi

stamp=.venv/.voxray-installed
want=$(cat pyproject.toml uv.lock | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if ! "${UV[@]}" lock --locked -q; then
    echo "[setup] uv.lock does not match pyproject.toml: run 'bash scripts/lock.sh' and commit uv.lock" >&2
    exit 1
  fi
  echo "[setup] installing voxray and its locked dependencies into .venv"
  # --inexact keeps packages the lock does not name (pip itself, a one-off install);
  # --compile-bytecode as pip does: else every Ray worker compiles torch and ray at import
  "${UV[@]}" sync -q --frozen --inexact --compile-bytecode --extra test
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import torch, torchaudio, ray, captum; assert torch.__version__.startswith('2.11'), torch.__version__" \
  || { echo "[setup] the environment is broken: torch/torchaudio/ray/captum do not import"; exit 1; }
