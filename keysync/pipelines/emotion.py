"""Emotion control for KeyFace animation: per-frame valence and arousal (SPEC §9).

The keyframe model is conditioned on two scalars per frame in [-1, 1] (valence: unpleasant →
pleasant; arousal: calm → excited), each embedded with the timestep sinusoid. This module
turns what a user asks for into the two per-frame streams, shape (N,) float32 on the 25 fps
model timeline:

* **named states** (:data:`EMOTION_STATES`): one state holds for the whole clip; several states
  are spread evenly over the clip (state k at time k/(K−1) of it) and linearly interpolated;
* **a CSV** (:func:`read_emotion_csv`): columns ``time`` (seconds) or ``frame`` (25 fps index),
  ``valence``, ``arousal``; values are linearly interpolated between rows and held before the
  first / after the last row;
* **accentuation** (:func:`accentuate`): ×1.5, clamped to [-1, 1] (neutral stays neutral).

Source of the table: the (valence, arousal) points of KeyFace's inference script
(``create_emotion_list`` in ``scripts/sampling/full_pipeline.py`` of antonibigata/keyface_cvpr),
positions of the states on Russell's circumplex of affect (Russell 1980, "A circumplex model of
affect"), scaled to [-1, 1] — the same axes the training labels come from (an 8-class +
valence/arousal face detector, SPEC §7.5).

Differences to the reference, on purpose: several states are interpolated over exactly N frames
(the reference's ``total // (K−1)`` frames per transition can leave the list shorter than the clip
and then fails); ``accentuate`` is applied once (the reference applies ×1.5 twice, ≈ ×2.25, when
``accentuate`` is set).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

FPS = 25
ACCENTUATE_FACTOR = 1.5

#: named states → (valence, arousal) in [-1, 1] (source: see the module docstring).
EMOTION_STATES: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.85, 0.75),
    "sad": (-0.85, -0.35),
    "angry": (-0.443, 0.908),
    "surprised": (0.0, 0.85),
    "fear": (0.181, 0.949),
    "disgusted": (-0.8, 0.5),
    "contempt": (0.307, 0.535),
    "calm": (0.65, -0.5),
    "excited": (0.9, 0.9),
    "bored": (-0.6, -0.9),
    "confused": (-0.3, 0.4),
    "anxious": (-0.85, 0.9),
    "confident": (0.7, 0.4),
    "frustrated": (-0.8, 0.6),
    "amused": (0.7, 0.5),
    "proud": (0.8, 0.4),
    "ashamed": (-0.8, -0.3),
    "grateful": (0.7, 0.2),
    "jealous": (-0.7, 0.5),
    "hopeful": (0.7, 0.3),
    "disappointed": (-0.7, -0.3),
    "curious": (0.5, 0.5),
    "overwhelmed": (-0.6, 0.8),
}


def parse_states(states: str | Sequence[str]) -> list[str]:
    """``"happy"``, ``"happy,sad"`` or a list → validated state names (lower case)."""
    if isinstance(states, str):
        states = [s for s in states.split(",")]
    names = [s.strip().lower() for s in states if s.strip()]
    if not names:
        raise ValueError("no emotion state given")
    unknown = [s for s in names if s not in EMOTION_STATES]
    if unknown:
        raise ValueError(f"unknown emotion state(s) {unknown}; known: {', '.join(sorted(EMOTION_STATES))}")
    return names


def accentuate(valence: torch.Tensor, arousal: torch.Tensor,
               factor: float = ACCENTUATE_FACTOR) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale both streams by ``factor`` and clamp to [-1, 1]."""
    return (valence * factor).clamp(-1, 1), (arousal * factor).clamp(-1, 1)


def _finish(valence: np.ndarray, arousal: np.ndarray, accent: bool) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.as_tensor(np.asarray(valence, dtype=np.float32))
    a = torch.as_tensor(np.asarray(arousal, dtype=np.float32))
    return accentuate(v, a) if accent else (v, a)


def emotion_from_states(states: str | Sequence[str], n_frames: int,
                        accent: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Named states → (valence (N,), arousal (N,)); several states are interpolated linearly,
    state k sitting at frame k·(N−1)/(K−1)."""
    if n_frames < 1:
        raise ValueError(f"need at least one frame, got {n_frames}")
    names = parse_states(states)
    points = np.array([EMOTION_STATES[s] for s in names], dtype=np.float64)
    if len(points) == 1:
        return _finish(np.full(n_frames, points[0, 0]), np.full(n_frames, points[0, 1]), accent)
    at = np.linspace(0, max(n_frames - 1, 1), len(points))
    frames = np.arange(n_frames)
    return _finish(np.interp(frames, at, points[:, 0]), np.interp(frames, at, points[:, 1]), accent)


def read_emotion_csv(path: str | Path, n_frames: int, fps: float = FPS,
                     accent: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A CSV of ``time`` (s) or ``frame`` plus ``valence``, ``arousal`` → per-frame (N,) streams.

    Rows may be in any order and sparse; frame ``i`` (time i/fps) gets the linear interpolation
    of the rows around it, and the first / last row's value outside them. Values must lie in
    [-1, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"emotion CSV not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    axis = "time" if "time" in fields else "frame" if "frame" in fields else None
    if axis is None or not {"valence", "arousal"} <= set(fields):
        raise ValueError(f"{path}: the header must name 'time' or 'frame', 'valence' and 'arousal' (found {fields})")
    if not rows:
        raise ValueError(f"{path}: no rows")
    try:
        table = np.array([[float(r[axis]), float(r["valence"]), float(r["arousal"])] for r in rows])
    except ValueError as err:
        raise ValueError(f"{path}: a value is not a number ({err})") from err
    if not np.isfinite(table).all():
        raise ValueError(f"{path}: values must be finite")
    if np.abs(table[:, 1:]).max() > 1:
        raise ValueError(f"{path}: valence and arousal must lie in [-1, 1]")
    table = table[np.argsort(table[:, 0], kind="stable")]
    at = table[:, 0] * fps if axis == "time" else table[:, 0]
    frames = np.arange(n_frames, dtype=np.float64)
    return _finish(np.interp(frames, at, table[:, 1]), np.interp(frames, at, table[:, 2]), accent)


def emotion_streams(n_frames: int, states: str | Sequence[str] = "neutral", csv_path: str | Path | None = None,
                    accent: bool = False, fps: float = FPS) -> tuple[torch.Tensor, torch.Tensor]:
    """The (valence, arousal) streams of a job: from ``csv_path`` when given, else ``states``."""
    if csv_path is not None:
        return read_emotion_csv(csv_path, n_frames, fps, accent)
    return emotion_from_states(states, n_frames, accent)
