#!/usr/bin/env python
"""LipLeak (thin entry point): silent driving audio, then the speaking-frame fraction.

    # 1. one silent WAV per real talking video, as long as the video
    python evaluation/lipleak.py silence --videos REAL_DIR --out SILENT_AUDIO_DIR
    # 2. run the lip-sync model on REAL_DIR with SILENT_AUDIO_DIR -> GENERATED_DIR
    # 3. fraction of generated frames whose mouth still moves as in speech (lower is better)
    python evaluation/lipleak.py score --pred GENERATED_DIR [--gt REAL_DIR] [--lipleak-threshold 0.08]

The speaking decision is documented in :mod:`keysync.evaluation.lipleak`. ``score`` accepts
every option of ``keysync evaluate`` and runs it with ``--metrics lipleak``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from keysync.cli.evaluate import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    silence = sub.add_parser("silence", help="write silent WAVs matching the videos' durations")
    silence.add_argument("--videos", required=True)
    silence.add_argument("--out", required=True)
    score = sub.add_parser("score", help="LipLeak of generated videos")
    add_arguments(score, default_metrics="lipleak")
    score.set_defaults(name="lipleak")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.action == "silence":
            from keysync.evaluation.lipleak import write_silent_audio
            from keysync.evaluation.runner import list_videos

            for video in list_videos(args.videos):
                print(write_silent_audio(video, Path(args.out) / f"{video.stem}.wav"))
            return 0
        return run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"lipleak: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
