"""Index, audio and pixel helpers of the training dataset (SPEC §6.3, reference README §9).

Every function reproduces the reference ``VideoDataset`` helper of the same name (vectors in
``tests/data/reference/dataset_helpers.*``), without its instance state:

* :func:`get_frame_indices`: the 14 frame indices of one training clip (same numpy RNG calls).
* :func:`convert_indexes`: 25 fps indices → indices of a 60 fps source (``int(i·60/25)``).
* :func:`window_audio_features`: the per-frame audio features of those indices.
* :func:`ensure_shape`, :func:`trim_pad_audio`: raw-audio framing.
* :func:`scale_and_crop`: shorter side → ``resize_size``, centre crop (pixels in [-1, 1]).
* :func:`normalize_latents`: optional per-channel latent normalisation.
* :func:`crop_landmarks`: the same geometry applied to landmark points.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def clip_span(num_frames: int, skip_frames: int) -> int:
    """Frames covered by a clip of ``num_frames`` indices spaced ``skip_frames + 1`` apart."""
    return (num_frames - 1) * (skip_frames + 1) + 1


def min_video_frames(num_frames: int, skip_frames: int, start_idx: int = 0) -> int:
    """Shortest video :func:`get_frame_indices` accepts (reference rule: span + 1 + start_idx).

    The reference draws ``randint(start_idx, total − span)``, whose upper bound is exclusive:
    a video of exactly ``span`` frames (170 for keyframes) is rejected and the last possible
    window is never drawn. Kept as is so that seeded draws match the reference.
    """
    return clip_span(num_frames, skip_frames) + 1 + start_idx


def get_frame_indices(total_video_frames: int, num_frames: int = 14, skip_frames: int = 0, start_idx: int = 0,
                      select_randomly: bool = False, rng: np.random.RandomState | None = None,
                      py_rng: random.Random | None = None) -> list[int]:
    """Indices of one clip: ``start + i·(skip_frames + 1)``, i = 0 … num_frames − 1.

    ``start = rng.randint(start_idx, total − span)`` with span = (num_frames − 1)(skip + 1) + 1
    (``rng`` defaults to the global ``np.random``, as in the reference). ``select_randomly``
    instead picks ``num_frames`` sorted distinct frames from ``[start_idx, total)`` with
    ``py_rng.sample`` (Python ``random`` by default). Raises ValueError for a too short video.
    """
    if select_randomly:
        available = range(start_idx, total_video_frames)
        if len(available) < num_frames:
            raise ValueError("Not enough frames in the video to sample with given parameters.")
        return sorted((py_rng or random).sample(list(available), num_frames))
    max_start = total_video_frames - clip_span(num_frames, skip_frames)
    if max_start <= 0 or max_start <= start_idx:
        raise ValueError("Not enough frames in the video to sample with given parameters.")
    start = int((rng if rng is not None else np.random).randint(start_idx, max_start))
    return [start + i * (skip_frames + 1) for i in range(num_frames)]


def convert_indexes(indexes: Sequence[int], fps_from: float = 25, fps_to: float = 60) -> list[int]:
    """Frame indices at ``fps_from`` → indices at ``fps_to`` (truncated: ``int(i·fps_to/fps_from)``)."""
    ratio = fps_to / fps_from
    return [int(i * ratio) for i in indexes]


def convert_indexes_25_to_60(indexes: Sequence[int]) -> list[int]:
    """The reference's 25 → 60 fps conversion (KeyFace's 60 fps sources)."""
    return convert_indexes(indexes, 25, 60)


def window_audio_features(audio: torch.Tensor, indexes: Sequence[int]) -> torch.Tensor:
    """Audio features (F, 2, D) → the rows of the clip's frames (len(indexes), 2, D).

    Keyframe clips take non-consecutive rows (13 apart): no extra context frames are added
    (``need_cond`` is false in both training configs). Raises IndexError past the end.
    """
    idx = torch.as_tensor(list(indexes), dtype=torch.long)
    if len(idx) and (int(idx.max()) >= audio.shape[0] or int(idx.min()) < -audio.shape[0]):
        raise IndexError(f"audio features have {audio.shape[0]} frames, clip needs index {int(idx.max())}")
    return audio[idx]


def ensure_shape(tensors: Sequence[torch.Tensor], samples_per_frame: int = 640, tolerance: int = 5) -> torch.Tensor:
    """Per-frame raw audio chunks (1, n) → (len, samples_per_frame): zero-pad or cut each chunk.

    Chunks more than ``tolerance`` samples off are an error (the reference asserts).
    """
    out = []
    for t in tensors:
        diff = t.shape[1] - samples_per_frame
        if abs(diff) > tolerance:
            raise ValueError(f"expected {samples_per_frame} audio samples per frame, got {t.shape[1]}")
        out.append(F.pad(t, (0, -diff)) if diff < 0 else t[:, :samples_per_frame])
    return torch.cat(out)


def trim_pad_audio(audio: torch.Tensor, sr: int, max_len_sec: float | None = None,
                   max_len_raw: int | None = None) -> torch.Tensor:
    """(C, n) audio → (C, max_len): zero-padded or cut at ``int(max_len_sec·sr)`` (or ``max_len_raw``)."""
    if not (max_len_sec or max_len_raw):
        return audio
    max_len = int(max_len_raw if max_len_raw is not None else max_len_sec * sr)
    n = audio.shape[-1]
    return F.pad(audio, (0, max_len - n)) if n < max_len else audio[..., :max_len]


def crop_geometry(height: int, width: int, resize_size: int) -> tuple[float, int, int, int, int]:
    """(scale, resized h, resized w, top, left) of :func:`scale_and_crop` for a (height, width) frame."""
    scale = resize_size / min(height, width)
    if height < width:
        rh, rw = resize_size, math.ceil(width * scale)
    else:
        rh, rw = math.ceil(height * scale), resize_size
    return scale, rh, rw, (rh - resize_size) // 2, (rw - resize_size) // 2


def scale_and_crop(video: torch.Tensor, resize_size: int | None, flip: bool = False) -> torch.Tensor:
    """Pixels (C, T, H, W) (or (N, C, H, W)) → (…, resize_size, resize_size).

    The shorter side is resized to ``resize_size`` (bilinear, antialias, align_corners False;
    the other side rounded up), then the centre is cropped; ``flip`` mirrors horizontally.
    ``resize_size=None`` returns the input unchanged (apart from ``flip``).
    """
    if resize_size is not None:
        h, w = video.shape[-2:]
        _, rh, rw, top, left = crop_geometry(h, w, resize_size)
        video = F.interpolate(video, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        video = video[..., top:top + resize_size, left:left + resize_size]
    return video.flip(-1) if flip else video


def crop_landmarks(landmarks: np.ndarray, height: int, width: int, resize_size: int) -> np.ndarray:
    """(x, y) points of a (height, width) frame → points of its :func:`scale_and_crop` output."""
    scale, _, _, top, left = crop_geometry(height, width, resize_size)
    out = np.asarray(landmarks, dtype=np.float64)[..., :2] * scale
    out[..., 0] -= left
    out[..., 1] -= top
    return out


def normalize_latents(latents: torch.Tensor, data_mean: Sequence[float] | None = None,
                      data_std: Sequence[float] | None = None) -> torch.Tensor:
    """(C, T, h, w) latents → ``(x − mean)/std · 0.5`` per channel; identity without statistics."""
    if (data_mean is None) != (data_std is None):
        raise ValueError("data_mean and data_std must be given together")
    if data_mean is None:
        return latents
    mean = torch.as_tensor(data_mean, dtype=latents.dtype).reshape(-1, 1, 1, 1)
    std = torch.as_tensor(data_std, dtype=latents.dtype).reshape(-1, 1, 1, 1)
    return (latents - mean) / std * 0.5
