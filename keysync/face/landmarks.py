"""68-point facial landmarks for a clip, behind one backend interface.

:func:`extract_landmarks` runs a :class:`LandmarkBackend` over a clip in batches (with a progress
bar), keeps the tracked main face when there are several, fills frames without a face from their
neighbours (flagged in ``found``), smooths the points over time and returns a
:class:`LandmarkTrack`:

* ``points``: ``(N, 68, 2)`` float32, iBUG-68 order (0-16 jaw, 17-26 brows, 27-35 nose,
  36-47 eyes, 48-67 mouth), ``(x, y)`` in pixels of the original frame;
* ``found``: ``(N,)`` bool, False where the points were filled in;
* ``confidence``: ``(N,)`` float32, the backend's score for the kept face (0 where filled).

Backends (:func:`create_backend`):

* ``"mediapipe"`` (:class:`keysync.face.backend_mediapipe.MediaPipeBackend`): weights ship
  inside the ``mediapipe`` wheel, fully offline; 468 mesh points mapped to 68.
* ``"fan"`` (:class:`keysync.face.backend_fan.FANBackend`): the reference's landmarker,
  face_alignment's 2D-FAN-4 with the SFD detector, from local weight files.

Frames are ``uint8`` RGB ``(N, H, W, 3)`` (``keysync.media`` order).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .tracking import (FaceCandidate, MainFaceTracker, NoFaceFoundError, fill_missing,
                       gaussian_smooth, stack_candidates)

__all__ = [
    "FaceCandidate",
    "LandmarkBackend",
    "LandmarkTrack",
    "NoFaceFoundError",
    "create_backend",
    "extract_landmarks",
    "landmarks_for_frames",
]

log = logging.getLogger(__name__)


class LandmarkBackend(abc.ABC):
    """Detects faces and their 68 landmarks in a batch of frames.

    Implementations return, for every frame of ``frames`` (``(B, H, W, 3)`` uint8 RGB), the list
    of faces found there (possibly empty) as :class:`FaceCandidate` objects in frame pixels.
    ``reset()`` is called before each new clip (backends that track across frames forget here).
    """

    name: str = "backend"

    @abc.abstractmethod
    def detect(self, frames: np.ndarray) -> List[List[FaceCandidate]]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any state carried between frames (called at the start of every clip)."""

    def close(self) -> None:
        """Release native resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class LandmarkTrack:
    """Per-frame landmarks of one clip (see the module docstring for the conventions)."""

    points: np.ndarray
    found: np.ndarray
    confidence: np.ndarray
    frame_size: Tuple[int, int]
    num_faces: np.ndarray = field(default=None)
    raw_points: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_missing(self) -> int:
        return int((~self.found).sum())

    def save(self, path) -> None:
        """Write ``points`` as the reference's ``.npy`` layout, (N, 68, 2) float32."""
        np.save(path, self.points.astype(np.float32))


def _iter_batches(frames, batch_size: int) -> Iterator[np.ndarray]:
    """Batches ``(B, H, W, 3)`` from an array ``(N, H, W, 3)`` or an iterable of frames / chunks."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = frames[None]
        for s in range(0, len(frames), batch_size):
            yield frames[s:s + batch_size]
        return
    buf: List[np.ndarray] = []
    for item in frames:
        item = np.asarray(item)
        chunk = item[None] if item.ndim == 3 else item
        for f in chunk:
            buf.append(f)
            if len(buf) == batch_size:
                yield np.stack(buf)
                buf = []
    if buf:
        yield np.stack(buf)


def extract_landmarks(frames: Union[np.ndarray, Iterable[np.ndarray]], backend: LandmarkBackend,
                      batch_size: int = 16, smooth_sigma: float = 1.0, fill: bool = True,
                      progress: bool = True, total: Optional[int] = None,
                      max_jump: float = 1.0) -> LandmarkTrack:
    """Landmarks of the main face in every frame of a clip.

    Args:
        frames: ``(N, H, W, 3)`` uint8 RGB, or an iterable of frames ``(H, W, 3)`` / chunks
            ``(B, H, W, 3)`` (e.g. :func:`keysync.media.iter_video_frames`).
        backend: a :class:`LandmarkBackend`.
        batch_size: frames handed to the backend at a time.
        smooth_sigma: Gaussian temporal smoothing of the points, in frames (0 = off).
        fill: fill frames without a face from their neighbours (else they stay zeros).
        progress: show a tqdm progress bar.
        total: number of frames, for the progress bar when ``frames`` is an iterable.
        max_jump: see :class:`keysync.face.tracking.MainFaceTracker`.

    Raises:
        NoFaceFoundError: no frame contains a face (only with ``fill=True``).
    """
    from tqdm.auto import tqdm

    if isinstance(frames, np.ndarray):
        total = frames.shape[0] if frames.ndim == 4 else 1
    backend.reset()
    tracker = MainFaceTracker(max_jump=max_jump)
    selected: List[Optional[FaceCandidate]] = []
    counts: List[int] = []
    frame_size: Optional[Tuple[int, int]] = None
    bar = tqdm(total=total, desc=f"landmarks ({backend.name})", unit="frame", disable=not progress)
    try:
        for batch in _iter_batches(frames, batch_size):
            if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 RGB (N, H, W, 3), got a batch {batch.dtype} {batch.shape}")
            if frame_size is None:
                frame_size = (int(batch.shape[1]), int(batch.shape[2]))
            per_frame = backend.detect(np.ascontiguousarray(batch))
            if len(per_frame) != len(batch):
                raise RuntimeError(f"backend {backend.name} returned {len(per_frame)} results for "
                                   f"{len(batch)} frames")
            for cands in per_frame:
                counts.append(len(cands))
                selected.append(tracker.update(cands))
            bar.update(len(batch))
    finally:
        bar.close()
    if not selected:
        raise ValueError("the clip has no frames")
    points, found, conf = stack_candidates(selected)
    if not found.all():
        log.info("no face in %d of %d frames%s", (~found).sum(), len(found),
                 "; filling them from neighbouring frames" if fill and found.any() else "")
    raw = points.copy()
    if fill:
        points = fill_missing(points, found)
        points = gaussian_smooth(points, smooth_sigma)
    elif smooth_sigma > 0 and found.any():
        points[found] = gaussian_smooth(points[found], smooth_sigma)
    return LandmarkTrack(points=points, found=found, confidence=conf, frame_size=frame_size,
                         num_faces=np.asarray(counts, dtype=np.int32), raw_points=raw)


def create_backend(name: str = "mediapipe", **kwargs) -> LandmarkBackend:
    """Backend by name: ``"mediapipe"`` (offline, default), ``"fan"`` (local weight files) or
    ``"file"`` (known landmarks: ``points=`` an (N, 68, 2) array or ``.npy`` path)."""
    if name == "mediapipe":
        from .backend_mediapipe import MediaPipeBackend

        return MediaPipeBackend(**kwargs)
    if name in ("fan", "face_alignment"):
        from .backend_fan import FANBackend

        return FANBackend(**kwargs)
    if name == "file":
        from .backend_file import KnownLandmarks

        return KnownLandmarks(**kwargs)
    raise ValueError(f"unknown landmark backend {name!r}; expected 'mediapipe', 'fan' or 'file'")


def landmarks_for_frames(track: LandmarkTrack, indices: Sequence[int]) -> np.ndarray:
    """``track.points[indices]`` with the last frame repeated past the end (as the reference does
    when there are fewer landmark frames than audio frames)."""
    idx = np.minimum(np.asarray(indices, dtype=np.int64), len(track) - 1)
    return track.points[idx]
