#!/usr/bin/env bash
# Compute the artefacts of a dataset root once (kept for later runs and for training), then dub
# from them: latents, landmarks, HuBERT and WavLM features of every <root>/video_crop clip and its
# <root>/audio wav; existing artefacts are reused.
#
#   bash scripts/infer_and_compute_emb.sh ROOT OUTPUT_FOLDER [keysync dub options...]
#
# Weights: VAE=pretrained_models/svd_vae HUBERT=pretrained_models/hubert-base-ls960
#          WAVLM=pretrained_models/checkpoints/WavLM-Base+.pt (override with env variables).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
ROOT=$1; OUT=$2; shift 2
PY=${PYTHON:-.venv/bin/python}; [ -x "$PY" ] || PY=python3
KS=("$PY" -m keysync.cli.main)
"${KS[@]}" precompute latents "$ROOT/video_crop" --only-missing --vae "${VAE:-pretrained_models/svd_vae}"
"${KS[@]}" precompute landmarks "$ROOT/video_crop" --only-missing
"${KS[@]}" precompute audio "$ROOT/video_crop" --only-missing --model hubert --weights "${HUBERT:-pretrained_models/hubert-base-ls960}"
"${KS[@]}" precompute audio "$ROOT/video_crop" --only-missing --model wavlm --weights "${WAVLM:-pretrained_models/checkpoints/WavLM-Base+.pt}"
exec bash scripts/inference.sh --precomputed_root "$ROOT" --filelist "$ROOT/video_crop" \
     --file_list_audio "$ROOT/audio" --output_folder "$OUT" "$@"
