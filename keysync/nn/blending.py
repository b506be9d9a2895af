"""Learned blending of a spatial and a temporal branch (SVD's AlphaBlender)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class AlphaBlender(nn.Module):
    """``alpha · x_spatial + (1 − alpha) · x_temporal``.

    ``merge_strategy``: ``"fixed"`` (alpha = mix_factor, a buffer), ``"learned"``
    (alpha = sigmoid(mix_factor)) or ``"learned_with_images"`` (as learned, but alpha = 1 for
    frames flagged by ``image_only_indicator``). ``rearrange_pattern`` maps the per-frame
    alpha of shape (B, T) onto the activation layout.

    Note the VAE decoder blends the other way round (see :mod:`keysync.nn.vae_blocks`).
    """

    strategies = ("fixed", "learned", "learned_with_images")

    def __init__(self, alpha: float, merge_strategy: str = "learned_with_images",
                 rearrange_pattern: str = "b t -> (b t) 1 1") -> None:
        super().__init__()
        if merge_strategy not in self.strategies:
            raise ValueError(f"unknown merge_strategy {merge_strategy!r}; expected one of {self.strategies}")
        self.merge_strategy = merge_strategy
        self.rearrange_pattern = rearrange_pattern
        if merge_strategy == "fixed":
            self.register_buffer("mix_factor", torch.tensor([alpha], dtype=torch.float32))
        else:
            self.mix_factor = nn.Parameter(torch.tensor([alpha], dtype=torch.float32))

    def get_alpha(self, image_only_indicator: torch.Tensor | None) -> torch.Tensor:
        if self.merge_strategy == "fixed":
            return self.mix_factor
        if self.merge_strategy == "learned":
            return torch.sigmoid(self.mix_factor)
        if image_only_indicator is None:
            raise ValueError("merge_strategy 'learned_with_images' needs image_only_indicator (B, T)")
        alpha = torch.where(
            image_only_indicator.bool(),
            torch.ones(1, 1, device=image_only_indicator.device, dtype=torch.float32),
            torch.sigmoid(self.mix_factor.float())[..., None],
        )
        return rearrange(alpha, self.rearrange_pattern)

    def forward(self, x_spatial: torch.Tensor, x_temporal: torch.Tensor,
                image_only_indicator: torch.Tensor | None = None) -> torch.Tensor:
        alpha = self.get_alpha(image_only_indicator).to(x_spatial.dtype)
        return alpha * x_spatial + (1.0 - alpha) * x_temporal
