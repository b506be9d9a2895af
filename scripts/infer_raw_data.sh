#!/usr/bin/env bash
# Dub raw videos (any size, frame rate, audio format) with new audio: landmarks, face crops, VAE
# latents and audio features are computed on the fly; outputs keep each video's size and fps.
#
#   bash scripts/infer_raw_data.sh --filelist data/videos --file_list_audio data/audios \
#        --output_folder out [--keyframes_ckpt K.pt] [--interpolation_ckpt I.pt] [--compute_until 45]
#   NPROC=4 bash scripts/infer_raw_data.sh ...       # one batch over 4 GPUs (torchrun), one summary
#
# Every `keysync dub` option is accepted (see `keysync dub --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}; [ -x "$PY" ] || PY=python3
if [ "${NPROC:-1}" -gt 1 ]; then
  exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m keysync.cli.main dub "$@"
fi
exec "$PY" -m keysync.cli.main dub "$@"
