#!/usr/bin/env bash
# Reproduce the bundled demo model (keysync/assets/demo_model/) from scratch on a CPU:
# synthetic world → small VAE → latents and log-mel features → keyframe and interpolation
# models (Lightning, Hydra experiments demo_keyframe / demo_interpolation) → fp16 weights.
#
#   bash scripts/train_demo.sh [WORK_DIR] [OUT_DIR]
#
# WORK_DIR (default outputs/demo_train) holds the dataset and the training runs; OUT_DIR
# (default keysync/assets/demo_model) gets vae.safetensors, keyframe.safetensors and
# interpolation.safetensors, model.json (settings, recipe and the held-out benchmark's figures).
# Step counts: VAE_STEPS, KEYFRAME_STEPS, INTERPOLATION_STEPS; SKIP_BENCHMARK=1 skips the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYSYNC=${KEYSYNC:-.venv/bin/keysync}; [ -x "$KEYSYNC" ] || KEYSYNC=keysync
WORK=${1:-outputs/demo_train}
OUT=${2:-keysync/assets/demo_model}
CLIPS=${CLIPS:-48}
VAE_STEPS=${VAE_STEPS:-1500}
KEYFRAME_STEPS=${KEYFRAME_STEPS:-3000}
INTERPOLATION_STEPS=${INTERPOLATION_STEPS:-3000}
GUIDANCE_AUDIO=${GUIDANCE_AUDIO:-3.0}   # audio / reference guidance scales stored with the model (chosen on
GUIDANCE_REF=${GUIDANCE_REF:-1.5}       # held-out tuning clips, seed 555, among 5/2, 3/1.5, 2/1, 1/1)
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
log "5/6 keyframe ($KEYFRAME_STEPS steps) and interpolation ($INTERPOLATION_STEPS steps) models, in parallel (one thread each)"
pids=()
for stage in keyframe interpolation; do
  steps=$KEYFRAME_STEPS; [ "$stage" = interpolation ] && steps=$INTERPOLATION_STEPS
  OMP_NUM_THREADS=1 "$KEYSYNC" train experiment=demo_$stage data.filelist="$WORLD/filelist.txt" \
    output_dir="$WORK/runs" trainer.max_steps="$steps" > "$WORK/train_$stage.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { echo "training failed; see $WORK/train_*.log" >&2; exit 1; }; done
log "6/6 export (EMA weights, fp16, without the VAE decoder that vae.safetensors already holds)"
for stage in keyframe interpolation; do
  "$KEYSYNC" checkpoint export "$WORK/runs/demo_$stage/checkpoints/last.ckpt" "$OUT/$stage.safetensors" \
    --ema --dtype fp16 --exclude first_stage_model.
done
cat > "$OUT/model.json" <<JSON
{
 "resolution": 64,
 "crop_scale": 1.6,
 "audio": "logmel",
 "n_mels": 32,
 "guidance": {"audio": $GUIDANCE_AUDIO, "reference": $GUIDANCE_REF},
 "paste_mode": "replace",
 "recipe": {"script": "scripts/train_demo.sh", "clips": $CLIPS, "clip_seconds": 10, "world_seed": 0,
            "vae_steps": $VAE_STEPS, "keyframe_steps": $KEYFRAME_STEPS, "interpolation_steps": $INTERPOLATION_STEPS,
            "experiments": ["demo_keyframe", "demo_interpolation"]}
}
JSON
if [ -z "${SKIP_BENCHMARK:-}" ]; then
  log "held-out benchmark (new identities, new sentences and voices; recorded in $OUT/model.json)"
  PY=$(dirname "$KEYSYNC")/python; [ -x "$PY" ] || PY=python3
  "$PY" benchmarks/demo_world.py --demo_model "$OUT" --record "$OUT/model.json"
fi
log "done: $(du -sh "$OUT" | cut -f1) in $OUT"
