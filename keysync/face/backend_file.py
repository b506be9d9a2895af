"""A landmark "backend" that reads known landmarks instead of detecting them.

For videos whose landmarks are already known: precomputed ``.npy`` files (the reference
layout, ``(N, 68, 2)`` x, y frame pixels), landmarks from another tool, or generated faces
(the synthetic world). Frames are matched by order: the i-th frame seen since ``reset()`` gets
row i. Rows that are all zero or NaN count as "no face" (filled from neighbours like any miss).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Union

import numpy as np

from .landmarks import LandmarkBackend
from .tracking import FaceCandidate


class KnownLandmarks(LandmarkBackend):
    """``points``: ``(N, 68, 2)`` array or the path of a ``.npy`` file holding one."""

    name = "file"

    def __init__(self, points: Union[np.ndarray, str, Path]):
        if isinstance(points, (str, Path)):
            path = Path(points)
            if not path.is_file():
                raise FileNotFoundError(f"landmarks file not found: {path}")
            try:
                points = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise ValueError(f"{path}: not a readable .npy landmarks file: {err}") from err
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 3 or points.shape[1:] != (68, 2):
            raise ValueError(f"landmarks must have shape (N, 68, 2), got {points.shape}")
        self.points = points
        self._next = 0

    def reset(self) -> None:
        self._next = 0

    def detect(self, frames: np.ndarray) -> List[List[FaceCandidate]]:
        start, self._next = self._next, self._next + len(frames)
        if self._next > len(self.points):
            raise ValueError(f"the video has more frames than the landmarks file ({len(self.points)} rows)")
        out = []
        for pts in self.points[start:self._next]:
            usable = np.isfinite(pts).all() and np.abs(pts).sum() > 0
            out.append([FaceCandidate(pts)] if usable else [])
        return out
