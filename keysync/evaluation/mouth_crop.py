"""auto_avsr mouth-region preprocessing for LipScore (SPEC §8.1, reference README §11).

Input: frames (N, H, W, 3) RGB, float32 in [0, 255] (or uint8, see :func:`as_float255`) and
per-frame 68-point iBUG landmarks (N, 68, 2) float, (x, y) pixels, a NaN row (or ``None`` in
a list) meaning "no face detected in this frame". The landmarks come from any detector: this
module does not detect faces (the CLI passes a callable, see :mod:`keysync.evaluation.landmarks`).

Steps, exactly as auto_avsr's ``VideoProcess(convert_gray=False)`` + ``VideoTransform("test")``:

1. :func:`interpolate_landmarks`: gaps filled linearly between detected frames; leading and
   trailing gaps copy the first / last detected frame.
2. :func:`smooth_landmarks`: frame t = mean of frames t-w..t+w, w = min(6, t, N-1-t), then
   translated so that its centroid equals frame t's own centroid.
3. :func:`estimate_transform`: ``cv2.estimateAffinePartial2D(points[STABLE_POINTS],
   mean_face[STABLE_POINTS], method=cv2.LMEDS)`` (4-DOF similarity) to the 256x256 mean face.
4. ``cv2.warpAffine(frame, M, (256, 256), INTER_LINEAR, BORDER_CONSTANT, 0)``.
5. :func:`cut_box`: a 96x96 box centred on the mean of transformed mouth points 48..67
   (Python ``round``, half to even); :class:`MouthCropError` if the centre is more than
   48 + 5 px away from the image centre.
6. :func:`video_transform`: /255, centre crop 88, grey (0.2989 R + 0.587 G + 0.114 B),
   normalise (x - 0.421) / 0.165 -> (N, 1, 88, 88) float32, the encoder input.

OpenCV (``opencv-python-headless``) is required for steps 3-4: its LMEDS estimate and its
1/32-pixel warp quantisation are what the reference crops depend on (an exact bilinear warp
differs by up to 3 grey levels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .mean_face import MEAN_FACE_20WORDS

__all__ = ["STABLE_POINTS", "MOUTH_POINTS", "MouthCropError", "MouthCropConfig", "as_float255", "landmarks_to_array",
           "interpolate_landmarks", "smooth_landmarks", "stable_reference", "estimate_transform", "apply_transform",
           "cut_box", "crop_mouths", "video_transform", "preprocess_mouth"]

STABLE_POINTS = (28, 33, 36, 39, 42, 45, 48, 54)
MOUTH_POINTS = slice(48, 68)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
NORM_MEAN, NORM_STD = 0.421, 0.165

LandmarksLike = Union[np.ndarray, Sequence[Optional[np.ndarray]]]


class MouthCropError(ValueError):
    """The mouth crop cannot be made (no landmarks at all, or a mouth too far off-centre)."""


@dataclass(frozen=True)
class MouthCropConfig:
    """auto_avsr ``VideoProcess`` defaults."""

    crop_size: int = 96
    window_margin: int = 12
    target_size: int = 256
    reference_size: int = 256
    cut_threshold: float = 5.0
    center_crop: int = 88


def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("LipScore's mouth crop needs OpenCV: pip install opencv-python-headless") from err
    return cv2


def as_float255(frames: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """Frames as the reference hands them to ``VideoProcess``: (N, H, W, 3) float32 in [0, 255].

    * uint8 (N, H, W, 3): ``(u8 / 255) * 255`` in float32 -- the reference converts its uint8
      videos to [0, 1] tensors and back, without re-quantising; done the same way here so that
      both entry points give identical crops;
    * float tensor / array (N, 3, H, W) or (N, H, W, 3) in [0, 1]: ``x * 255`` in float32.
    """
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        if frames.dtype == torch.uint8:
            frames = frames.numpy()
        else:
            if frames.ndim == 4 and frames.shape[1] in (1, 3) and frames.shape[-1] not in (1, 3):
                frames = frames.permute(0, 2, 3, 1)
            return frames.float().numpy() * 255
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"expected a video (N, H, W, 3), got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return (frames.astype(np.float32) / np.float32(255)) * np.float32(255)
    if frames.shape[1] in (1, 3) and frames.shape[-1] not in (1, 3):
        frames = frames.transpose(0, 2, 3, 1)
    return frames.astype(np.float32) * np.float32(255)


def landmarks_to_array(landmarks: LandmarksLike) -> np.ndarray:
    """(N, 68, 2) float64 with NaN rows for missing frames, from an array or a list with ``None``."""
    if isinstance(landmarks, np.ndarray):
        arr = np.array(landmarks, dtype=np.float64)
    else:
        arr = np.stack([np.full((68, 2), np.nan) if lm is None else np.asarray(lm, dtype=np.float64)
                        for lm in landmarks]) if len(landmarks) else np.zeros((0, 68, 2))
    if arr.ndim != 3 or arr.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N, 68, 2), got shape {arr.shape}")
    return arr


def interpolate_landmarks(landmarks: LandmarksLike) -> Optional[np.ndarray]:
    """Fill frames without landmarks (NaN rows / None): linear between detected frames
    ``lm[s] + i/(e-s) * (lm[e] - lm[s])``, edge copies outside. (N, 68, 2) float64, or None
    when no frame has landmarks."""
    arr = landmarks_to_array(landmarks)
    valid = [i for i in range(len(arr)) if np.isfinite(arr[i]).all()]
    if not valid:
        return None
    out = arr.copy()
    for s, e in zip(valid[:-1], valid[1:]):
        delta = out[e] - out[s]
        for i in range(1, e - s):
            out[s + i] = out[s] + i / float(e - s) * delta
    out[: valid[0]] = out[valid[0]]
    out[valid[-1] + 1:] = out[valid[-1]]
    return out


def smooth_landmarks(landmarks: np.ndarray, window_margin: int = 12) -> np.ndarray:
    """Centred moving average over +-``window_margin // 2`` frames (shrinking symmetrically at
    the ends), re-centred on each frame's own centroid. (N, 68, 2) -> (N, 68, 2) float64."""
    n = len(landmarks)
    out = np.empty_like(landmarks, dtype=np.float64)
    for t in range(n):
        w = min(window_margin // 2, t, n - 1 - t)
        smoothed = np.mean([landmarks[x] for x in range(t - w, t + w + 1)], axis=0)
        smoothed += landmarks[t].mean(axis=0) - smoothed.mean(axis=0)
        out[t] = smoothed
    return out


def stable_reference(mean_face: np.ndarray = MEAN_FACE_20WORDS, config: MouthCropConfig = MouthCropConfig()) -> np.ndarray:
    """Mean-face rows of :data:`STABLE_POINTS`, shifted for the target size. (8, 2) float64."""
    ref = np.vstack([mean_face[i] for i in STABLE_POINTS]).astype(np.float64)
    shift = (config.reference_size - config.target_size) / 2.0
    ref[:, 0] -= shift
    ref[:, 1] -= shift
    return ref


def estimate_transform(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """4-DOF similarity (2, 3) float64 mapping ``points[STABLE_POINTS]`` onto ``reference``
    with ``cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)``."""
    cv2 = _cv2()
    src = np.vstack([points[i] for i in STABLE_POINTS])
    matrix = cv2.estimateAffinePartial2D(src, reference, method=cv2.LMEDS)[0]
    if matrix is None:
        raise MouthCropError("could not estimate the face alignment (degenerate landmarks)")
    return matrix


def apply_transform(frame: np.ndarray, points: np.ndarray, matrix: np.ndarray, size: int = 256
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Warp one frame (H, W, C) to (size, size, C) and map its points (68, 2) with ``matrix``."""
    cv2 = _cv2()
    warped = cv2.warpAffine(frame, matrix, dsize=(size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, np.matmul(points, matrix[:, :2].transpose()) + matrix[:, 2].transpose()


def cut_box(center: np.ndarray, image_hw: tuple[int, int], half: int = 48, threshold: float = 5.0
            ) -> tuple[int, int, int, int]:
    """``[y_min, y_max, x_min, x_max]`` of the crop around ``center`` = (cx, cy), clipped to the
    image, rounded half-to-even (Python ``round`` on float64), as auto_avsr's ``cut_patch``."""
    cx, cy = float(center[0]), float(center[1])
    h, w = image_hw
    if abs(cy - h / 2) > half + threshold:
        raise MouthCropError(f"mouth centre y={cy:.1f} is too far from the aligned image centre {h / 2}")
    if abs(cx - w / 2) > half + threshold:
        raise MouthCropError(f"mouth centre x={cx:.1f} is too far from the aligned image centre {w / 2}")
    return (int(round(np.clip(cy - half, 0, h))), int(round(np.clip(cy + half, 0, h))),
            int(round(np.clip(cx - half, 0, w))), int(round(np.clip(cx + half, 0, w))))


def crop_mouths(frames: np.ndarray, landmarks: LandmarksLike, config: MouthCropConfig = MouthCropConfig(),
                mean_face: np.ndarray = MEAN_FACE_20WORDS, min_frames: int = 1, details: Optional[dict] = None
                ) -> np.ndarray:
    """Aligned mouth crops: frames (N, H, W, C) float32 [0, 255] -> (N, 96, 96, C) float32.

    ``min_frames``: refuse shorter clips (the reference refuses fewer than ``window_margin`` = 12
    frames; LipScore's ``reference_quirks`` mode passes 12). ``details``: if a dict, filled with
    the intermediate arrays (``interpolated``, ``smoothed``, ``transforms``, ``transformed``,
    ``centers``, ``boxes``).
    """
    if len(frames) != len(landmarks):
        raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark rows")
    filled = interpolate_landmarks(landmarks)
    if filled is None:
        raise MouthCropError("no face landmarks in any frame")
    if len(filled) < min_frames:
        raise MouthCropError(f"clip too short: {len(filled)} frames, the reference procedure needs at least {min_frames}")
    smoothed = smooth_landmarks(filled, config.window_margin)
    reference = stable_reference(mean_face, config)
    half = config.crop_size // 2
    crops, mats, moved, centers, boxes = [], [], [], [], []
    for frame, points in zip(frames, smoothed):
        matrix = estimate_transform(points, reference)
        warped, tpoints = apply_transform(frame, points, matrix, config.target_size)
        center = np.mean(tpoints[MOUTH_POINTS], axis=0)
        y0, y1, x0, x1 = cut_box(center, warped.shape[:2], half, config.cut_threshold)
        crop = np.copy(warped[y0:y1, x0:x1])
        if crop.shape[:2] != (config.crop_size, config.crop_size):
            raise MouthCropError(f"mouth crop clipped by the image border: {crop.shape[:2]}")
        crops.append(crop)
        mats.append(matrix), moved.append(tpoints), centers.append(center), boxes.append((y0, y1, x0, x1))
    if details is not None:
        details.update(interpolated=filled, smoothed=smoothed, transforms=np.stack(mats),
                       transformed=np.stack(moved), centers=np.stack(centers),
                       boxes=np.asarray(boxes, dtype=np.int64))
    return np.stack(crops)


def video_transform(crops: Union[np.ndarray, torch.Tensor], size: int = 88) -> torch.Tensor:
    """auto_avsr ``VideoTransform("test")``: (N, 96, 96, 3) float [0, 255] -> (N, 1, 88, 88) float32
    (/255, centre crop, grey 0.2989/0.587/0.114, normalise mean 0.421 std 0.165)."""
    x = torch.as_tensor(np.asarray(crops, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    x = x[..., top: top + size, left: left + size]
    if x.shape[1] == 3:
        r, g, b = x.unbind(dim=1)
        x = (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)
    return (x - NORM_MEAN) / NORM_STD


def preprocess_mouth(frames, landmarks: LandmarksLike, config: MouthCropConfig = MouthCropConfig(),
                     min_frames: int = 1) -> torch.Tensor:
    """Frames (see :func:`as_float255`) + landmarks (N, 68, 2) -> encoder input (N, 1, 88, 88)."""
    return video_transform(crop_mouths(as_float255(frames), landmarks, config, min_frames=min_frames),
                           config.center_crop)
