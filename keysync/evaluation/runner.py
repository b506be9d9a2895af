"""Run a set of metrics over a folder of generated videos (and their ground truth).

Pairing: every video in ``pred_dir`` (``.mp4 .avi .mov .mkv .webm``) is matched to the video
with the same file stem in ``gt_dir``; ``audio_dir`` (optional) supplies ``<stem>.wav`` (or
any audio file with that stem) as the driving audio, otherwise a generated video's own audio
stream is used. Predictions without a ground truth are still scored by metrics that do not
need one (``lse``, ``lipleak``) and listed as failures for the others.

:func:`evaluate` builds each requested metric (an absent weight file makes that metric an
``unavailable: needs <file>`` row), scores all videos with a tqdm progress bar, and returns an
:class:`~keysync.evaluation.report.EvalReport`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .registry import EvalItem, EvalOptions, Metric, MetricUnavailable, get_spec
from .report import EvalReport, MetricResult

__all__ = ["VIDEO_SUFFIXES", "AUDIO_SUFFIXES", "list_videos", "pair_items", "evaluate", "parse_metrics"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg")


def list_videos(directory: str | Path) -> List[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"not a folder: {directory}")
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _by_stem(directory: Optional[str | Path], suffixes: Sequence[str]) -> Dict[str, Path]:
    if directory is None:
        return {}
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"not a folder: {directory}")
    return {p.stem: p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix.lower() in suffixes}


def pair_items(pred_dir: str | Path, gt_dir: Optional[str | Path] = None, audio_dir: Optional[str | Path] = None,
               options: Optional[EvalOptions] = None) -> List[EvalItem]:
    """One :class:`EvalItem` per generated video (see module docstring for the pairing rule)."""
    preds = list_videos(pred_dir)
    if not preds:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {pred_dir}")
    gts = _by_stem(gt_dir, VIDEO_SUFFIXES)
    audios = _by_stem(audio_dir, AUDIO_SUFFIXES)
    items = [EvalItem(p.stem, p, gts.get(p.stem), audios.get(p.stem), options) for p in preds]
    missing = [i.name for i in items if gt_dir is not None and i.gt_path is None]
    if missing:
        log.warning("no ground truth in %s for %d video(s): %s", gt_dir, len(missing), ", ".join(missing[:5]))
    return items


def parse_metrics(text: str | Sequence[str]) -> List[str]:
    """``"lipscore,lse"`` or a list -> validated names (``all`` = every registered metric)."""
    from .registry import metric_names

    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return metric_names()
    for n in names:
        get_spec(n)  # raises ValueError for unknown names
    return list(dict.fromkeys(names))


def evaluate(items: Sequence[EvalItem], metric_names: Sequence[str], options: EvalOptions,
             progress: bool = True) -> EvalReport:
    """Score ``items`` with every metric; see the module docstring."""
    from tqdm.auto import tqdm

    results: List[MetricResult] = []
    metrics: List[tuple] = []
    for name in metric_names:
        spec = get_spec(name)
        res = MetricResult(name, list(spec.columns), dict(getattr(spec.factory, "higher_is_better", {})))
        try:
            metric: Metric = spec.build(options)
            res.higher_is_better = dict(metric.higher_is_better)
            metrics.append((metric, res))
        except MetricUnavailable as err:
            res.status = err.status
            log.warning("%s", err)
        except (ImportError, ValueError, RuntimeError, OSError) as err:
            res.status = f"failed: {err}"
            log.error("%s could not be set up: %s", name, err)
        results.append(res)

    per_video: Dict[str, Dict[str, float]] = {item.name: {} for item in items}
    rows: Dict[str, List[dict]] = {m.name: [] for m, _ in metrics}
    bar = tqdm(items, desc="evaluate", unit="video", disable=not progress or not metrics)
    for item in bar:
        bar.set_postfix_str(item.name)
        for metric, res in metrics:
            if metric.needs_gt and item.gt_path is None:
                res.errors.append((item.name, "no ground-truth video with this name"))
                continue
            try:
                values = metric.evaluate(item)
            except Exception as err:  # one bad video must not stop the run; it is reported
                log.warning("%s failed on %s: %s", metric.name, item.name, err)
                res.errors.append((item.name, f"{type(err).__name__}: {err}"))
                continue
            rows[metric.name].append(values)
            per_video[item.name].update(values)
            res.scored += 1
        item.release()
    for metric, res in metrics:
        try:
            res.summary = metric.summarize(rows[metric.name]) if rows[metric.name] else {}
        except Exception as err:
            res.status = f"failed: {type(err).__name__}: {err}"
        if res.scored == 0 and res.available:
            res.status = "failed: no video could be scored"
        res.summary = {k: (v if v is None or not math.isnan(v) else None) for k, v in res.summary.items()}
    return EvalReport(results, [i.name for i in items], per_video,
                      info={"metrics": list(metric_names), "device": options.device,
                            "reference_quirks": options.reference_quirks})
