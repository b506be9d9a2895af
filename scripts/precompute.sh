#!/usr/bin/env bash
# Precompute training/inference artefacts of a dataset root (see `keysync precompute --help`):
#
#   bash scripts/precompute.sh latents   data/video_crop --vae pretrained_models/svd_vae --only-missing
#   bash scripts/precompute.sh audio     data/video_crop --model hubert --weights pretrained_models/hubert-base-ls960
#   bash scripts/precompute.sh audio     data/video_crop --model wavlm --weights pretrained_models/checkpoints/WavLM-Base+.pt
#   bash scripts/precompute.sh landmarks data/video_crop --backend mediapipe
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}; [ -x "$PY" ] || PY=python3
exec "$PY" -m keysync.cli.main precompute "$@"
