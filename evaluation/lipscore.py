#!/usr/bin/env python
"""LipScore of generated videos against ground truth (thin entry point).

    python evaluation/lipscore.py --pred DIR --gt DIR [--model vsr_trlrs2lrs3vox2avsp_base_updated.pth]
        [--landmarks-dir DIR | --landmarks-backend mediapipe|fan] [--out DIR] [--reference-quirks]

LipScore = mean over videos of the mean per-frame cosine similarity between the auto_avsr VSR
encoder features of the generated and the ground-truth mouth crops. Range [-1, 1], **higher is
better** (1.0 = identical lip movements). Writes ``<out>/lipscore.csv`` (mean),
``lipscore_per_video.csv``, ``lipscore.json`` and ``lipscore.md``. Library code:
:mod:`keysync.evaluation.lipscore`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from keysync.cli.evaluate import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="auto_avsr checkpoint (default <weights-dir>/vsr_trlrs2lrs3vox2avsp_base_updated.pth)")
    add_arguments(parser, default_metrics="lipscore")
    parser.set_defaults(name="lipscore")
    args = parser.parse_args(argv)
    if args.model:
        args.weights.append(f"lipscore={args.model}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"lipscore: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
