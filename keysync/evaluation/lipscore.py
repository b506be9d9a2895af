"""LipScore: per-frame cosine similarity of auto_avsr VSR encoder features (KeyFace / KeySync).

For a generated video and its ground truth (same number of frames T), each goes through the
mouth-crop preprocessing (:mod:`keysync.evaluation.mouth_crop`, with its own landmarks) and
the VSR encoder (:mod:`keysync.evaluation.avsr_encoder`), giving features (T, D). The video's
score is ``mean_t cos(f_pred[t], f_gt[t])`` and LipScore is the mean over videos (each video
counts once, whatever its length). Range [-1, 1]; **higher is better** (1.0 = lip movements
the lip-reader cannot tell apart; the original class declares ``higher_is_better=False``,
which is wrong: SPEC §11.22).

Reference-compatibility (``reference_quirks=True``, SPEC §11.29; off by default):

* ``reset()`` does not reset the video counter, so scores after a reset are divided by the
  total number of videos ever seen (the original's ``counter`` is not a metric state);
* clips shorter than 12 frames are refused (the original crashes on them);
* the running sum is a float32 tensor, as in the original.

By default ``reset()`` clears everything and any clip with >= 1 frame is scored. In both modes
pred and gt must have the same length unless ``length_mismatch="truncate"`` (then both are cut
to the shorter one and :attr:`LipScore.truncated` counts the videos concerned).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .avsr_encoder import VSREncoder, load_vsr_encoder
from .mouth_crop import MouthCropConfig, LandmarksLike, as_float255, crop_mouths, video_transform

__all__ = ["LipScore", "LipScorePair", "LandmarksFn", "REFERENCE_MIN_FRAMES"]

log = logging.getLogger(__name__)

#: ``(N, H, W, 3)`` uint8 RGB frames -> ``(N, 68, 2)`` landmarks, NaN rows where no face was found.
LandmarksFn = Callable[[np.ndarray], np.ndarray]
#: the original's ``window_margin``: ``VideoProcess`` returns None (then crashes) below it.
REFERENCE_MIN_FRAMES = 12


@dataclass
class LipScorePair:
    """Result for one (pred, gt) pair: per-frame cosines (T,) float32 and their mean."""

    per_frame: torch.Tensor
    score: float
    num_frames: int
    truncated: bool = False


class LipScore:
    """LipScore metric (``update`` / ``compute`` / ``reset``, torchmetrics-like).

    Args:
        encoder: a loaded :class:`VSREncoder`, or a path to the auto_avsr checkpoint.
        landmarks_fn: detector used when ``update`` gets no landmarks; receives uint8 frames.
        device: where the encoder runs.
        reference_quirks: reproduce the original metric state (see module docstring).
        length_mismatch: ``"error"`` (default) or ``"truncate"``.
    """

    higher_is_better = True
    minimum, maximum = -1.0, 1.0

    def __init__(self, encoder: VSREncoder | str, landmarks_fn: Optional[LandmarksFn] = None,
                 device: str | torch.device = "cpu", reference_quirks: bool = False,
                 length_mismatch: str = "error", crop_config: MouthCropConfig = MouthCropConfig()):
        if length_mismatch not in ("error", "truncate"):
            raise ValueError(f"length_mismatch must be 'error' or 'truncate', got {length_mismatch!r}")
        self.device = torch.device(device)
        self.encoder = (load_vsr_encoder(encoder) if not isinstance(encoder, VSREncoder) else encoder)
        self.encoder.to(self.device).eval()
        self.landmarks_fn = landmarks_fn
        self.reference_quirks = reference_quirks
        self.length_mismatch = length_mismatch
        self.crop_config = crop_config
        self._counter = 0
        self.reset()

    # ------------------------------------------------------------------ features
    def preprocess(self, frames, landmarks: Optional[LandmarksLike] = None) -> torch.Tensor:
        """Frames (N, H, W, 3) uint8 / float [0, 1] (or (N, 3, H, W) tensor) -> (N, 1, 88, 88)."""
        video = as_float255(frames)
        if landmarks is None:
            if self.landmarks_fn is None:
                raise ValueError("no landmarks given and no landmarks_fn configured")
            landmarks = self.landmarks_fn(np.clip(np.rint(video), 0, 255).astype(np.uint8))
        min_frames = REFERENCE_MIN_FRAMES if self.reference_quirks else 1
        crops = crop_mouths(video, landmarks, self.crop_config, min_frames=min_frames)
        return video_transform(crops, self.crop_config.center_crop)

    def features(self, frames, landmarks: Optional[LandmarksLike] = None) -> torch.Tensor:
        """Encoder features (N, D) float32 of one video (see :meth:`preprocess`)."""
        x = self.preprocess(frames, landmarks).to(self.device)
        return self.encoder.forward_no_beam(x).float().cpu()

    # ------------------------------------------------------------------ scoring
    def score_features(self, feat_pred: torch.Tensor, feat_gt: torch.Tensor) -> LipScorePair:
        """Per-frame cosine (eps 1e-8) of two (T, D) feature sequences."""
        truncated = False
        if feat_pred.shape[0] != feat_gt.shape[0]:
            if self.length_mismatch == "error":
                raise ValueError(f"pred has {feat_pred.shape[0]} frames, gt {feat_gt.shape[0]}: LipScore compares "
                                 "frame by frame (use length_mismatch='truncate' to cut both to the shorter one)")
            n = min(feat_pred.shape[0], feat_gt.shape[0])
            feat_pred, feat_gt, truncated = feat_pred[:n], feat_gt[:n], True
        cos = F.cosine_similarity(feat_pred, feat_gt, dim=1)
        return LipScorePair(per_frame=cos, score=cos.mean().item(), num_frames=int(cos.shape[0]), truncated=truncated)

    def score_pair(self, pred, gt, landmarks_pred: Optional[LandmarksLike] = None,
                   landmarks_gt: Optional[LandmarksLike] = None) -> LipScorePair:
        """Score one pair without touching the metric state."""
        truncated = False
        if len(pred) != len(gt):
            if self.length_mismatch == "error":
                raise ValueError(f"pred has {len(pred)} frames, gt {len(gt)}: LipScore compares frame by frame "
                                 "(use length_mismatch='truncate' to cut both to the shorter one)")
            n = min(len(pred), len(gt))
            pred, gt, truncated = pred[:n], gt[:n], True
            landmarks_pred = None if landmarks_pred is None else landmarks_pred[:n]
            landmarks_gt = None if landmarks_gt is None else landmarks_gt[:n]
        result = self.score_features(self.features(pred, landmarks_pred), self.features(gt, landmarks_gt))
        result.truncated = truncated
        return result

    # ------------------------------------------------------------------ metric state
    def reset(self) -> None:
        """Clear the accumulated scores (with ``reference_quirks`` the divisor is kept)."""
        self.per_video: List[float] = []
        self.truncated = 0
        self._sum = torch.tensor(0.0)  # float32, as the original's metric state
        if not self.reference_quirks:
            self._counter = 0

    def update(self, videos_pred: Sequence, videos_gt: Sequence,
               landmarks_pred: Optional[Sequence[Optional[LandmarksLike]]] = None,
               landmarks_gt: Optional[Sequence[Optional[LandmarksLike]]] = None) -> List[LipScorePair]:
        """Add pairs of videos; returns their :class:`LipScorePair` (the original returns None)."""
        if len(videos_pred) != len(videos_gt):
            raise ValueError(f"{len(videos_pred)} predicted videos but {len(videos_gt)} ground-truth videos")
        lp = landmarks_pred if landmarks_pred is not None else [None] * len(videos_pred)
        lg = landmarks_gt if landmarks_gt is not None else [None] * len(videos_gt)
        results = []
        for pred, gt, a, b in zip(videos_pred, videos_gt, lp, lg):
            res = self.score_pair(pred, gt, a, b)
            self.per_video.append(res.score)
            self.truncated += int(res.truncated)
            self._sum += res.score
            self._counter += 1
            results.append(res)
        return results

    @property
    def counter(self) -> int:
        """Divisor of :meth:`compute` (never reset with ``reference_quirks``)."""
        return self._counter

    def compute(self) -> float:
        """Mean over videos of the per-video mean cosine (higher is better)."""
        if self._counter == 0:
            raise ValueError("LipScore.compute() called before any update")
        if self.reference_quirks:
            return self._sum.item() / self._counter
        return float(np.mean(self.per_video))

    def compute_dict(self) -> dict:
        """The original's return format ``{"cosine_sim": value}``."""
        return {"cosine_sim": self.compute()}
