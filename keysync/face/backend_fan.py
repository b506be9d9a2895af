"""Reference landmark backend: face_alignment's 2D-FAN-4 with the SFD face detector (SPEC §7.3).

Weights are read from local files, as published by the face_alignment project (its
``FaceAlignment`` class would download them, which fails offline):

* FAN: ``2DFAN4-11f355bf06.pth.tar`` (a state dict of ``face_alignment.models.FAN(4)``) or the
  older TorchScript archive ``2DFAN4-cd938726ad.zip``;
* SFD: ``s3fd-619a316812.pth`` (a state dict of the S3FD network).

The processing is face_alignment's own (``LandmarksType.TWO_D``, ``flip_input=False``): SFD boxes
(NMS 0.3, score > ``detector_threshold``), the library's 256×256 crop around each box, FAN
heatmaps decoded back to frame pixels (:func:`decode_heatmaps`). Unlike the reference, every face
is kept as a separate candidate (the reference concatenates them into one ragged array) and the
frames are used at their original size (no 512 resize, so no double rescaling).
Install: ``pip install --no-deps face-alignment==1.5.0`` plus ``numba`` (its ``opencv-python``
requirement is met by ``opencv-python-headless``). Points are ``(x, y)`` frame pixels.
"""

from __future__ import annotations

import os
import zipfile
from typing import List, Union

import numpy as np
import torch

from .landmarks import FaceCandidate, LandmarkBackend

__all__ = ["FANBackend", "load_fan", "decode_heatmaps"]

PathLike = Union[str, "os.PathLike[str]"]


def _require_file(path: PathLike, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{what} weights not found at {path!r}. Download them once from the face_alignment "
            "project (2DFAN4-11f355bf06.pth.tar and s3fd-619a316812.pth, see "
            "https://github.com/1adrianb/face-alignment) and pass their local paths.")
    return path


def load_fan(path: PathLike, device: str = "cpu") -> torch.nn.Module:
    """2D-FAN from a state-dict file (``.pth`` / ``.pth.tar``; the number of hourglass stacks is
    read from the keys, 4 for the published model) or a TorchScript archive (``.zip``)."""
    from face_alignment.models import FAN

    path = _require_file(path, "FAN")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            scripted = any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
        if scripted:
            return torch.jit.load(path, map_location=device).eval()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    stacks = sum(1 for k in state if k.startswith("conv_last") and k.endswith(".weight"))
    net = FAN(stacks or 4)  # the published 2D-FAN-4 has 4 hourglass stacks
    net.load_state_dict(state)
    return net.to(device).eval()


class FANBackend(LandmarkBackend):
    """face_alignment FAN + SFD from local weight files (see the module docstring).

    Args:
        fan_weights: path of the 2D-FAN-4 weights.
        detector_weights: path of the SFD (S3FD) weights.
        device: torch device string.
        detector_threshold: minimum SFD score of a face (face_alignment's default 0.5).
        max_faces: keep at most this many highest-scoring faces per frame.
    """

    name = "fan"

    def __init__(self, fan_weights: PathLike, detector_weights: PathLike, device: str = "cpu",
                 detector_threshold: float = 0.5, max_faces: int = 4):
        try:
            from face_alignment import utils as fa_utils
            from face_alignment.detection.sfd.sfd_detector import SFDDetector
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("the 'fan' landmark backend needs face-alignment==1.5.0 (pip install "
                              "--no-deps face-alignment==1.5.0 numba)") from e
        self._utils = fa_utils
        self.device = device
        self.max_faces = int(max_faces)
        self.detector = SFDDetector(device=device,
                                    path_to_detector=_require_file(detector_weights, "SFD detector"),
                                    filter_threshold=detector_threshold)
        self.net = load_fan(fan_weights, device)

    @torch.no_grad()
    def detect(self, frames: np.ndarray) -> List[List[FaceCandidate]]:
        u = self._utils
        batch = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        boxes_per_frame = self.detector.detect_from_batch(batch)
        jobs, crops = [], []
        for i, boxes in enumerate(boxes_per_frame):
            boxes = sorted((np.asarray(b, dtype=np.float64) for b in boxes), key=lambda b: -b[4])
            for d in boxes[: self.max_faces]:
                center = np.array([d[2] - (d[2] - d[0]) / 2.0, d[3] - (d[3] - d[1]) / 2.0])
                center[1] -= (d[3] - d[1]) * u.CENTER_Y_OFFSET
                scale = (d[2] - d[0] + d[3] - d[1]) / self.detector.reference_scale
                crops.append(u.crop(frames[i], center, scale).transpose(2, 0, 1).astype(np.float32) / 255.0)
                jobs.append((i, center, scale, d))
        out: List[List[FaceCandidate]] = [[] for _ in range(len(frames))]
        if not jobs:
            return out
        heat = self.net(torch.from_numpy(np.stack(crops)).to(self.device))
        if isinstance(heat, (list, tuple)):
            heat = heat[-1]
        heat = heat.float().cpu().numpy()
        points, scores = decode_heatmaps(heat, np.array([j[1] for j in jobs]), np.array([j[2] for j in jobs]))
        for k, (i, _center, _scale, d) in enumerate(jobs):
            out[i].append(FaceCandidate(points=points[k], score=float(d[4]),
                                        box=np.asarray(d[:4], dtype=np.float32)))
        return out


def decode_heatmaps(heat: np.ndarray, centers: np.ndarray, scales: np.ndarray):
    """FAN heatmaps ``(K, 68, 64, 64)`` -> frame points ``(K, 68, 2)`` and peak values ``(K, 68)``.

    face_alignment's decoding: the heatmap maximum, moved a quarter cell towards the larger
    neighbour (interior cells only), minus half a cell, mapped back through the crop (centre,
    scale; the crop spans ``200 · scale`` frame pixels). Unlike face_alignment, the result is
    not truncated to integers.
    """
    k, c, h, w = heat.shape
    flat = heat.reshape(k, c, h * w)
    idx = flat.argmax(-1)
    scores = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    px, py = idx % w, idx // w
    preds = np.stack([px + 1, py + 1], -1).astype(np.float64)
    inner = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
    kk, cc = np.nonzero(inner)
    x, y = px[kk, cc], py[kk, cc]
    dx = heat[kk, cc, y, x + 1] - heat[kk, cc, y, x - 1]
    dy = heat[kk, cc, y + 1, x] - heat[kk, cc, y - 1, x]
    preds[kk, cc, 0] += np.sign(dx) * 0.25
    preds[kk, cc, 1] += np.sign(dy) * 0.25
    preds -= 0.5
    span = 200.0 * np.asarray(scales, dtype=np.float64)[:, None, None]
    pts = preds * span / h + np.asarray(centers, dtype=np.float64)[:, None, :] - span / 2
    return pts.astype(np.float32), scores.astype(np.float32)
