#!/usr/bin/env python
"""All evaluation metrics in one table (thin entry point; same as ``keysync evaluate``).

    python evaluation/evaluate.py --pred DIR --gt DIR --metrics lipscore,lse,psnr,ssim,lipleak,fid,fvd,csim,lpips
        [--audio DIR] [--weights-dir DIR] [--weights METRIC=PATH ...] [--out DIR] [--list]

See :mod:`keysync.cli.evaluate` and :mod:`keysync.evaluation`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from keysync.cli.evaluate import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
