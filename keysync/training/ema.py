"""Exponential moving average of the trainable weights (reference ``LitEma``, off in KeySync).

Shadow copies live in buffers, so they are saved in checkpoints under ``model_ema.*`` (a prefix
:func:`keysync.models.checkpoints.load_checkpoint` knows to ignore).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def _buffer_name(name: str) -> str:
    """Buffer name of the shadow of parameter ``name`` (buffer names cannot contain dots)."""
    return name.replace(".", "__")


class ParameterEMA(nn.Module):
    """EMA of ``model``'s trainable parameters: s ← s − (1 − d)(s − p) after every update,
    with d = min(decay, (1 + n)/(10 + n)) when ``use_num_updates`` (n = updates so far)."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, use_num_updates: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError("decay must be in [0, 1]")
        self.register_buffer("decay", torch.tensor(decay, dtype=torch.float32))
        self.register_buffer("num_updates", torch.tensor(0 if use_num_updates else -1, dtype=torch.int64))
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        for name in self.names:
            self.register_buffer(_buffer_name(name), params[name].detach().clone().float())

    def _pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, nn.Parameter]]:
        params = dict(model.named_parameters())
        for name in self.names:
            yield getattr(self, _buffer_name(name)), params[name]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = float(self.decay)
        if int(self.num_updates) >= 0:
            self.num_updates += 1
            n = int(self.num_updates)
            decay = min(decay, (1 + n) / (10 + n))
        for shadow, param in self._pairs(model):
            shadow.sub_((1.0 - decay) * (shadow - param.detach().to(shadow.dtype)))

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for shadow, param in self._pairs(model):
            param.copy_(shadow.to(param.dtype))

    @contextmanager
    def swapped_in(self, model: nn.Module):
        """Temporarily run ``model`` with the EMA weights (restored afterwards)."""
        backup = [p.detach().clone() for _, p in self._pairs(model)]
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for (_, param), saved in zip(self._pairs(model), backup):
                    param.copy_(saved)
