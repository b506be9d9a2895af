"""``keysync example``: dub the bundled example (examples/face.mp4 + examples/speech.wav).

Uses the published KeySync weights when they are all under ``--weights_root``; otherwise tiny
random-weight models in the published formats (written once to ``<weights_root>/tiny``), which
run every stage of the real pipeline but do not lip-sync (the mouth region shows noise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("example", help="dub the bundled example video (the install check)", description=__doc__)
    p.add_argument("--video", type=Path, default=EXAMPLES / "face.mp4")
    p.add_argument("--audio", type=Path, default=EXAMPLES / "speech.wav")
    p.add_argument("-o", "--output", type=Path, default=Path("outputs/example_dubbed.mp4"))
    p.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keysync.pipelines.default_models import load_default_dubbing_models
    from keysync.pipelines.dubbing import dub

    chosen = load_default_dubbing_models(args.weights_root, args.device)
    print(f"model: {chosen.description}")
    try:
        result = dub(chosen.models, args.video, args.audio, args.output, chosen.options)
    finally:
        chosen.models.close()
    print(f"wrote {result.output}: {result.frames} frames, {result.size[1]}x{result.size[0]} at {result.fps:g} fps, "
          f"{result.audio_seconds:.2f} s of audio ({result.model_frames} model frames at 25 fps)")
    per_frame = result.seconds_per_frame()
    print("seconds per output frame by stage: " + ", ".join(f"{k} {v:.3f}" for k, v in per_frame.items() if v > 0)
          + f"; total {sum(per_frame.values()):.3f}")
    return 0
