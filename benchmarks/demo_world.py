"""Lip sync measured in the synthetic world, on held-out identities and held-out speech.

    .venv/bin/python benchmarks/demo_world.py [--clips 6] [--seconds 4] [--weights_root pretrained_models]
        [--demo_model keysync/assets/demo_model] [--record keysync/assets/demo_model/model.json]

Each test pair is a source clip (a new identity speaking its own new sentence) dubbed with the
audio of another new clip. Printed per method (mean over pairs; see
keysync.evaluation.world_metrics): sync (↑), leakage (↓), silence closure (↑), jitter (↓) and
pixels changed outside the allowed region (↓). Methods: keysync (the default models:
published weights, else the demo/tiny ones), and two baselines: ``copy source`` (the input
video unchanged) and ``closed mouth`` (the source re-rendered with a still, closed mouth); and the
ceiling, ``ideal dub (drawn)``: the source re-rendered with the driving audio's true mouth. The
last column, the plain correlation with the source's mouth, is not 0 even for the ideal dub (two
unrelated sentences share silent starts and pauses); ``leak`` is the partial correlation given
the driving mouth, near 0 for it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1000, help="held-out: different from any training seed")
    ap.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    ap.add_argument("--demo_model", type=Path, default=None, help="evaluate this demo-model folder (default: the "
                    "default models: published weights, else the bundled demo model)")
    ap.add_argument("--skip_model", action="store_true", help="baselines only")
    ap.add_argument("--record", type=Path, default=None,
                    help="a demo model's model.json: store the printed figures there under held_out")
    args = ap.parse_args()
    from keysync.data.synthetic_world import (Identity, make_clip, mouth_parameters, read_mouth_opening, render_frame,
                                              speech, world_landmarks)
    from keysync.evaluation.world_metrics import dub_world_clip, mean_scores, world_scores
    rng = np.random.default_rng(args.seed)
    clips = [make_clip(Identity.random(rng), speech(rng, args.seconds, voice), args.size, seed=int(rng.integers(1 << 30)))
             for voice in ("en+f4", "en-us+m2") * ((args.clips + 1) // 2)][: args.clips]
    methods = {"copy source": [], "closed mouth": [], "ideal dub (drawn)": []}
    chosen = None
    if not args.skip_model:
        from keysync.pipelines.default_models import DefaultModels, load_default_dubbing_models
        from keysync.pipelines.demo_model import load_demo_models

        if args.demo_model is not None:
            chosen = DefaultModels(*load_demo_models(args.demo_model), "demo", str(args.demo_model))
        else:
            chosen = load_default_dubbing_models(args.weights_root)
        methods[f"keysync ({chosen.kind})"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, src in enumerate(clips):
            drive = clips[(i + 1) % len(clips)]
            target, width = mouth_parameters(drive.audio)
            n = min(len(src.frames), len(target))

            def redraw(opening, width):  # the source's head, with the given mouth
                return np.stack([render_frame(src.identity, world_landmarks(
                    src.identity, args.size, opening[j], width[j], _shift(src, j, args.size), _scale(src, j, args.size)),
                    args.size) for j in range(n)])

            baselines = {"copy source": src.frames[:n], "closed mouth": redraw(np.zeros(n), np.ones(n)),
                         "ideal dub (drawn)": redraw(target, width)}
            for name, frames in baselines.items():  # (none changes pixels outside the mouth region)
                read = read_mouth_opening(frames, src.landmarks[:n])
                methods[name].append(world_scores(read, target[:n], src.opening[:n], 0))
            if chosen is not None:
                frames, changed_outside = dub_world_clip(chosen, src, drive.audio[: n * 640], Path(tmp), i)
                read = read_mouth_opening(frames, src.landmarks[: len(frames)])
                methods[f"keysync ({chosen.kind})"].append(
                    world_scores(read, target[: len(frames)], src.opening[: len(frames)], changed_outside))
    print(f"{len(clips)} held-out pairs, {args.seconds:g} s each, {args.size}²")
    print(f"{'method':<28}{'sync ↑':>9}{'leak ↓':>9}{'silence ↑':>11}{'jitter ↓':>10}{'outside ↓':>11}"
          f"{'corr(src)':>11}")
    table = {}
    for name, scores in methods.items():
        m = mean_scores(scores)
        table[name] = m.as_dict()
        print(f"{name:<28}{m.sync:>9.3f}{m.leakage:>9.3f}{m.silence_closure:>11.3f}{m.jitter:>10.4f}{m.outside_pixels:>11d}"
              f"{m.source_correlation:>11.3f}")
    if args.record is not None:
        import json

        info = json.loads(args.record.read_text())
        info["held_out"] = {"clips": len(clips), "seconds": args.seconds, "size": args.size, "seed": args.seed,
                            "command": "python benchmarks/demo_world.py " + " ".join(sys.argv[1:]), "scores": table}
        args.record.write_text(json.dumps(info, indent=1) + "\n")
        print(f"recorded in {args.record}")


def _shift(clip, j, size):
    """The head shift of frame j, recovered from the clip's landmarks (nose bridge vs template)."""
    from keysync.data.synthetic_world import world_landmarks

    ref = world_landmarks(clip.identity, size, 0.0, 1.0)
    scale = _scale(clip, j, size)
    centre = np.array([size / 2, size / 2])
    return tuple(clip.landmarks[j, 27] - (centre + (ref[27] - centre) * scale))


def _scale(clip, j, size):
    from keysync.data.synthetic_world import world_landmarks

    ref = world_landmarks(clip.identity, size, 0.0, 1.0)
    return float((clip.landmarks[j, 16, 0] - clip.landmarks[j, 0, 0]) / (ref[16, 0] - ref[0, 0]))


if __name__ == "__main__":
    main()
