"""Time bases of a dubbing job, as pure index maps.

Three timelines meet in a job:

* the **source** video: ``n_source`` frames at ``fps_source`` (any rate);
* the **model** timeline: 25 fps, one row per 640 audio samples, where keyframes, audio
  features and latents live (the models assume 25 fps; nothing else is resampled);
* the **output** video: at the source's frame rate and size, as long as the audio.

When the audio is longer than the video, the video is extended by ping-pong looping
(forward, backward, forward, ...) so motion stays continuous; when shorter, it is cut.
"""

from __future__ import annotations

import math

import numpy as np

MODEL_FPS = 25
SAMPLES_PER_FRAME = 640


def pingpong(indices: np.ndarray, n: int) -> np.ndarray:
    """Fold frame indices into [0, n) by ping-pong: 0..n−1, n−2..1, 0.., ... (n = 1: all 0)."""
    indices = np.asarray(indices, dtype=np.int64)
    if n <= 0:
        raise ValueError("the video has no frames")
    if n == 1:
        return np.zeros_like(indices)
    period = 2 * (n - 1)
    r = np.mod(indices, period)
    return np.where(r < n, r, period - r)


def model_frames_for_audio(num_samples: int, samples_per_frame: int = SAMPLES_PER_FRAME) -> int:
    """Model-timeline frames that cover the audio: ceil(samples / 640)."""
    if num_samples <= 0:
        raise ValueError("the audio is empty")
    return math.ceil(num_samples / samples_per_frame)


def output_frames_for_audio(num_samples: int, fps: float, sample_rate: int = 16000) -> int:
    """Frames at ``fps`` that cover the audio (rounded to the nearest frame, at least one)."""
    return max(1, round(num_samples / sample_rate * fps))


def model_to_source(n_model: int, n_source: int, fps_source: float, loop: bool = True) -> np.ndarray:
    """Source frame shown at each model frame (nearest in time; ping-pong past the end)."""
    idx = np.floor(np.arange(n_model) * fps_source / MODEL_FPS + 0.5).astype(np.int64)
    return pingpong(idx, n_source) if loop else np.minimum(idx, n_source - 1)


def output_to_model(n_output: int, fps_output: float, n_model: int) -> np.ndarray:
    """Model frame whose generated face is used for each output frame (nearest in time)."""
    idx = np.floor(np.arange(n_output) * MODEL_FPS / fps_output + 0.5).astype(np.int64)
    return np.minimum(idx, n_model - 1)


def output_to_source(n_output: int, n_source: int, loop: bool = True) -> np.ndarray:
    """Source frame under each output frame (same rate): identity, ping-pong past the end."""
    idx = np.arange(n_output)
    return pingpong(idx, n_source) if loop else np.minimum(idx, n_source - 1)
