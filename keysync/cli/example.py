"""``keysync example``: dub a bundled example video with new speech (the README's main job).

With the published KeySync weights under ``--weights_root``: ``examples/face.mp4`` (a real face)
with ``examples/speech.wav``. Without them: the bundled demo model
(:mod:`keysync.pipelines.demo_model`, trained on synthetic faces) on ``examples/world/face.mp4``
(a held-out synthetic face, with its known landmarks) and ``examples/world/speech.wav``; the
mouth follows the new speech and closes in its pauses. ``--tiny`` uses tiny random-weight models
instead (every stage runs; the mouth region shows noise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("example", help="dub the bundled example video (the install check)", description=__doc__)
    p.add_argument("--video", type=Path, default=None, help="default: the bundled example for the model used")
    p.add_argument("--audio", type=Path, default=None)
    p.add_argument("--tiny", action="store_true", help="tiny random-weight models instead of the demo model")
    p.add_argument("-o", "--output", type=Path, default=Path("outputs/example_dubbed.mp4"))
    p.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keysync.pipelines.default_models import load_default_dubbing_models
    from keysync.pipelines.dubbing import dub

    from dataclasses import replace

    chosen = load_default_dubbing_models(args.weights_root, args.device, demo=not args.tiny)
    print(f"model: {chosen.description}")
    options = chosen.options
    folder = EXAMPLES / "world" if chosen.kind == "demo" else EXAMPLES
    video = args.video or folder / "face.mp4"
    audio = args.audio or folder / "speech.wav"
    if chosen.kind == "demo" and args.video is None:
        options = replace(options, landmarks=folder / "face_landmarks.npy")  # known: the face is generated
    print(f"dubbing {video} with {audio}")
    try:
        result = dub(chosen.models, video, audio, args.output, options)
    finally:
        chosen.models.close()
    print(f"wrote {result.output}: {result.frames} frames, {result.size[1]}x{result.size[0]} at {result.fps:g} fps, "
          f"{result.audio_seconds:.2f} s of audio ({result.model_frames} model frames at 25 fps)")
    per_frame = result.seconds_per_frame()
    print("seconds per output frame by stage: " + ", ".join(f"{k} {v:.3f}" for k, v in per_frame.items() if v > 0)
          + f"; total {sum(per_frame.values()):.3f}")
    return 0
