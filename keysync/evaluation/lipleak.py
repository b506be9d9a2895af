"""LipLeak: how much a lip-sync model moves the mouth when the audio is silent (lower is better).

Protocol (KeySync, SPEC §8.2): take real talking videos, drive the model with **silent audio**
of the same length (:func:`write_silent_audio`), then score the generated videos:

    keysync evaluate --pred GENERATED_WITH_SILENCE --gt REAL --metrics lipleak

LipLeak = fraction of generated frames in which the mouth is classified as *speaking*. The
original paper's classifier is not published; this re-implementation uses an explicit,
landmark-based decision (SPEC asks for a documented choice):

1. **Mouth opening** per frame (:func:`mouth_opening`): the mean vertical gap between the inner
   lips (points 61/67, 62/66, 63/65) divided by the mouth width (corners 48-54). Scale-free;
   about 0 for closed lips, 0.3-0.6 for a wide-open mouth.
2. **Mouth activity** (:func:`mouth_activity`): the opening is smoothed by a 3-frame moving
   average (suppresses landmark jitter), then, for frame t, the range max - min of the smoothed
   opening over the centred window t-4..t+4 (9 frames = 0.36 s at 25 fps, about one or two
   syllables).
3. **Speaking** (:func:`speaking_frames`): activity > ``threshold`` (default
   :data:`DEFAULT_THRESHOLD` = 0.08 of the mouth width).

So a mouth that is still -- closed *or* held open -- is silent, and one that opens and closes
by more than 8% of its width within 0.36 s is speaking. Detector noise on a still face is a few
% of the width; syllables in speech open the mouth by 10-40%. With a set of real *silent* clips
the threshold can be set from them instead (:func:`calibrate_threshold`). Frames without
landmarks (NaN) are filled from their neighbours; a clip without any is an error. The real
video's own speaking fraction (``lipleak_gt``, a sanity check of the decision: high for
talking videos) is reported next to it when the ground truth is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "WINDOW", "mouth_opening", "mouth_activity", "speaking_frames", "lipleak",
           "calibrate_threshold", "write_silent_audio"]

DEFAULT_THRESHOLD = 0.08
WINDOW = 9
SMOOTH = 3
_UPPER, _LOWER = [61, 62, 63], [67, 66, 65]


def _fill(landmarks: np.ndarray) -> np.ndarray:
    lm = np.array(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N, 68, 2), got {lm.shape}")
    valid = np.isfinite(lm).all(axis=(1, 2))
    if not valid.any():
        raise ValueError("no face landmarks in any frame")
    if not valid.all():
        idx = np.arange(len(lm))
        flat = lm.reshape(len(lm), -1)
        for c in range(flat.shape[1]):
            flat[:, c] = np.interp(idx, idx[valid], flat[valid, c])
        lm = flat.reshape(lm.shape)
    return lm


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap / mouth width per frame: (N, 68, 2) -> (N,) float64."""
    lm = _fill(landmarks)
    gap = np.linalg.norm(lm[:, _UPPER] - lm[:, _LOWER], axis=-1).mean(axis=1)
    width = np.linalg.norm(lm[:, 48] - lm[:, 54], axis=-1)
    return gap / np.maximum(width, 1e-6)


def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(x) < 2:
        return x.copy()
    pad = k // 2
    padded = np.pad(x, pad, mode="edge")
    return np.convolve(padded, np.ones(k) / k, mode="valid")[: len(x)]


def mouth_activity(opening: np.ndarray, window: int = WINDOW, smooth: int = SMOOTH) -> np.ndarray:
    """Range of the smoothed opening over a centred ``window`` (shrinks at the clip ends): (N,)."""
    x = _moving_average(np.asarray(opening, dtype=np.float64), smooth)
    half = window // 2
    return np.array([x[max(0, t - half): t + half + 1].max() - x[max(0, t - half): t + half + 1].min()
                     for t in range(len(x))])


def speaking_frames(landmarks: np.ndarray, threshold: Optional[float] = None, window: int = WINDOW) -> np.ndarray:
    """Per-frame speaking decision (N,) bool (see module docstring)."""
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    return mouth_activity(mouth_opening(landmarks), window) > threshold


def lipleak(landmarks: np.ndarray, threshold: Optional[float] = None, window: int = WINDOW) -> float:
    """Fraction of frames classified as speaking, in [0, 1] (lower is better for silent audio)."""
    return float(speaking_frames(landmarks, threshold, window).mean())


def calibrate_threshold(silent_clips: Iterable[np.ndarray], quantile: float = 0.95, margin: float = 1.5,
                        window: int = WINDOW) -> float:
    """Threshold from landmarks of real clips where nobody speaks: ``margin`` x the ``quantile``
    of their mouth activity (never below half of :data:`DEFAULT_THRESHOLD`)."""
    acts = np.concatenate([mouth_activity(mouth_opening(lm), window) for lm in silent_clips])
    return float(max(margin * np.quantile(acts, quantile), DEFAULT_THRESHOLD / 2))


def write_silent_audio(video_path: str | Path, out_path: str | Path, sample_rate: int = 16000) -> str:
    """Write a silent WAV as long as ``video_path`` (to drive a model for LipLeak)."""
    from keysync.media import probe_video, write_audio

    info = probe_video(video_path)
    duration = info.num_frames / info.fps if getattr(info, "num_frames", None) else info.duration
    return write_audio(out_path, np.zeros(int(round(duration * sample_rate)), dtype=np.float32), sample_rate)
