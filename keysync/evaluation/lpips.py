"""LPIPS (Zhang et al. 2018), AlexNet variant v0.1, from two local weight files.

* backbone: torchvision's ImageNet AlexNet, ``alexnet-owt-7be5be79.pth`` (keys
  ``features.{0,3,6,8,10}.{weight,bias}``; ``classifier.*`` ignored);
* linear heads: the lpips package's ``weights/v0.1/alex.pth`` (keys ``lin0..4.model.1.weight``,
  (1, C, 1, 1)), saved under :data:`LPIPS_LIN_FILENAME`.

``LPIPS(a, b)``: images (B, 3, H, W) RGB in [-1, 1] -> (B,) distance: scaling layer
(shift [-.030, -.088, -.188], scale [.458, .448, .450]), relu1..relu5 of AlexNet, channel-wise
unit normalisation (eps 1e-10), squared difference, 1x1 linear head, spatial mean, sum over
the 5 layers. 0 for identical images; lower is better.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from keysync.models.checkpoints import CheckpointError, read_state_dict

__all__ = ["LPIPS", "load_lpips", "ALEXNET_FILENAME", "LPIPS_LIN_FILENAME"]

ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"
LPIPS_LIN_FILENAME = "lpips_alex_v0.1.pth"
_CHANNELS = (64, 192, 384, 256, 256)


class _Lin(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(cin, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS-Alex v0.1 (see module docstring)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())
        self.lins = nn.ModuleList(_Lin(c) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([.458, .448, .450]).view(1, 3, 1, 1), persistent=False)

    def _taps(self, x):
        outs, x = [], (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (1, 4, 7, 9, 11):
                outs.append(x)
        return outs

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = 0
        for lin, fa, fb in zip(self.lins, self._taps(a), self._taps(b)):
            fa = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fb = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((fa - fb) ** 2).mean(dim=(2, 3))
        return total.flatten()

    @torch.no_grad()
    def frames(self, pred: np.ndarray, gt: np.ndarray, batch: int = 16) -> np.ndarray:
        """Per-frame LPIPS of uint8 RGB frames (N, H, W, 3) -> (N,) float64."""
        device = self.shift.device
        out = []
        for s in range(0, len(pred), batch):
            a, b = (torch.from_numpy(np.ascontiguousarray(v[s:s + batch])).float().permute(0, 3, 1, 2).to(device)
                    / 127.5 - 1 for v in (pred, gt))
            out.append(self(a, b).double().cpu().numpy())
        return np.concatenate(out)


def load_lpips(lin_path: str | Path, alexnet_path: str | Path, device: str | torch.device = "cpu") -> LPIPS:
    """Build LPIPS-Alex from the two weight files (see module docstring), eval mode."""
    model = LPIPS()
    backbone = {k[len("features."):]: v for k, v in read_state_dict(alexnet_path).items() if k.startswith("features.")}
    lins = {f"{m.group(1)}.model.1.weight": v for k, v in read_state_dict(lin_path).items()
            if (m := re.match(r"(?:net\.)?lin(?:s\.)?(\d)\.model\.1\.weight$", k))}  # lin0.* or lins.0.*
    for part, state, path in ((model.features, backbone, alexnet_path), (model.lins, lins, lin_path)):
        expected = part.state_dict()
        missing = sorted(set(expected) - set(state))
        bad = sorted(k for k in expected if k in state and state[k].shape != expected[k].shape)
        if missing or bad:
            raise CheckpointError(f"{path}: does not fit LPIPS-Alex: missing {missing[:5]}, shape mismatch {bad[:5]}")
        part.load_state_dict({k: state[k] for k in expected})
    return model.to(device).eval()
