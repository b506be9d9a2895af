"""``keysync synth``: write a synthetic talking-face dataset whose correct mouth is known.

    keysync synth data/world --clips 40 --seconds 6 --size 128 --seed 0 [--crop_size 64]
    keysync synth examples/world --example --size 192 --seconds 4 --seed 4242

Per clip (own identity and voice): ``video_crop/<id>.mp4`` (25 fps, with sound),
``audio/<id>.wav`` (16 kHz), ``landmarks_crop/<id>.npy`` (exact, from the generator) and
``mouth/<id>.npz`` (ground-truth opening and width per frame). See
:mod:`keysync.data.synthetic_world`. Needs espeak-ng.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic talking-face dataset (known mouth per frame)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prefix", default="id", help="clip names <prefix><index>")
    p.add_argument("--crop_size", type=int, default=None,
                   help="write the dubbing pipeline's face crops at this size instead of whole frames")
    p.add_argument("--crop_scale", type=float, default=2.2, help="crop box size in face sizes (dubbing's crop_scale)")
    p.add_argument("--example", action="store_true",
                   help="write one held-out dubbing example instead (face.mp4, face_landmarks.npy, speech.wav)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keysync.data.synthetic_world import write_dubbing_example, write_world

    if args.example:
        paths = write_dubbing_example(args.root, args.size, args.seconds, args.seed)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    if args.clips < 1 or args.seconds <= 0 or args.size < 32:
        raise ValueError("need --clips >= 1, --seconds > 0 and --size >= 32")
    names = [f"{args.prefix}{i:03d}" for i in range(args.clips)]
    videos = write_world(args.root, args.clips, args.seconds, args.size, args.seed, names, args.crop_size, args.crop_scale)
    (args.root / "filelist.txt").write_text("".join(f"{v}\n" for v in videos))
    print(f"wrote {len(videos)} clips of {args.seconds:g} s at {args.size}² under {args.root} "
          f"(file list {args.root / 'filelist.txt'})")
    return 0
