#!/usr/bin/env bash
# Train the KeySync interpolation model with the reference recipe (train_interpolation.sh, SPEC §6.1):
# configs/experiment/keysync_interpolation.yaml = SVD init (input_blocks.0.0 and label_emb.0.0
# re-initialised), lr 3e-5, fp32, AdamW + 1000-step warm-up, batch 1, 14 consecutive frames with
# the first and last as conditions, HuBERT features (the reference inference feeds WavLM: pass
# data.dataset.audio_emb_type=wavlm to train for that), box masks, latent L2, time_ frozen.
# Strategy: deepspeed_stage_1 on GPU (needs `pip install deepspeed`), plain on CPU; set
# STRATEGY=ddp (or deepspeed_stage_2) to change it.
#
# Usage: ./train_interpolation.sh filelist.txt [num_workers=6] [batch_size=1] [num_devices=1] [Hydra overrides...]
# Env: PYTHON (interpreter), EXPERIMENT (default keysync_interpolation), STRATEGY (default: see above).
set -euo pipefail
if [[ $# -lt 1 ]]; then
    echo "usage: $0 filelist.txt [num_workers] [batch_size] [num_devices] [Hydra overrides...]" >&2
    exit 2
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
filelist=$1
workers=${2:-6}
batch_size=${3:-1}
devices=${4:-1}
for value in "$workers" "$batch_size" "$devices"; do
    [[ $value =~ ^[0-9]+$ ]] || { echo "$0: num_workers, batch_size and num_devices must be integers, got '$value'" >&2; exit 2; }
done
shift $(( $# < 4 ? $# : 4 ))
echo "Training with $filelist, $workers, $batch_size, $devices" >&2
exec "${PYTHON:-python}" -m keysync.cli.train "experiment=${EXPERIMENT:-keysync_interpolation}" \
    "data.filelist=$filelist" \
    data.dataset.folders.video_folder=video_crop data.dataset.folders.audio_folder=audio \
    data.dataset.folders.audio_emb_folder=audio_emb data.dataset.folders.latent_folder=video_crop_emb \
    data.dataset.folders.landmarks_folder=landmarks_crop \
    "data.num_workers=$workers" "data.batch_size=$batch_size" \
    data.dataset.mode=interpolation data.dataset.skip_frames=0 data.dataset.select_randomly=false \
    data.dataset.what_mask=box data.balance_datasets=true data.dataset.audio_emb_type=hubert \
    "trainer.devices=$devices" trainer.num_nodes=1 "trainer.strategy=${STRATEGY:-default}" \
    trainer.precision=32 trainer.accumulate_grad_batches=1 \
    module.learning_rate=3e-5 "module.to_freeze=[time_]" "module.to_unfreeze=[time_embed]" \
    "$@"
