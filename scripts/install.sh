#!/usr/bin/env bash
# Install keysync into ./.venv on a fresh machine: system packages (ffmpeg, espeak-ng, sox),
# the right torch build, then the package with its extras. Idempotent; safe to re-run.
#
#   KEYSYNC_TORCH_INDEX=https://download.pytorch.org/whl/cu124 bash scripts/install.sh   # CUDA build
#   KEYSYNC_SKIP_APT=1 bash scripts/install.sh                                            # no apt-get
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${KEYSYNC_VENV:-.venv}
APT_PACKAGES=(ffmpeg espeak-ng sox libsox-fmt-all chromium chromium-driver)

log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }

# 1. System packages: media decoding/encoding (ffmpeg), test media (espeak-ng, sox) and the
#    headless browser the web demo's test drives (chromium, chromium-driver).
missing=()
for pkg in "${APT_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ] && [ -z "${KEYSYNC_SKIP_APT:-}" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v ffmpeg >/dev/null || { echo "ffmpeg is required (apt-get install ffmpeg)" >&2; exit 1; }

# 2. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  $PYTHON -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

# 3. torch first, pinned, so that no dependency can pull a multi-GB CUDA wheel on a CPU machine.
if [ -n "${KEYSYNC_TORCH_INDEX:-}" ]; then
  log "torch from $KEYSYNC_TORCH_INDEX"
  "${PIP[@]}" torch==2.13.0 --index-url "$KEYSYNC_TORCH_INDEX"
else
  log "torch (CPU build where available)"
  "${PIP[@]}" torch==2.13.0
fi

# 4. The package and its extras, under the tested constraints.
log "keysync and dependencies"
"${PIP[@]}" -c constraints.txt -e ".[hf,media,face,train,eval,test,web]"

# 5. Face backends whose declared dependencies would pull CUDA torch or GUI opencv: installed
#    without dependencies (the real ones come from the `face` extra above). SAM 2 is built
#    without its CUDA extension (only hole filling needs it).
log "face backends (mediapipe, SAM 2, face-alignment)"
"${PIP[@]}" --no-deps mediapipe==0.10.21 face-alignment==1.5.0
SAM2_BUILD_CUDA=0 "${PIP[@]}" --no-deps --no-build-isolation sam2==1.1.0
log "done: $("$VENV/bin/python" -c 'import torch, keysync; print(f"keysync {keysync.__version__}, torch {torch.__version__}")')"
