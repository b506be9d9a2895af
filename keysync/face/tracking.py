"""Pure per-clip landmark post-processing: main-face tracking, gap filling, temporal smoothing.

Shapes: landmarks ``(N, 68, 2)`` float, ``(x, y)`` in pixels of the original frame; boxes
``(4,)`` = ``(x0, y0, x1, y1)`` in pixels; ``found`` ``(N,)`` bool. No model is involved, so all
of this is tested without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

__all__ = [
    "FaceCandidate",
    "NoFaceFoundError",
    "MainFaceTracker",
    "box_iou",
    "fill_missing",
    "gaussian_smooth",
]


class NoFaceFoundError(ValueError):
    """No frame of the clip contains a face, so there is nothing to fill from."""


@dataclass
class FaceCandidate:
    """One detected face: ``points`` (68, 2) float32 iBUG (x, y) pixels, ``score`` in [0, 1],
    ``box`` (4,) float32 ``(x0, y0, x1, y1)`` pixels (the detector's box, or the points' extent)."""

    points: np.ndarray
    score: float = 1.0
    box: Optional[np.ndarray] = None

    def __post_init__(self):
        self.points = np.asarray(self.points, dtype=np.float32).reshape(68, 2)
        if self.box is None:
            self.box = np.concatenate([self.points.min(0), self.points.max(0)])
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when disjoint or empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class MainFaceTracker:
    """Keeps one face per frame when a detector returns several (streaming, frame by frame).

    The first face is the one with the largest ``area · score``. Afterwards the candidate that
    overlaps the last kept box most is kept; without overlap, the nearest one is kept if its centre
    lies within ``max_jump`` box sizes of the last centre, otherwise the frame counts as having no
    face (the main face left the picture; a bystander is not picked up instead).
    """

    def __init__(self, max_jump: float = 1.0):
        self.max_jump = float(max_jump)
        self.last_box: Optional[np.ndarray] = None

    def reset(self) -> None:
        self.last_box = None

    def update(self, candidates: Sequence[FaceCandidate]) -> Optional[FaceCandidate]:
        if not candidates:
            return None
        if self.last_box is None:
            best = max(candidates, key=lambda c: c.area * max(c.score, 1e-6))
        else:
            ious = [box_iou(self.last_box, c.box) for c in candidates]
            i = int(np.argmax(ious))
            if ious[i] > 0:
                best = candidates[i]
            else:
                centre = (self.last_box[:2] + self.last_box[2:]) / 2
                size = max(self.last_box[2] - self.last_box[0], self.last_box[3] - self.last_box[1], 1.0)
                dists = [np.linalg.norm((c.box[:2] + c.box[2:]) / 2 - centre) for c in candidates]
                j = int(np.argmin(dists))
                if dists[j] > self.max_jump * size:
                    return None
                best = candidates[j]
        self.last_box = best.box.copy()
        return best


def fill_missing(points: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill frames without a face: linear interpolation between the nearest frames with one,
    the nearest frame's landmarks at the clip's ends. ``points`` (N, 68, 2); returns a copy.

    Raises :class:`NoFaceFoundError` when no frame has a face.
    """
    points = np.array(points, dtype=np.float32, copy=True)
    found = np.asarray(found, dtype=bool)
    if points.shape[0] != found.shape[0]:
        raise ValueError(f"{points.shape[0]} landmark frames but {found.shape[0]} found flags")
    if not found.any():
        raise NoFaceFoundError(
            f"no face was found in any of the {len(found)} frames; check that the video shows a "
            "face, or try another landmark backend / a lower detection threshold")
    if found.all():
        return points
    idx = np.flatnonzero(found)
    t = np.arange(len(found))
    flat = points.reshape(len(found), -1)
    for k in range(flat.shape[1]):
        flat[:, k] = np.interp(t, idx, flat[idx, k])  # constant beyond the ends
    return flat.reshape(points.shape)


def gaussian_smooth(x: np.ndarray, sigma: float, axis: int = 0) -> np.ndarray:
    """Gaussian smoothing along ``axis`` (time), ``sigma`` in frames, edges reflected.

    ``sigma <= 0`` returns a float32 copy unchanged. Works for landmarks ``(N, 68, 2)`` and crop
    boxes ``(N, 3)`` alike.
    """
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0 or x.shape[axis] < 2:
        return x.astype(np.float32)
    radius = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    moved = np.moveaxis(x, axis, 0)
    n = moved.shape[0]
    # reflect-pad (repeated for clips shorter than the kernel radius)
    idx = np.arange(-radius, n + radius)
    period = 2 * (n - 1)
    idx = np.abs(((idx % period) + period) % period)
    idx = np.where(idx >= n, period - idx, idx)
    padded = moved[idx]
    out = np.zeros_like(moved)
    for j, w in enumerate(k):
        out += w * padded[j:j + n]
    return np.moveaxis(out, 0, axis).astype(np.float32)


def stack_candidates(selected: List[Optional[FaceCandidate]]):
    """(points (N, 68, 2), found (N,), confidence (N,)) from per-frame selections (None = no face)."""
    n = len(selected)
    points = np.zeros((n, 68, 2), dtype=np.float32)
    found = np.zeros(n, dtype=bool)
    conf = np.zeros(n, dtype=np.float32)
    for i, c in enumerate(selected):
        if c is not None:
            points[i], found[i], conf[i] = c.points, True, c.score
    return points, found, conf
