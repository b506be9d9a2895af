"""Synthetic talking-face clips with known mouth motion, for metric sanity checks.

:func:`render_face_clip` draws a cartoon face (face, eyes, brows, lips, dark mouth interior,
teeth) from 68 iBUG landmarks built from the auto_avsr mean face, with the lower lip and jaw
moved down by ``openness[t]`` x ``amplitude`` pixels, and returns the frames (N, S, S, 3) uint8
RGB and the exact landmarks (N, 68, 2) float64. :func:`syllable_signal` gives a random
speech-like mouth-opening sequence and :func:`speech_audio` a 16 kHz waveform whose loudness
follows that sequence, so that video and audio are synchronised by construction.

Nothing here is a real face; it exercises the geometric pipelines (alignment, crops, mouth
opening) and the metric mechanics (identical / shifted / frozen / moving-while-silent).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .mean_face import MEAN_FACE_20WORDS

__all__ = ["face_landmarks", "render_face_clip", "syllable_signal", "speech_audio", "shift_frames"]

_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
_JAW = list(range(4, 13))


def face_landmarks(openness: Sequence[float], size: int = 128, amplitude: float = 0.12,
                   jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """Landmarks (N, 68, 2) float64 of a face filling ~70% of a ``size`` x ``size`` frame.

    ``openness`` in [0, 1] per frame: lower lip and inner lower lip move down by
    ``openness * amplitude * size`` px, the jaw by half of it. ``jitter``: N(0, jitter^2) px.
    """
    rng = np.random.default_rng(seed)
    base = MEAN_FACE_20WORDS.astype(np.float64)
    centre = base.mean(axis=0)
    scale = 0.7 * size / (base[:, 0].max() - base[:, 0].min())
    base = (base - centre) * scale + size / 2.0
    # the template's inner lips touch; close the outer lips onto them for a closed mouth
    out = []
    for o in np.asarray(openness, dtype=np.float64):
        lm = base.copy()
        drop = float(np.clip(o, 0, 1)) * amplitude * size
        lm[_LOWER_LIP, 1] += drop
        lm[_JAW, 1] += 0.5 * drop
        if jitter:
            lm += rng.normal(0.0, jitter, lm.shape)
        out.append(lm)
    return np.stack(out)


def _poly(points: np.ndarray) -> np.ndarray:
    return np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)


def render_face_clip(openness: Sequence[float], size: int = 128, amplitude: float = 0.12, jitter: float = 0.0,
                     seed: int = 0, landmarks: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, size, size, 3) uint8 RGB and landmarks (N, 68, 2) float64 (see module docstring)."""
    import cv2

    lms = face_landmarks(openness, size, amplitude, jitter, seed) if landmarks is None else np.asarray(landmarks)
    rng = np.random.default_rng(seed + 1)
    background = rng.integers(60, 110, (size, size, 3)).astype(np.uint8)
    background = cv2.GaussianBlur(background, (0, 0), 2.0)
    frames = []
    aa = dict(lineType=cv2.LINE_AA, shift=4)
    for lm in lms:
        img = background.copy()
        jaw = lm[0:17]
        top = np.stack([lm[26] + [0, -0.25 * size * 0.3], lm[17] + [0, -0.25 * size * 0.3]])
        cv2.fillPoly(img, [_poly(np.concatenate([jaw, top]))], (214, 170, 140), **aa)
        for brow in (lm[17:22], lm[22:27]):
            cv2.polylines(img, [_poly(brow)], False, (70, 45, 30), thickness=2, **aa)
        for eye in (lm[36:42], lm[42:48]):
            cv2.fillPoly(img, [_poly(eye)], (245, 245, 245), **aa)
            cv2.circle(img, tuple(np.round(eye.mean(axis=0) * 16).astype(int)), 2 * 16, (40, 30, 20), -1, **aa)
        cv2.polylines(img, [_poly(lm[27:36])], False, (170, 120, 95), thickness=1, **aa)
        cv2.fillPoly(img, [_poly(lm[48:60])], (180, 70, 80), **aa)
        inner = lm[60:68]
        cv2.fillPoly(img, [_poly(inner)], (45, 15, 20), **aa)
        gap = inner[[5, 6, 7], 1].mean() - inner[[1, 2, 3], 1].mean()
        if gap > 2:
            teeth = np.stack([inner[1], inner[2], inner[3], inner[3] + [0, 0.3 * gap], inner[1] + [0, 0.3 * gap]])
            cv2.fillPoly(img, [_poly(teeth)], (235, 235, 225), **aa)
        frames.append(img)
    return np.stack(frames), lms


def syllable_signal(num_frames: int, seed: int = 0, rate: float = 4.0, fps: float = 25.0) -> np.ndarray:
    """Speech-like mouth opening in [0, 1], (num_frames,): random syllables (~``rate`` per second)
    of random height, each a raised-cosine bump, with short pauses."""
    rng = np.random.default_rng(seed)
    sig = np.zeros(num_frames)
    t = 0.0
    while t < num_frames:
        length = rng.uniform(0.6, 1.4) * fps / rate
        if rng.random() > 0.15:
            idx = np.arange(int(t), min(num_frames, int(np.ceil(t + length))))
            phase = (idx - t) / length
            sig[idx] = np.maximum(sig[idx], rng.uniform(0.4, 1.0) * np.sin(np.pi * np.clip(phase, 0, 1)) ** 2)
        t += length
    return sig


def speech_audio(openness: Sequence[float], sample_rate: int = 16000, fps: float = 25.0, seed: int = 0) -> np.ndarray:
    """Float32 waveform (len(openness) * sample_rate / fps,) whose loudness follows ``openness``:
    a voiced buzz (120-220 Hz harmonics) plus noise, amplitude-modulated frame by frame."""
    rng = np.random.default_rng(seed)
    n = int(round(len(openness) * sample_rate / fps))
    t = np.arange(n) / sample_rate
    f0 = 160 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8)) + 0.3 * rng.standard_normal(n)
    frame_t = (np.arange(len(openness)) + 0.5) / fps
    env = np.interp(t, frame_t, np.asarray(openness, dtype=np.float64))
    audio = 0.25 * env * voice / np.abs(voice).max() + 1e-4 * rng.standard_normal(n)
    return audio.astype(np.float32)


def shift_frames(frames: np.ndarray, shift: int) -> np.ndarray:
    """Delay a clip by ``shift`` frames (>0: repeat the first frame at the start and drop the end;
    <0: drop the start and repeat the last frame), keeping its length."""
    if shift == 0:
        return frames.copy()
    if shift > 0:
        return np.concatenate([np.repeat(frames[:1], shift, axis=0), frames[:-shift]])
    return np.concatenate([frames[-shift:], np.repeat(frames[-1:], -shift, axis=0)])
