"""``keysync filelist ROOT -o list.txt [--split 0.9,0.05,0.05]``: training file lists, split by speaker."""

from __future__ import annotations

import argparse
from pathlib import Path

from keysync.data.filelist import find_files, split_by_speaker, write_filelist


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("filelist", help="write a file list of videos (optionally split train/val/test by speaker)")
    p.add_argument("root")
    p.add_argument("-o", "--output", required=True, help="list.txt (with --split: list_train.txt, ...)")
    p.add_argument("--ext", default=".mp4,.mov")
    p.add_argument("--contains")
    p.add_argument("--exclude")
    p.add_argument("--split", help="train,val,test fractions, e.g. 0.9,0.05,0.05")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = find_files(args.root, args.ext.split(","), args.contains, args.exclude)
    if not files:
        raise FileNotFoundError(f"no files with {args.ext} under {args.root}")
    out = Path(args.output)
    if not args.split:
        write_filelist(files, out)
        print(f"{len(files)} files → {out}")
        return 0
    fractions = tuple(float(x) for x in args.split.split(","))
    if len(fractions) != 3:
        raise ValueError("--split needs three fractions: train,val,test")
    for name, group in split_by_speaker(files, fractions, args.seed).items():
        target = out.with_name(f"{out.stem}_{name}{out.suffix}")
        write_filelist(group, target)
        print(f"{name}: {len(group)} files → {target}")
    return 0
