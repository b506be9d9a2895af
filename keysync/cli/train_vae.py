"""``keysync train-vae``: train a small VAE from scratch on a folder of face-crop videos.

    keysync train-vae data/world/video_crop -o demo_vae.safetensors --resolution 64 --steps 1500

The result (our ``.safetensors`` VAE format, configs inside) is what ``keysync precompute
latents --vae`` and the pipelines load. See :mod:`keysync.training.autoencoder`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-vae", help="train a small VAE from scratch (e.g. for the synthetic world)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="folder, glob or .txt list of videos")
    p.add_argument("-o", "--output", type=Path, required=True, help=".safetensors file to write")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch_size", type=int, default=2)
    p.add_argument("--frames", type=int, default=5, help="consecutive frames per window (temporal decoder)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ch", type=int, default=32, help="base channels (a multiple of 32: GroupNorm)")
    p.add_argument("--ch_mult", default="1,2,2", help="channel multipliers; downsampling 2^(len - 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keysync.data.paths import list_videos
    from keysync.training.autoencoder import train_vae

    videos = list_videos(args.input)
    if not videos:
        raise FileNotFoundError(f"no videos found in {args.input}")
    if args.output.suffix != ".safetensors":
        raise ValueError(f"--output must end in .safetensors, got {args.output}")
    path = train_vae(videos, args.output, args.resolution, args.steps, args.batch_size, args.frames, args.lr,
                     args.ch, [int(c) for c in args.ch_mult.split(",")], args.seed)
    print(f"wrote {path} (VAE trained {args.steps} steps on {len(videos)} videos at {args.resolution}²)")
    return 0
