"""SyncNet (``syncnet_v2``, Chung & Zisserman 2016) audio and lip towers, checkpoint-compatible.

Re-implementation of ``SyncNetModel.S`` from joonson/syncnet_python, the model behind LSE-C /
LSE-D (Wav2Lip's evaluation). The published weights file ``syncnet_v2.model`` is a plain
``torch.save``-d state dict with the keys ``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*`` and
``netfclip.*`` used here (loaded with ``weights_only=True``).

* ``forward_aud(x)``: MFCC windows (B, 1, 13, 20) (13 coefficients x 20 steps of 10 ms =
  0.2 s = 5 video frames) -> (B, 1024);
* ``forward_lip(x)``: face crops (B, 3, 5, 224, 224), **BGR**, float 0..255 (no normalisation;
  the original reads frames with ``cv2.imread``) -> (B, 1024).

Shapes: audio 13x20 -> 13x20 -> 11x9 -> 5x4 -> 1x1 (512); lip 5x224x224 -> 1x109x109 -> 54
-> 26 -> 13 -> 6 -> 1 (512); both through Linear-BN-ReLU-Linear to 1024.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from keysync.models.checkpoints import CheckpointError, read_state_dict

__all__ = ["SyncNet", "load_syncnet", "SYNCNET_FILENAME"]

SYNCNET_FILENAME = "syncnet_v2.model"


def _c2(cin, cout, k, s=1, p=0):
    return [nn.Conv2d(cin, cout, kernel_size=k, stride=s, padding=p), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _c3(cin, cout, k, s=1, p=0):
    return [nn.Conv3d(cin, cout, kernel_size=k, stride=s, padding=p), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


def _fc(dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim_out))


class SyncNet(nn.Module):
    """``syncnet_v2``; parameter names as in the published ``syncnet_v2.model``."""

    def __init__(self, embed_dim: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_c2(1, 64, (3, 3), (1, 1), (1, 1)), nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            *_c2(64, 192, (3, 3), (1, 1), (1, 1)), nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            *_c2(192, 384, (3, 3), 1, (1, 1)),
            *_c2(384, 256, (3, 3), 1, (1, 1)),
            *_c2(256, 256, (3, 3), 1, (1, 1)), nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            *_c2(256, 512, (5, 4), 1, (0, 0)),
        )
        self.netfcaud = _fc(embed_dim)
        self.netfclip = _fc(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_c3(3, 96, (5, 7, 7), (1, 2, 2), 0), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_c3(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_c3(256, 256, (1, 3, 3), 1, (0, 1, 1)),
            *_c3(256, 256, (1, 3, 3), 1, (0, 1, 1)),
            *_c3(256, 256, (1, 3, 3), 1, (0, 1, 1)), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_c3(256, 512, (1, 6, 6), 1, 0),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 20) MFCC -> (B, D)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 5, 224, 224) BGR 0..255 -> (B, D)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def load_syncnet(path: str | Path, device: str | torch.device = "cpu") -> SyncNet:
    """Load ``syncnet_v2.model`` (or a ``.pt/.pth/.safetensors`` copy of its state dict), eval mode.

    Raises FileNotFoundError, or CheckpointError when the keys / shapes do not fit.
    """
    path = Path(path)
    if path.suffix == ".model":  # the published name; a plain torch.save'd state dict
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"{path}: not a readable SyncNet state dict (weights_only load): {err}") from err
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    else:
        state = read_state_dict(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = {k[len("__S__."):] if k.startswith("__S__.") else k: v for k, v in state.items()}
    embed_dim = state.get("netfcaud.3.weight", torch.empty(1024, 512)).shape[0]
    model = SyncNet(embed_dim)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = sorted(k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or bad:
        raise CheckpointError(f"{path}: does not fit syncnet_v2: missing {missing[:5]} ({len(missing)}), "
                              f"unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatch {bad[:5]}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.to(device).eval()
