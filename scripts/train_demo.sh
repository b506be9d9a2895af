#!/usr/bin/env bash
# Reproduce the bundled demo model (keysync/assets/demo_model/) from scratch on a CPU:
# synthetic world → small VAE → latents and log-mel features → keyframe and interpolation
# models (Lightning, Hydra experiments demo_keyframe / demo_interpolation) → fp16 weights.
#
#   bash scripts/train_demo.sh [WORK_DIR] [OUT_DIR]
#
# WORK_DIR (default outputs/demo_train) holds the dataset and the training runs; OUT_DIR
# (default keysync/assets/demo_model) gets vae.safetensors, keyframe.safetensors and
# interpolation.safetensors. Step counts: VAE_STEPS, KEYFRAME_STEPS, INTERPOLATION_STEPS.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYSYNC=${KEYSYNC:-.venv/bin/keysync}; [ -x "$KEYSYNC" ] || KEYSYNC=keysync
WORK=${1:-outputs/demo_train}
OUT=${2:-keysync/assets/demo_model}
CLIPS=${CLIPS:-48}
VAE_STEPS=${VAE_STEPS:-1500}
KEYFRAME_STEPS=${KEYFRAME_STEPS:-3000}
INTERPOLATION_STEPS=${INTERPOLATION_STEPS:-3000}
WORLD="$WORK/world"
mkdir -p "$WORK" "$OUT"
log() { printf '\033[1m[train_demo %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*"; }

log "1/6 synthetic world: $CLIPS clips of 10 s, face crops 64² (seed 0; held-out data uses other seeds)"
"$KEYSYNC" synth "$WORLD" --clips "$CLIPS" --seconds 10 --size 128 --seed 0 --crop_size 64 --crop_scale 1.6
log "2/6 log-mel audio features"
"$KEYSYNC" -q precompute audio "$WORLD/filelist.txt" --model logmel
log "3/6 VAE ($VAE_STEPS steps)"
"$KEYSYNC" train-vae "$WORLD/video_crop" -o "$OUT/vae.safetensors" --resolution 64 --steps "$VAE_STEPS"
log "4/6 latents"
"$KEYSYNC" -q precompute latents "$WORLD/filelist.txt" --vae "$OUT/vae.safetensors" --resolution 64 --mode mode
for stage in keyframe interpolation; do
  steps=$KEYFRAME_STEPS; [ "$stage" = interpolation ] && steps=$INTERPOLATION_STEPS
  log "$([ "$stage" = keyframe ] && echo 5 || echo 6)/6 $stage model ($steps steps)"
  "$KEYSYNC" train experiment=demo_$stage data.filelist="$WORLD/filelist.txt" output_dir="$WORK/runs" \
    trainer.max_steps="$steps"
  "$KEYSYNC" checkpoint export "$WORK/runs/demo_$stage/checkpoints/last.ckpt" "$OUT/$stage.safetensors" --ema --dtype fp16 --exclude first_stage_model.
done
log "done: $(du -sh "$OUT" | cut -f1) in $OUT"
