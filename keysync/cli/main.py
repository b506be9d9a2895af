"""``keysync`` command: one entry point, one sub-command per job."""

from __future__ import annotations

import argparse
import logging
import sys

from keysync.media.errors import MediaError
from keysync.cli import (animate, checkpoint, demo, download_weights, dub, evaluate, example, filelist, precompute,
                         smoke, synth, train, train_vae)

SUBCOMMANDS = {
    "animate": animate,
    "checkpoint": checkpoint,
    "demo": demo,
    "download-weights": download_weights,
    "dub": dub,
    "evaluate": evaluate,
    "example": example,
    "filelist": filelist,
    "precompute": precompute,
    "smoke": smoke,
    "synth": synth,
    "train": train,
    "train-vae": train_vae,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keysync", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in SUBCOMMANDS.items():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, RuntimeError, MediaError) as err:
        print(f"keysync {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
