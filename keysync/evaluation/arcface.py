"""ArcFace identity embeddings for CSIM (insightface ``arcface_torch`` IResNet weights).

Loads a ``backbone.pth`` state dict of insightface's ``arcface_torch`` IResNet (r18 / r34 /
r50 / r100, detected from the keys: ``conv1``, ``bn1``, ``prelu``, ``layer1..4.<i>.{bn1,
conv1, bn2, prelu, conv2, bn3, downsample}``, ``bn2``, ``fc``, ``features``), e.g.
``ms1mv3_arcface_r100_fp16/backbone.pth`` saved under :data:`ARCFACE_FILENAME`.

Faces are aligned with a 5-point similarity transform (eye centres from landmarks 36-41 /
42-47, nose tip 30, mouth corners 48 / 54) onto the standard 112x112 ArcFace template, then
``(x / 255 - 0.5) / 0.5``. ``embed`` returns L2-normalised (N, 512) embeddings; CSIM of a
generated frame = cosine with the embedding of the corresponding ground-truth frame (mean over
frames; higher is better).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from keysync.models.checkpoints import CheckpointError, read_state_dict

__all__ = ["IResNet", "load_arcface", "align_faces", "ARCFACE_TEMPLATE", "ARCFACE_FILENAME", "five_points"]

ARCFACE_FILENAME = "arcface_r100.pth"
#: insightface's 112x112 destination points: left eye, right eye, nose, left/right mouth corner.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """arcface_torch IResNet: (B, 3, 112, 112) normalised RGB -> (B, num_features)."""

    def __init__(self, layers=(3, 13, 30, 3), num_features: int = 512):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(self.inplanes, planes, 2, down)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.bn2(x).flatten(1)))

    @torch.no_grad()
    def embed(self, faces: np.ndarray, batch: int = 32) -> torch.Tensor:
        """Aligned faces (N, 112, 112, 3) uint8 RGB -> L2-normalised (N, D) float32."""
        device = next(self.parameters()).device
        out = []
        for s in range(0, len(faces), batch):
            x = torch.from_numpy(np.ascontiguousarray(faces[s:s + batch])).float().permute(0, 3, 1, 2)
            out.append(self(((x / 255 - 0.5) / 0.5).to(device)).float().cpu())
        return torch.nn.functional.normalize(torch.cat(out), dim=1)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) iBUG landmarks -> (N, 5, 2): eye centres, nose tip, mouth corners."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return np.stack([lm[:, 36:42].mean(1), lm[:, 42:48].mean(1), lm[:, 30], lm[:, 48], lm[:, 54]], axis=1)


def align_faces(frames: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Similarity-align each frame's face to the ArcFace template: (N, size, size, 3) uint8."""
    import cv2

    template = ARCFACE_TEMPLATE * (size / 112.0)
    out = []
    for frame, pts in zip(frames, five_points(landmarks)):
        if not np.isfinite(pts).all():
            raise ValueError("a frame has no face landmarks")
        matrix = cv2.estimateAffinePartial2D(pts, template, method=cv2.LMEDS)[0]
        if matrix is None:
            raise ValueError("could not align a face (degenerate landmarks)")
        out.append(cv2.warpAffine(frame, matrix, (size, size), borderValue=0.0))
    return np.stack(out)


def load_arcface(path: str | Path, device: str | torch.device = "cpu") -> IResNet:
    """Load an arcface_torch IResNet ``backbone.pth`` (depth inferred from the keys), eval mode."""
    state = read_state_dict(path)
    try:
        layers = tuple(1 + max(int(k.split(".")[1]) for k in state if k.startswith(f"layer{i}.")) for i in range(1, 5))
        num_features = state["fc.weight"].shape[0]
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: not an arcface_torch IResNet state dict ({err})") from err
    model = IResNet(layers, num_features)
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not fit IResNet{layers}: missing {missing[:5]} ({len(missing)}), "
                              f"unexpected {unexpected[:5]} ({len(unexpected)})")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model.to(device).eval()
