"""Batch runs: pair videos with audio, run every pair once, survive bad items, report.

* Pairs come from two lists zipped one-to-one (as the reference; unequal lengths are an error
  here, not a silent truncation) or from a CSV manifest with columns ``video,audio[,output]``.
* Outputs are written atomically by the job itself; an existing output is skipped unless
  ``overwrite``. A failing pair is logged with its reason and the batch goes on.
* Under ``torchrun`` (``WORLD_SIZE`` > 1) item ``i`` goes to rank ``i % world``; the ranks'
  reports are gathered and rank 0 writes one summary. Same items, same seeds: the outputs do not
  depend on how the batch was split.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keysync.data.paths import list_audio, list_videos
from keysync.media import atomic_output

log = logging.getLogger(__name__)
SUMMARY_NAME = "dub_summary.json"


@dataclass(frozen=True)
class DubJob:
    index: int
    video: Path
    audio: Path
    output: Path


@dataclass
class BatchReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def merge(self, other: "BatchReport") -> "BatchReport":
        return BatchReport(sorted(self.done + other.done), sorted(self.skipped + other.skipped),
                           {**self.failed, **other.failed}, {**self.seconds, **other.seconds})

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self, verb: str = "dubbed") -> str:
        lines = [f"{len(self.done)} {verb}, {len(self.skipped)} skipped (output exists), {len(self.failed)} failed"]
        lines += [f"  FAILED {item}: {reason}" for item, reason in sorted(self.failed.items())]
        return "\n".join(lines)


def output_name(video: Path, audio: Path | None) -> str:
    """``<video stem>.mp4``, or ``<video stem>_<audio stem>.mp4`` when audio comes from a list."""
    return f"{video.stem}.mp4" if audio is None else f"{video.stem}_{audio.stem}.mp4"


def pair_jobs(videos: str | Path | Sequence[Path], audios: str | Path | Sequence[Path] | None,
              output_folder: str | Path) -> list[DubJob]:
    """One job per (video, audio) pair, lists zipped one-to-one. Without ``audios`` each video
    is dubbed with its own soundtrack (the output is a re-synthesis, useful for evaluation)."""
    videos = list_videos(videos) if isinstance(videos, (str, Path)) else [Path(v) for v in videos]
    if not videos:
        raise ValueError("no videos to dub")
    if audios is None:
        pairs = [(v, v, None) for v in videos]
    else:
        audios = list_audio(audios) if isinstance(audios, (str, Path)) else [Path(a) for a in audios]
        if len(audios) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(audios)} audio files: the lists are paired one-to-one")
        pairs = [(v, a, a) for v, a in zip(videos, audios)]
    out = Path(output_folder)
    jobs = [DubJob(i, v, a, out / output_name(v, named)) for i, (v, a, named) in enumerate(pairs)]
    _check_unique(jobs)
    return jobs


def jobs_from_manifest(manifest: str | Path, output_folder: str | Path,
                       source_column: str = "video") -> list[DubJob]:
    """Jobs from a CSV with a header ``video,audio[,output]`` (paths relative to the CSV's folder).

    ``source_column`` names the first column (``"image"`` for animation); the job keeps it as
    ``DubJob.video``."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    base, out = manifest.parent, Path(output_folder)
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {source_column, "audio"} <= set(reader.fieldnames):
            raise ValueError(f"{manifest}: the header must name the columns '{source_column}' and 'audio' "
                             "(and optionally 'output')")
        rows = list(reader)
    jobs = []
    for i, row in enumerate(rows):
        v, a = (Path(row[k]) if Path(row[k]).is_absolute() else base / row[k] for k in (source_column, "audio"))
        o = row.get("output") or output_name(v, a)
        jobs.append(DubJob(i, v, a, Path(o) if Path(o).is_absolute() else out / o))
    _check_unique(jobs)
    return jobs


def _check_unique(jobs: list[DubJob]) -> None:
    seen: dict[Path, DubJob] = {}
    for job in jobs:
        if job.output in seen:
            raise ValueError(f"two pairs would write {job.output}: ({seen[job.output].video}, {seen[job.output].audio}) "
                             f"and ({job.video}, {job.audio}); give an output column in a manifest")
        seen[job.output] = job


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun / Lightning / SLURM via torchrun)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def run_batch(jobs: Sequence[DubJob], run_one: Callable[[DubJob], object], overwrite: bool = False,
              rank: int = 0, world: int = 1, progress: bool = True, desc: str = "dubbing") -> BatchReport:
    """Run this rank's share of ``jobs``; exceptions of one job are recorded, not raised."""
    import time

    from tqdm.auto import tqdm

    report = BatchReport()
    mine = [j for j in jobs if j.index % world == rank]
    for job in tqdm(mine, desc=f"{desc} (rank {rank})" if world > 1 else desc, unit="video",
                    disable=not progress or len(mine) < 2):
        key = str(job.output)
        if job.output.exists() and not overwrite:
            log.info("skip %s: exists (use --overwrite)", job.output)
            report.skipped.append(key)
            continue
        start = time.perf_counter()
        try:
            run_one(job)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one bad pair must not stop the batch
            log.error("FAILED %s + %s: %s", job.video, job.audio, err)
            log.debug("%s", traceback.format_exc())
            report.failed[key] = f"{type(err).__name__}: {err}"
            continue
        report.done.append(key)
        report.seconds[key] = round(time.perf_counter() - start, 3)
    return report


def gather_reports(report: BatchReport, world: int) -> BatchReport:
    """All ranks' reports merged (collective: every rank must call it)."""
    if world <= 1:
        return report
    import torch.distributed as dist

    parts: list = [None] * world
    dist.all_gather_object(parts, asdict(report))
    merged = BatchReport()
    for part in parts:
        merged = merged.merge(BatchReport(**part))
    return merged


def write_summary(report: BatchReport, folder: str | Path, name: str = SUMMARY_NAME) -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(asdict(report), indent=2, sort_keys=True))
    return path
