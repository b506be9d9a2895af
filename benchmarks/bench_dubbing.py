"""Seconds per output frame of `keysync dub`, split by stage, tiny models on CPU.

    .venv/bin/python benchmarks/bench_dubbing.py [--seconds 4] [--fps 30] [--size 360x640] [--threads 2]

Makes a talking-head clip from a still (skimage's astronaut, jittered) and espeak-ng speech,
writes tiny random-weight models in the published formats, and dubs the clip through the real
pipeline (landmarks → crop → encode → keyframes → interpolation → decode → paste-back → mux).
Tiny models make the model stages cheap, so the shares here are not those of the full-size
models (see bench_sampling.py for full-size FLOPs); what this measures is the pipeline's own
overhead per frame (media, landmarks, crops, paste-back, encoding) at real video sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="360x640", help="HxW of the source video")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_dubbing import face_clip, speech

    from keysync.pipelines.dubbing import DubbingOptions, dub
    from keysync.pipelines.dubbing_models import TINY_CONFIGS, load_dubbing_models
    from keysync.pipelines.tiny import TINY_RESOLUTION, write_tiny_dubbing_weights

    h, w = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = int(round(args.seconds * args.fps))
        clip = face_clip(tmp / "clip.mp4", n, args.fps, (h, w), int(min(h, w) * 0.8))
        audio = speech(tmp / "speech.wav", "The quick brown fox jumps over the lazy dog. " * 3, args.seconds)
        paths = write_tiny_dubbing_weights(tmp / "w")
        models = load_dubbing_models(paths, keyframe_config=TINY_CONFIGS[0], interpolation_config=TINY_CONFIGS[1])
        start = time.perf_counter()
        result = dub(models, clip, audio, tmp / "out.mp4", DubbingOptions(resolution=TINY_RESOLUTION, progress=False))
        wall = time.perf_counter() - start
        models.close()
    per = result.seconds_per_frame()
    print(f"source {w}x{h} at {args.fps:g} fps, {args.seconds:g} s; output {result.frames} frames "
          f"({result.model_frames} model frames at 25 fps); torch threads {args.threads}")
    print(f"{'stage':<14}{'s/frame':>10}{'share':>8}")
    for stage, v in per.items():
        print(f"{stage:<14}{v:>10.4f}{v * result.frames / wall:>8.1%}")
    print(f"{'total (wall)':<14}{wall / result.frames:>10.4f}   {result.frames / wall:.2f} output frames/s")


if __name__ == "__main__":
    main()
