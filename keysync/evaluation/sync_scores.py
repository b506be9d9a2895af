"""Audio-visual sync scores: SyncNet offset search, LSE-C (confidence) and LSE-D (distance).

The procedure of syncnet_python ``SyncNetInstance.evaluate`` (used by Wav2Lip's LSE-C/LSE-D):

1. face crops (N, 224, 224, 3) (:func:`syncnet_face_crops`), BGR 0..255; MFCC (13, M) of the
   audio (:func:`keysync.evaluation.sync_audio.mfcc_for_syncnet`);
2. ``L = min(N, floor(len(audio) / 640)) - 5`` windows: video frames ``[i, i+5)`` and MFCC
   steps ``[4i, 4i+20)`` -> embeddings v_i, a_i (any model with ``forward_lip`` /
   ``forward_aud``, :class:`keysync.evaluation.syncnet.SyncNet` for the real scores);
3. :func:`sync_from_features`: ``d[i, j] = ||v_i - a_{i+j-vshift}||`` (Euclidean + 1e-6,
   ``F.pairwise_distance``; audio zero-padded by vshift at both ends), j = 0..2 vshift;
   ``mdist = mean_i d[i, :]``;
   * **LSE-D** = min(mdist) (lower is better), **LSE-C** = median(mdist) - min(mdist)
     (higher is better),
   * offset = vshift - argmin(mdist): **offset k > 0 means the mouth lags the audio by k
     frames** (video frame t shows the mouth of audio frame t - k);
   * LSE-C and LSE-D take the *best* offset, so a video delayed by a few frames keeps
     similar values; the scores at offset 0 expose the delay: ``lse_d0 = mdist[offset 0]``
     (lower is better), ``lse_c0 = median(mdist) - lse_d0`` (higher is better; it drops
     when out of sync), together with ``|offset|``.

vshift = 15 (+-15 frames, Wav2Lip's setting). Frames must be 25 fps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .sync_audio import MFCC_PER_VIDEO_FRAME, mfcc_for_syncnet

__all__ = ["SyncResult", "sync_from_features", "face_boxes_from_landmarks", "syncnet_face_crops", "SyncScorer",
           "SAMPLES_PER_FRAME", "WINDOW"]

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
WINDOW = 5  # video frames per SyncNet window (0.2 s)


@dataclass
class SyncResult:
    """``offset`` (frames, see module docstring), ``lse_c``, ``lse_d`` (best offset),
    ``lse_c0``, ``lse_d0`` (offset 0); ``mean_dists`` (2 vshift + 1,) over offsets
    vshift..-vshift; ``dists`` (L, 2 vshift + 1)."""

    offset: int
    lse_c: float
    lse_d: float
    lse_c0: float
    lse_d0: float
    mean_dists: np.ndarray
    dists: np.ndarray

    def as_dict(self) -> dict:
        return {"lse_c": self.lse_c, "lse_d": self.lse_d, "lse_offset": float(self.offset),
                "lse_c0": self.lse_c0, "lse_d0": self.lse_d0}


def sync_from_features(video_feats: torch.Tensor, audio_feats: torch.Tensor, vshift: int = 15) -> SyncResult:
    """Offset search over (L, D) window embeddings (see module docstring)."""
    if video_feats.shape != audio_feats.shape or video_feats.ndim != 2:
        raise ValueError(f"features must both be (L, D): {tuple(video_feats.shape)} vs {tuple(audio_feats.shape)}")
    v, a = video_feats.float(), audio_feats.float()
    win = 2 * vshift + 1
    padded = F.pad(a, (0, 0, vshift, vshift))
    dists = torch.stack([F.pairwise_distance(v[[i], :].repeat(win, 1), padded[i:i + win, :]) for i in range(len(v))])
    mdist = dists.mean(dim=0)
    minval, minidx = torch.min(mdist, 0)
    median, at_zero = torch.median(mdist), mdist[vshift]
    return SyncResult(offset=int(vshift - minidx), lse_c=float(median - minval), lse_d=float(minval),
                      lse_c0=float(median - at_zero), lse_d0=float(at_zero), mean_dists=mdist.numpy(),
                      dists=dists.numpy())


def face_boxes_from_landmarks(landmarks: np.ndarray, forehead: float = 0.2) -> np.ndarray:
    """Face boxes (N, 4) [x1, y1, x2, y2] from 68-point landmarks: their bounding box with the
    top raised by ``forehead`` x its height (the landmarks stop at the brows; S3FD boxes, which
    syncnet_python uses, include the forehead). An approximation of the detector's box."""
    lm = np.asarray(landmarks, dtype=np.float64)
    x1, y1 = np.nanmin(lm[..., 0], axis=1), np.nanmin(lm[..., 1], axis=1)
    x2, y2 = np.nanmax(lm[..., 0], axis=1), np.nanmax(lm[..., 1], axis=1)
    return np.stack([x1, y1 - forehead * (y2 - y1), x2, y2], axis=1)


def _median_filter(x: np.ndarray, k: int) -> np.ndarray:
    pad = k // 2
    padded = np.pad(x, pad, mode="edge")
    return np.array([np.median(padded[i:i + k]) for i in range(len(x))])


def syncnet_face_crops(frames: np.ndarray, boxes: np.ndarray, crop_scale: float = 0.4, size: int = 224,
                       smooth: int = 13) -> np.ndarray:
    """syncnet_python's ``crop_video``: (N, H, W, 3) + boxes (N, 4) -> (N, size, size, 3) uint8.

    Box half-size s = max(w, h) / 2 and centre are median-filtered over ``smooth`` frames (edge
    padding; the original's ``scipy.signal.medfilt`` pads with zeros), the frame is padded by
    ``int(s (1 + 2 crop_scale))`` with grey 110 and the region ``y in [cy - s, cy + s (1 + 2cs)]``,
    ``x in cx +- s (1 + cs)`` is resized (bilinear) to ``size``.
    """
    import cv2

    boxes = np.asarray(boxes, dtype=np.float64)
    s = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    cy, cx = (boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2
    if smooth and len(boxes) > 1:
        k = min(smooth, len(boxes) if len(boxes) % 2 else len(boxes) - 1)
        s, cy, cx = (_median_filter(v, k) for v in (s, cy, cx))
    out = []
    for frame, bs, my, mx in zip(frames, s, cy, cx):
        bsi = int(bs * (1 + 2 * crop_scale))
        padded = np.pad(frame, ((bsi, bsi), (bsi, bsi), (0, 0)), mode="constant", constant_values=110)
        my, mx = my + bsi, mx + bsi
        face = padded[int(my - bs):int(my + bs * (1 + 2 * crop_scale)),
                      int(mx - bs * (1 + crop_scale)):int(mx + bs * (1 + crop_scale))]
        out.append(cv2.resize(face, (size, size)))
    return np.stack(out)


class SyncScorer:
    """Runs a SyncNet-like model (``forward_lip``, ``forward_aud``) over a clip.

    ``score(crops, audio)``: crops (N, H, W, 3) uint8 **RGB** face crops at 25 fps (converted
    to BGR here, as the original reads them with OpenCV), audio float32 16 kHz mono in [-1, 1].
    """

    def __init__(self, model, vshift: int = 15, batch_size: int = 20, device: str | torch.device = "cpu"):
        self.model, self.vshift, self.batch_size, self.device = model, vshift, batch_size, torch.device(device)

    @torch.no_grad()
    def embed(self, crops: np.ndarray, audio: np.ndarray, mfcc: Optional[np.ndarray] = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Window embeddings (L, D) of video and audio (see module docstring)."""
        num = min(len(crops), len(audio) // SAMPLES_PER_FRAME)
        last = num - WINDOW
        if last < 1:
            raise ValueError(f"clip too short for SyncNet: {len(crops)} frames / {len(audio) / 16000:.2f} s of audio "
                             f"(needs more than {WINDOW} frames of both)")
        video = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).float().permute(3, 0, 1, 2)  # (3, N, H, W) BGR
        cc = torch.from_numpy(mfcc if mfcc is not None else mfcc_for_syncnet(audio)).float()  # (13, M)
        vf, af = [], []
        for s in range(0, last, self.batch_size):
            idx = range(s, min(last, s + self.batch_size))
            vin = torch.stack([video[:, i:i + WINDOW] for i in idx]).to(self.device)
            ain = torch.stack([cc[:, i * MFCC_PER_VIDEO_FRAME: i * MFCC_PER_VIDEO_FRAME + 20] for i in idx])
            vf.append(self.model.forward_lip(vin).float().cpu())
            af.append(self.model.forward_aud(ain.unsqueeze(1).to(self.device)).float().cpu())
        return torch.cat(vf), torch.cat(af)

    def score(self, crops: np.ndarray, audio: np.ndarray) -> SyncResult:
        return sync_from_features(*self.embed(crops, audio), vshift=self.vshift)

    def score_frames(self, frames: np.ndarray, landmarks: np.ndarray, audio: np.ndarray, size: int = 224) -> SyncResult:
        """Full frames + landmarks (N, 68, 2) -> face crops -> :meth:`score`."""
        valid = np.isfinite(landmarks).all(axis=(1, 2))
        if not valid.any():
            raise ValueError("no face landmarks in any frame")
        lm = landmarks.copy()
        idx = np.arange(len(lm))
        for p in range(68):  # fill frames without a face from their neighbours
            for c in range(2):
                lm[:, p, c] = np.interp(idx, idx[valid], lm[valid, p, c])
        return self.score(syncnet_face_crops(frames, face_boxes_from_landmarks(lm), size=size), audio)
