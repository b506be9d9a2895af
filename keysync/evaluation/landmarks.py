"""Where the evaluation gets 68-point face landmarks from.

The metrics take landmarks as arrays (N, 68, 2) float, (x, y) pixels, iBUG-68 order, with NaN
rows for frames without a face (see :mod:`keysync.evaluation.mouth_crop`). A
:class:`LandmarkSource` gives them for a video, first from a precomputed file, then from a
detector callable:

* files: ``<landmarks_dir>/<video stem>.npy`` (or ``<video path without suffix>.npy`` next to
  the video), shape (N, 68, 2) -- the layout :meth:`keysync.face.LandmarkTrack.save` writes;
* :func:`face_detector` builds a callable on top of :mod:`keysync.face` (imported only when
  used): raw per-frame detections, no filling and no smoothing, since the LipScore
  preprocessing interpolates and smooths on its own exactly as auto_avsr does.

A callable is any ``fn(frames uint8 (N, H, W, 3)) -> (N, 68, 2)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

import numpy as np

__all__ = ["LandmarksFn", "LandmarkSource", "face_detector", "load_landmarks_file"]

log = logging.getLogger(__name__)

LandmarksFn = Callable[[np.ndarray], np.ndarray]


def load_landmarks_file(path: str | Path) -> np.ndarray:
    """(N, 68, 2) float64 from a ``.npy`` file; (N, 136) is reshaped."""
    arr = np.load(path, allow_pickle=False).astype(np.float64)
    if arr.ndim == 2 and arr.shape[1] == 136:
        arr = arr.reshape(-1, 68, 2)
    if arr.ndim != 3 or arr.shape[1:] != (68, 2):
        raise ValueError(f"{path}: landmarks must be (N, 68, 2), got {arr.shape}")
    return arr


def face_detector(backend: str = "mediapipe", **kwargs) -> LandmarksFn:
    """A landmarks callable using :mod:`keysync.face` (``"mediapipe"`` offline, or ``"fan"``).

    Frames without a face give NaN rows. Raises ImportError with the reason when the face
    module or its backend is unavailable.
    """
    try:
        from keysync.face.landmarks import create_backend, extract_landmarks
    except ImportError as err:
        raise ImportError(f"face landmarks need keysync.face ({err}); or pass precomputed .npy landmarks") from err
    detector = create_backend(backend, **kwargs)

    def detect(frames: np.ndarray) -> np.ndarray:
        track = extract_landmarks(frames, detector, smooth_sigma=0.0, fill=False, progress=False)
        points = np.asarray(track.raw_points if track.raw_points is not None else track.points, dtype=np.float64)
        points[~np.asarray(track.found, dtype=bool)] = np.nan
        return points

    detect.backend = backend  # type: ignore[attr-defined]
    return detect


class LandmarkSource:
    """Landmarks of a video from files (``directory`` or next to the video), else ``detector``.

    ``get(video_path, frames)`` returns (N, 68, 2) with N = len(frames) (a longer file is cut,
    a shorter one raises ValueError). Results are cached per path.
    """

    def __init__(self, directory: Optional[str | Path] = None, detector: Optional[LandmarksFn] = None):
        self.directory = Path(directory) if directory else None
        self.detector = detector
        self._cache: dict[str, np.ndarray] = {}

    def file_for(self, video_path: str | Path) -> Optional[Path]:
        video_path = Path(video_path)
        candidates = [video_path.with_suffix(".npy")]
        if self.directory is not None:
            candidates.insert(0, self.directory / f"{video_path.stem}.npy")
        return next((c for c in candidates if c.is_file()), None)

    def get(self, video_path: str | Path, frames: np.ndarray) -> np.ndarray:
        key = str(video_path)
        if key not in self._cache:
            path = self.file_for(video_path)
            if path is not None:
                points = load_landmarks_file(path)
                if len(points) < len(frames):
                    raise ValueError(f"{path}: {len(points)} landmark frames for a {len(frames)}-frame video")
                points = points[: len(frames)]
            elif self.detector is not None:
                points = np.asarray(self.detector(frames), dtype=np.float64)
            else:
                raise ValueError(f"no landmarks for {video_path}: no .npy file found and no detector configured")
            self._cache[key] = points
        return self._cache[key]
