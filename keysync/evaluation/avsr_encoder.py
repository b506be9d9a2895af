"""The auto_avsr visual speech recognition encoder (LipScore's feature extractor).

:class:`VSREncoder` = ``Conv3dResNet`` front-end -> ``embed`` (Linear(512, adim) + relative
positional encoding) -> ``elayers`` Conformer blocks -> ``after_norm``. Its state-dict keys are
those of auto_avsr's ``E2E.encoder`` (the published checkpoint
``vsr_trlrs2lrs3vox2avsp_base_updated.pth`` stores them under ``encoder.``, next to
``decoder.*`` and ``ctc.*``, which LipScore never uses and :func:`load_vsr_encoder` skips).

Published size (:data:`AUTO_AVSR_BASE`): adim 768, 12 heads, FF 3072, 12 layers, conv kernel 31.
:func:`load_vsr_encoder` infers the sizes from the checkpoint, so the reference's tiny test
model (adim 32, 2 heads, FF 64, 2 layers) loads the same way.

``VSREncoder.forward_no_beam(x)``: x (T, 1, 88, 88) normalised grey mouth crops ->
features (T, adim), identical to auto_avsr ``ModelModule.forward_no_beam``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from keysync.models.checkpoints import CheckpointError, read_state_dict

from .avsr_conformer import ConformerLayer, LayerNorm, RelPositionalEncoding
from .avsr_frontend import Conv3dResNet

__all__ = ["VSRConfig", "AUTO_AVSR_BASE", "VSREncoder", "infer_vsr_config", "encoder_state_dict", "load_vsr_encoder",
           "AUTO_AVSR_CHECKPOINT_NAME"]

log = logging.getLogger(__name__)

#: file name of the published auto_avsr VSR checkpoint used by LipScore.
AUTO_AVSR_CHECKPOINT_NAME = "vsr_trlrs2lrs3vox2avsp_base_updated.pth"
_IGNORED_PREFIXES = ("decoder.", "ctc.")


@dataclass(frozen=True)
class VSRConfig:
    """Conformer sizes (the ResNet front-end has fixed widths)."""

    adim: int = 768
    aheads: int = 12
    eunits: int = 3072
    elayers: int = 12
    cnn_module_kernel: int = 31
    frontend_dim: int = 512


AUTO_AVSR_BASE = VSRConfig()


class VSREncoder(nn.Module):
    """auto_avsr ``Encoder`` with the ``conv3d`` input layer, ``rel_mha`` attention, macaron FF
    and conv module. ``forward(x)``: (B, T, 1, H, W) -> (B, T, adim)."""

    def __init__(self, config: VSRConfig = AUTO_AVSR_BASE):
        super().__init__()
        self.config = config
        self.frontend = Conv3dResNet()
        self.embed = nn.Sequential(nn.Linear(config.frontend_dim, config.adim), RelPositionalEncoding(config.adim))
        self.encoders = nn.ModuleList(
            ConformerLayer(config.adim, config.aheads, config.eunits, config.cnn_module_kernel)
            for _ in range(config.elayers))
        self.after_norm = LayerNorm(config.adim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pos_emb = self.embed(self.frontend(x))
        for layer in self.encoders:
            x = layer(x, pos_emb)
        return self.after_norm(x)

    @torch.no_grad()
    def forward_no_beam(self, x: torch.Tensor) -> torch.Tensor:
        """(T, 1, H, W) preprocessed crops -> (T, adim) encoder features (no decoding)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (T, 1, H, W) grey crops, got shape {tuple(x.shape)}")
        return self(x.unsqueeze(0)).squeeze(0)


def encoder_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's own keys from a full E2E state dict (``encoder.`` stripped; ``decoder.*``
    and ``ctc.*`` dropped). A dict already without the prefix is returned unchanged."""
    if any(k.startswith("encoder.") for k in state):
        return {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    return {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}


def infer_vsr_config(state: Mapping[str, torch.Tensor]) -> VSRConfig:
    """Conformer sizes from an encoder state dict (keys without ``encoder.``)."""
    try:
        adim, frontend_dim = state["embed.0.weight"].shape
        aheads = state["encoders.0.self_attn.pos_bias_u"].shape[0]
        eunits = state["encoders.0.feed_forward.w_1.weight"].shape[0]
        kernel = state["encoders.0.conv_module.depthwise_conv.weight"].shape[-1]
    except KeyError as err:
        raise CheckpointError(f"not an auto_avsr VSR encoder state dict: key {err} is missing") from err
    layers = {int(m.group(1)) for k in state if (m := re.match(r"encoders\.(\d+)\.", k))}
    return VSRConfig(adim=int(adim), aheads=int(aheads), eunits=int(eunits), elayers=len(layers),
                     cnn_module_kernel=int(kernel), frontend_dim=int(frontend_dim))


def load_vsr_encoder(path: str | Path, config: VSRConfig | None = None, device: str | torch.device = "cpu") -> VSREncoder:
    """Build a :class:`VSREncoder` from an auto_avsr checkpoint (``.pth`` read with
    ``weights_only=True``, or ``.safetensors``), in eval mode, float32.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is unreadable or its keys/shapes do not fit the encoder.
    """
    state = encoder_state_dict(read_state_dict(path))
    config = config or infer_vsr_config(state)
    model = VSREncoder(config)
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = sorted(f"{k} {list(state[k].shape)} vs {list(expected[k].shape)}"
                        for k in expected if k in state and state[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{path}: does not fit the auto_avsr VSR encoder {config}: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatch {mismatched[:5]}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    log.info("loaded auto_avsr VSR encoder %s from %s", config, path)
    return model.to(device).eval()
