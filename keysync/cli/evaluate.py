"""``keysync evaluate``: score generated videos against ground truth, one table for all metrics.

    keysync evaluate --pred OUT_DIR --gt GT_DIR --metrics lipscore,lse,psnr,ssim,lipleak \\
        [--audio AUDIO_DIR] [--weights-dir pretrained_models/evaluation] [--weights lse=PATH] \\
        [--landmarks-dir DIR | --landmarks-backend mediapipe|fan|none] [--out DIR]

Writes ``<out>/<name>.csv`` (summary), ``<name>_per_video.csv``, ``<name>.json`` and
``<name>.md``, and prints the Markdown table. Metrics whose weight files are missing appear as
``unavailable: needs <file>`` rows (exit status 0 unless ``--strict``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["add_parser", "run", "build_options"]

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="compute LipScore, LSE, LipLeak, FID, FVD, CSIM, PSNR, SSIM, LPIPS",
                            description=__doc__ + "\nUse --list for the metrics and the weight files they need.",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser, default_metrics: str = "lipscore,lse,psnr,ssim") -> None:
    parser.add_argument("--pred", help="folder of generated videos (required unless --list)")
    parser.add_argument("--gt", help="folder of ground-truth videos (matched by file stem)")
    parser.add_argument("--audio", help="folder of driving audio files (<stem>.wav); default: the videos' own audio")
    parser.add_argument("--metrics", default=default_metrics,
                        help=f"comma-separated metric names, or 'all' (default {default_metrics})")
    parser.add_argument("--out", default="evaluation_results", help="output folder (default ./evaluation_results)")
    parser.add_argument("--name", default="results", help="output file stem (default results)")
    parser.add_argument("--weights-dir", default="pretrained_models/evaluation",
                        help="folder holding the metrics' weight files under their default names")
    parser.add_argument("--weights", action="append", default=[], metavar="METRIC=PATH",
                        help="weight file of one metric, e.g. lse=/x/syncnet_v2.model (repeatable)")
    parser.add_argument("--landmarks-dir", help="precomputed landmarks <stem>.npy (N, 68, 2) for pred and gt videos")
    parser.add_argument("--landmarks-backend", default="mediapipe", choices=["mediapipe", "fan", "none"],
                        help="face landmark detector when no .npy file exists (default mediapipe)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference-quirks", action="store_true",
                        help="LipScore as the original: refuse clips under 12 frames (SPEC §11.29; the "
                             "non-reset divisor quirk concerns only the LipScore class API)")
    parser.add_argument("--lipleak-threshold", type=float, default=None,
                        help="LipLeak: mouth-activity threshold (default keysync.evaluation.lipleak.DEFAULT_THRESHOLD)")
    parser.add_argument("--vshift", type=int, default=15, help="SyncNet offset search range +-frames (default 15)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any metric is unavailable or failed")
    parser.add_argument("--list", action="store_true", help="list the metrics and their weight files, then exit")


class _LazyDetector:
    """Builds the face detector on first use (so runs with .npy landmarks never import it)."""

    def __init__(self, backend: str):
        self.backend, self._fn = backend, None

    def __call__(self, frames):
        if self._fn is None:
            from keysync.evaluation.landmarks import face_detector

            self._fn = face_detector(self.backend)
        return self._fn(frames)


def _parse_weights(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--weights expects METRIC=PATH, got {item!r}")
        out[name.strip().lower()] = path
    return out


def build_options(args: argparse.Namespace):
    from keysync.evaluation.landmarks import LandmarkSource
    from keysync.evaluation.registry import EvalOptions

    detector = None if args.landmarks_backend == "none" else _LazyDetector(args.landmarks_backend)
    return EvalOptions(weights_dir=Path(args.weights_dir), weights=_parse_weights(args.weights), device=args.device,
                       landmarks=LandmarkSource(args.landmarks_dir, detector),
                       reference_quirks=args.reference_quirks, lipleak_threshold=args.lipleak_threshold,
                       syncnet_vshift=args.vshift)


def _list_metrics() -> int:
    from keysync.evaluation.registry import get_spec, metric_names

    for name in metric_names():
        spec = get_spec(name)
        files = ", ".join(f"{w.filename} ({w.source})" for w in spec.weights) or "no weights"
        print(f"{name:9s} {spec.description}\n{'':9s} needs: {files}")
    return 0


def run(args: argparse.Namespace) -> int:
    from keysync.evaluation.runner import evaluate, pair_items, parse_metrics

    if args.list:
        return _list_metrics()
    if not args.pred:
        raise ValueError("--pred is required")
    options = build_options(args)
    names = parse_metrics(args.metrics)
    items = pair_items(args.pred, args.gt, args.audio, options)
    report = evaluate(items, names, options, progress=not args.no_progress)
    report.info.update(pred=str(args.pred), gt=args.gt, audio=args.audio)
    paths = report.write(args.out, args.name)
    print(report.to_markdown())
    print("written: " + ", ".join(str(p) for p in paths.values()))
    if args.strict and any(not r.available or r.errors for r in report.results):
        return 1
    return 0
