"""The list of training clips: artefact paths, usable length and group of every video.

Built once, up front, from file headers only (safetensors headers, ``.npy`` memory maps):
nothing is decoded. Videos too short for one training window are excluded here with a
logged count, instead of failing silently at every draw as in the reference (SPEC §11.21).
A clip whose artefacts are missing or unreadable raises :class:`SampleLoadError` naming the
file, or (``on_error="skip"``) is excluded and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open

from keysync.data.helpers import min_video_frames
from keysync.data.paths import ArtefactLayout, list_videos
from keysync.data.samplers import DEFAULT_GROUP_MARKERS, dataset_group

log = logging.getLogger(__name__)

#: reference special cases (KeyFace data): 60 fps sources and a minimum start frame.
DEFAULT_SOURCE_FPS = {"AA_processed": 60.0, "1000actors_nsv": 60.0}
DEFAULT_START_IDX = {"1000actors_nsv": 120}


class SampleLoadError(RuntimeError):
    """An artefact of a clip is missing or unreadable; the message starts with its path."""


@contextmanager
def reading(path: Path):
    """Re-raise any error while reading ``path`` as :class:`SampleLoadError` naming the file."""
    try:
        yield
    except SampleLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the file name, never swallowed
        raise SampleLoadError(f"{path}: {type(err).__name__}: {err}") from err


@dataclass(frozen=True)
class ClipRecord:
    """One training video and where its artefacts are.

    ``num_frames``: usable length in 25 fps frames (min over latents, audio features and
    landmarks, converted from ``source_fps``); ``start_idx``: first frame a window may use.
    """

    video: Path
    rel: Path
    layout: ArtefactLayout
    num_frames: int
    group: str
    source_fps: float = 25.0
    start_idx: int = 0

    def latents_path(self, resolution: int = 512) -> Path:
        return self.layout.latents(self.rel, resolution)

    def audio_features_path(self, model: str) -> Path:
        return self.layout.audio_features(self.rel, model)

    def landmarks_path(self) -> Path:
        return self.layout.landmarks(self.rel)

    def audio_path(self) -> Path:
        return self.layout.audio(self.rel)

    def emotions_path(self) -> Path:
        return self.layout.emotions(self.rel)


def safetensors_shape(path: Path, key: str) -> tuple[int, ...]:
    """Shape of tensor ``key`` read from the file header (no data read)."""
    with reading(path):
        with safe_open(str(path), "pt") as f:
            if key not in f.keys():
                raise KeyError(f"no tensor {key!r} (has {list(f.keys())})")
            return tuple(f.get_slice(key).get_shape())


def npy_shape(path: Path) -> tuple[int, ...]:
    """Shape of a numeric ``.npy`` array (memory-mapped, no data read)."""
    with reading(path):
        return tuple(np.load(path, mmap_mode="r").shape)


def _marker_value(path: str, table: Mapping[str, float | int], default):
    for marker, value in table.items():
        if marker in path:
            return value
    return default


def _clip_record(video: Path, layout: ArtefactLayout, audio_emb_type: str, latent_resolution: int,
                 group_markers: Sequence[str], source_fps: Mapping[str, float], start_idx: Mapping[str, int],
                 fps: float) -> tuple[ClipRecord, bool]:
    """The record of one video and whether its artefact lengths disagree."""
    rel = layout.relative(video)
    src_fps = float(_marker_value(str(video), source_fps, fps))
    lat = safetensors_shape(layout.latents(rel, latent_resolution), "latents")
    aud = safetensors_shape(layout.audio_features(rel, audio_emb_type), "audio")
    lmk = npy_shape(layout.landmarks(rel))
    if len(lat) != 4 or len(aud) != 3 or len(lmk) != 3 or lmk[1:] != (68, 2):
        raise SampleLoadError(f"{video}: unexpected artefact shapes latents {lat}, audio {aud}, landmarks {lmk} "
                              "(expected (F, 4, h, w), (F, 2, D), (F, 68, 2))")
    video_frames = min(lat[0], lmk[0])
    n = min(int(video_frames * fps / src_fps), aud[0])
    mismatch = not (lat[0] == lmk[0] and int(video_frames * fps / src_fps) == aud[0])
    record = ClipRecord(video=video, rel=rel, layout=layout, num_frames=n,
                        group=dataset_group(str(video), group_markers), source_fps=src_fps,
                        start_idx=int(_marker_value(str(video), start_idx, 0)))
    return record, mismatch


def build_clip_index(filelist: str | Path | Sequence[str | Path], num_frames: int, skip_frames: int,
                     audio_emb_type: str, root: str | Path | None = None, folders: Mapping[str, str] | None = None,
                     latent_resolution: int = 512, select_randomly: bool = False, on_error: str = "raise",
                     group_markers: Sequence[str] = DEFAULT_GROUP_MARKERS,
                     source_fps: Mapping[str, float] | None = None, start_idx: Mapping[str, int] | None = None,
                     fps: float = 25.0) -> list[ClipRecord]:
    """Records of every usable video of ``filelist`` (file list, folder, glob or list of paths).

    ``root``: dataset root (else found from each video's ``video_folder`` ancestor);
    ``folders``: :class:`ArtefactLayout` folder names. Too short videos are dropped and
    counted; unreadable ones raise (``on_error="raise"``) or are dropped and counted ("skip").
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    folders = dict(folders or {})
    source_fps = DEFAULT_SOURCE_FPS if source_fps is None else source_fps
    start_idx = DEFAULT_START_IDX if start_idx is None else start_idx
    if isinstance(filelist, (str, Path)):
        videos = list_videos(filelist)
    else:
        videos = [Path(v) for v in filelist]
    if not videos:
        raise FileNotFoundError(f"no videos in {filelist}")
    shared = ArtefactLayout(Path(root), **folders) if root is not None else None
    records, dropped = [], Counter()
    for video in videos:
        try:
            layout = shared or ArtefactLayout.from_video(video, **folders)
            record, mismatch = _clip_record(video, layout, audio_emb_type, latent_resolution, group_markers,
                                            source_fps, start_idx, fps)
        except (SampleLoadError, ValueError) as err:
            if on_error == "raise":
                raise SampleLoadError(str(err)) from err
            dropped["unreadable"] += 1
            log.warning("skipping %s", err)
            continue
        dropped["length mismatch (kept, shortest used)"] += mismatch
        needed = record.start_idx + num_frames if select_randomly else \
            min_video_frames(num_frames, skip_frames, record.start_idx)
        if record.num_frames < needed:
            dropped[f"shorter than {needed} frames"] += 1
            continue
        records.append(record)
    log.info("clip index: %d of %d videos usable; %s", len(records), len(videos),
             ", ".join(f"{k}: {v}" for k, v in dropped.items() if v) or "none excluded")
    if not records:
        raise ValueError(f"no usable videos in {filelist} ({dict(dropped)}); "
                         f"a clip needs {min_video_frames(num_frames, skip_frames)} frames")
    return records
