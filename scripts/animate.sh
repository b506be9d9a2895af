#!/usr/bin/env bash
# KeyFace: animate one face image with speech into a talking-face video.
#
#   scripts/animate.sh IMAGE AUDIO [OUTPUT.mp4] [more keysync animate options...]
#   scripts/animate.sh face.png speech.wav out.mp4 --emotion happy
#   scripts/animate.sh face.png speech.wav out.mp4 --emotion_csv va.csv --accentuate
#
# A thin wrapper over `keysync animate` (run `keysync animate --help` for every option). Weights
# are read from pretrained_models/ (override with --weights_root or one flag per file).
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -ge 1 && ( "$1" == -h || "$1" == --help ) ]]; then
    usage
    exit 0
fi
if [[ $# -lt 2 ]]; then
    usage >&2
    exit 2
fi
image=$1
audio=$2
shift 2
output="outputs/$(basename "${image%.*}")_$(basename "${audio%.*}").mp4"
if [[ $# -gt 0 && "$1" != -* ]]; then
    output=$1
    shift
fi

if command -v keysync >/dev/null 2>&1; then
    exec keysync animate --image "$image" --audio "$audio" -o "$output" "$@"
fi
exec "${PYTHON:-python}" -m keysync.cli.main animate --image "$image" --audio "$audio" -o "$output" "$@"
