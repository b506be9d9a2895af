"""auto_avsr visual front-end: a 3-D convolution stem followed by a ResNet-18 trunk.

Checkpoint-compatible re-implementation of ``Conv3dResNet`` (auto_avsr
``espnet/nets/pytorch_backend/backbones/conv3d_extractor.py``), the front-end of the VSR
encoder used by LipScore (SPEC §8.1, reference README §11). Parameter names match the
published checkpoint under ``encoder.frontend.``:

* ``frontend3D.0`` Conv3d(1, 64, k=(5, 7, 7), s=(1, 2, 2), p=(2, 3, 3), no bias),
  ``frontend3D.1`` BatchNorm3d(64), Swish, MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1));
* ``trunk.layer1..4``: BasicBlock x [2, 2, 2, 2], widths 64/128/256/512 (fixed by the
  architecture, independent of the conformer size), strides 1/2/2/2, Swish activations,
  ``downsample`` = 1x1 conv + BN when the shape changes; global average pool.

Shapes for 88x88 mouth crops: (B, T, 1, 88, 88) -> stem (B, 64, T, 22, 22) -> trunk per frame
22 -> 22 -> 11 -> 6 -> 3 -> (B, T, 512).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Swish", "BasicBlock", "ResNetTrunk", "Conv3dResNet"]


class Swish(nn.Module):
    """x * sigmoid(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-Swish-conv3x3-BN, + residual, Swish."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = Swish()
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = Swish()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + residual)


class ResNetTrunk(nn.Module):
    """ResNet-18 trunk (no stem): (N, 64, H, W) -> (N, 512)."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.inplanes = 64
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class Conv3dResNet(nn.Module):
    """3-D conv stem + per-frame ResNet-18: (B, T, 1, H, W) -> (B, T, 512)."""

    def __init__(self):
        super().__init__()
        self.frontend_nout = 64
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, 64, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            Swish(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        self.trunk = ResNetTrunk()

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) -> (B, 64, T, H/4, W/4)."""
        return self.frontend3D(x.transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = self.stem(x)
        t = y.shape[2]
        y = y.transpose(1, 2).reshape(b * t, y.shape[1], y.shape[3], y.shape[4])  # "b c t h w -> (b t) c h w"
        return self.trunk(y).view(b, t, -1)
