"""Per-frame emotion files for KeyFace training, from any face-emotion detector (SPEC §6.2, §7.5).

File: ``<root>/emotions/<rel>.pt`` (:meth:`~keysync.data.paths.ArtefactLayout.emotions`), a
``torch.save`` dict, one row per video frame:

==========  ================  ==============================================
labels      int64 (N,)        class index (−1 when the detector gives none)
valence     float32 (N,)      in [-1, 1]
arousal     float32 (N,)      in [-1, 1]
scores      float32 (N, K)    class scores (K = 0 when the detector gives none)
==========  ================  ==============================================

The reference's detector (a TorchScript 8-class + valence/arousal model on landmark-aligned
faces) is not public, so the detector is the user's: any callable
``detector(frames, landmarks) -> mapping`` with ``frames`` uint8 (B, H, W, 3) RGB,
``landmarks`` (B, 68, 2) pixels or None, returning ``valence`` and ``arousal`` (B,) and
optionally ``labels`` (B,) and ``scores`` (B, K). It is called on chunks of ``batch_size`` frames
(32, as the reference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from keysync.data.paths import ArtefactLayout
from keysync.media import atomic_output

Detector = Callable[[np.ndarray, "np.ndarray | None"], Mapping[str, object]]
EMOTION_KEYS = ("labels", "valence", "arousal", "scores")


def _column(out: Mapping[str, object], key: str, n: int) -> torch.Tensor | None:
    if key not in out or out[key] is None:
        return None
    value = torch.as_tensor(np.asarray(out[key]))
    if value.shape[0] != n:
        raise ValueError(f"detector returned {key} for {value.shape[0]} frames, expected {n}")
    return value


def compute_emotions(chunks: Iterable[np.ndarray], detector: Detector, landmarks: np.ndarray | None = None,
                     batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Run ``detector`` over frame chunks (uint8 (n, H, W, 3) each) → the file's dict.

    ``landmarks`` (N, 68, 2) are passed along row by row (None: the detector finds faces itself).
    """
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in EMOTION_KEYS}
    start = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        for i in range(0, len(chunk), batch_size):
            frames = chunk[i:i + batch_size]
            n = len(frames)
            lmk = None
            if landmarks is not None:
                lmk = landmarks[start:start + n]
                if len(lmk) != n:
                    raise ValueError(f"landmarks end at frame {len(landmarks)}, the video has more frames")
            out = detector(frames, lmk)
            valence, arousal = _column(out, "valence", n), _column(out, "arousal", n)
            if valence is None or arousal is None:
                raise ValueError("the detector must return 'valence' and 'arousal'")
            labels = _column(out, "labels", n)
            scores = _column(out, "scores", n)
            parts["valence"].append(valence.float().reshape(n))
            parts["arousal"].append(arousal.float().reshape(n))
            parts["labels"].append(labels.long().reshape(n) if labels is not None else torch.full((n,), -1))
            parts["scores"].append(scores.float().reshape(n, -1) if scores is not None else torch.zeros(n, 0))
            start += n
    if start == 0:
        raise ValueError("no frames")
    result = {k: torch.cat(v) for k, v in parts.items()}
    for key in ("valence", "arousal"):
        if not torch.isfinite(result[key]).all() or result[key].abs().max() > 1 + 1e-6:
            raise ValueError(f"detector {key} must be finite and in [-1, 1]")
    if len({v.shape[1] for v in parts["scores"]}) > 1:
        raise ValueError("detector returned a varying number of class scores")
    return result


def save_emotions(emotions: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Write an emotions dict (see the module docstring) atomically with ``torch.save``."""
    missing = [k for k in EMOTION_KEYS if k not in emotions]
    if missing:
        raise ValueError(f"emotions dict lacks {missing}")
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save({k: emotions[k].contiguous() for k in EMOTION_KEYS}, tmp)
    return path


def load_emotions(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an emotions file (tensors only: ``weights_only``) and check its keys and lengths."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, Mapping) or not {"valence", "arousal", "labels"} <= set(data):
        raise ValueError(f"{path}: not an emotions file (needs labels, valence, arousal)")
    lengths = {k: len(data[k]) for k in data}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{path}: rows differ in length {lengths}")
    return dict(data)


def emotions_job(detector: Detector, batch_size: int = 32, use_landmarks: bool = True,
                 layout_in: ArtefactLayout | None = None):
    """A :func:`keysync.data.precompute.run_precompute` job writing ``emotions/<rel>.pt``.

    With ``use_landmarks`` the clip's ``landmarks_crop/<rel>.npy`` (as precomputed) goes to the
    detector with the frames.
    """
    from keysync.media import iter_video_frames, probe_video

    def output(layout: ArtefactLayout, rel: Path) -> Path:
        return layout.emotions(rel)

    def run(video: Path, out: Path) -> int:
        landmarks = None
        if use_landmarks:
            if layout_in is None:
                raise ValueError("use_landmarks needs the input layout (where the landmarks are)")
            path = layout_in.landmarks(layout_in.relative(video))
            if not path.is_file():
                raise FileNotFoundError(f"{video}: no landmarks at {path} (run keysync precompute landmarks first)")
            landmarks = np.load(path)
        info = probe_video(video)
        result = compute_emotions(iter_video_frames(video, chunk=batch_size), detector, landmarks, batch_size)
        if len(result["valence"]) != info.num_frames:
            raise ValueError(f"{video}: {len(result['valence'])} frames decoded, the header says {info.num_frames}")
        save_emotions(result, out)
        return len(result["valence"])

    return output, run


def load_detector(spec: str) -> Detector:
    """``"package.module:name"`` → the detector: ``name`` itself if it takes (frames, landmarks),
    else ``name()`` (a factory returning the detector)."""
    import importlib
    import inspect

    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"detector must be given as package.module:name, got {spec!r}")
    obj = getattr(importlib.import_module(module), attr)
    try:
        n_params = len(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        n_params = 2
    return obj() if n_params == 0 else obj
