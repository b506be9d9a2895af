#!/usr/bin/env bash
# Dub from precomputed artefacts (as the reference's inference.sh): <root>/video_crop videos with
# their latents and landmarks, and <root>/audio wavs with HuBERT/WavLM features, all written by
# `keysync precompute`. Output: 512x512 at 25 fps, the whole audio (add --reference_compat for the
# reference's 14+13k cut).
#
#   bash scripts/inference.sh --precomputed_root data --filelist data/video_crop \
#        --file_list_audio data/audio --output_folder out [--keyframes_ckpt ...] [--interpolation_ckpt ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}; [ -x "$PY" ] || PY=python3
case " $* " in *" --precomputed_root "*) ;; *) echo "inference.sh needs --precomputed_root ROOT" >&2; exit 2;; esac
if [ "${NPROC:-1}" -gt 1 ]; then
  exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m keysync.cli.main dub "$@"
fi
exec "$PY" -m keysync.cli.main dub "$@"
