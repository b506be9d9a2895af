"""``keysync download-weights``: fetch the published weights into ``pretrained_models/``.

The only command that touches the network, and only when asked: it needs ``huggingface_hub``
(``pip install huggingface_hub``) and an online machine. Everything else reads local files.

    keysync download-weights                         # every KeySync dubbing file
    keysync download-weights --only keyframe,wavlm   # some of them
    keysync download-weights --list                  # what would be fetched, from where
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download-weights", help="fetch published weights (needs network + huggingface_hub)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("pretrained_models"))
    p.add_argument("--only", default=None, help="comma-separated names (see --list)")
    p.add_argument("--list", action="store_true", help="print the files and their sources, download nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keysync.pipelines.weights import DUBBING_FILES, download_weights

    only = [n.strip() for n in args.only.split(",")] if args.only else None
    unknown = sorted(set(only or ()) - set(DUBBING_FILES))
    if unknown:
        raise ValueError(f"unknown weight names {unknown}; known: {', '.join(DUBBING_FILES)}")
    if args.list:
        for name, spec in DUBBING_FILES.items():
            if only is None or name in only:
                state = "present" if (args.root / spec.local).exists() else "missing"
                print(f"{name:<14}{args.root / spec.local}  <- huggingface.co/{spec.repo} ({spec.remote})  [{state}]")
        return 0
    for path in download_weights(DUBBING_FILES, args.root, only):
        print(f"wrote {path}")
    return 0
