"""Spatial and temporal transformer blocks of the VideoUNet (SVD layout and parameter names)."""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from keysync.nn.attention import CrossAttention, FeedForward
from keysync.nn.blending import AlphaBlender
from keysync.nn.embeddings import timestep_embedding


class BasicTransformerBlock(nn.Module):
    """Per-frame block: self-attention over the H·W tokens, cross-attention to ``context``, FF."""

    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int | None, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, None, n_heads, d_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = CrossAttention(dim, context_dim, n_heads, d_head, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B·T, H·W, C); context: (B·T, S, context_dim)."""
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class VideoTransformerBlock(nn.Module):
    """Temporal block: attention over the T frames of each spatial position.

    ``ff_in`` (+ ``norm_in``) is the ``extra_ff_mix_layer`` input feed-forward.
    """

    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int | None,
                 ff_in: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.has_ff_in = ff_in
        if ff_in:
            self.norm_in = nn.LayerNorm(dim)
            self.ff_in = FeedForward(dim, dim_out=dim, dropout=dropout)
        self.attn1 = CrossAttention(dim, None, n_heads, d_head, dropout)
        self.ff = FeedForward(dim, dim_out=dim, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = CrossAttention(dim, context_dim, n_heads, d_head, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None, timesteps: int) -> torch.Tensor:
        """x: (B·T, S, C) with S = H·W; context: (B·S, L, context_dim). Returns (B·T, S, C)."""
        s = x.shape[1]
        x = rearrange(x, "(b t) s c -> (b s) t c", t=timesteps)
        if self.has_ff_in:
            x = self.ff_in(self.norm_in(x)) + x
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        x = self.ff(self.norm3(x)) + x
        return rearrange(x, "(b s) t c -> (b t) s c", s=s)


class SpatialVideoTransformer(nn.Module):
    """Spatial transformer + temporal transformer, blended by a learned ``time_mixer``.

    Input/output (B·T, C, H, W); ``context`` (B·T, S, context_dim). With
    ``use_spatial_context`` the temporal blocks cross-attend to the first frame's context of
    each clip (``context[::T]``), repeated over the H·W positions.
    """

    def __init__(
        self,
        in_channels: int,
        n_heads: int,
        d_head: int,
        depth: int = 1,
        dropout: float = 0.0,
        context_dim: int | None = None,
        use_linear: bool = True,
        use_spatial_context: bool = False,
        merge_strategy: str = "fixed",
        merge_factor: float = 0.5,
        ff_in: bool = False,
        max_time_embed_period: int = 10000,
    ) -> None:
        super().__init__()
        if not use_linear:
            raise NotImplementedError("only use_linear_in_transformer=True (Linear proj_in/proj_out) is supported")
        inner_dim = n_heads * d_head
        self.in_channels = in_channels
        self.use_spatial_context = use_spatial_context
        self.max_time_embed_period = max_time_embed_period
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(in_channels, inner_dim)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner_dim, n_heads, d_head, context_dim, dropout) for _ in range(depth)
        )
        self.proj_out = nn.Linear(inner_dim, in_channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.time_stack = nn.ModuleList(
            VideoTransformerBlock(inner_dim, n_heads, d_head, context_dim, ff_in=ff_in, dropout=dropout)
            for _ in range(depth)
        )
        time_embed_dim = in_channels * 4
        self.time_pos_embed = nn.Sequential(
            nn.Linear(in_channels, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, in_channels)
        )
        self.time_mixer = AlphaBlender(merge_factor, merge_strategy)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        time_context: torch.Tensor | None = None,
        timesteps: int = 1,
        image_only_indicator: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _, _, h, w = x.shape
        x_in = x
        if self.use_spatial_context:
            if context is None or context.ndim != 3:
                raise ValueError("use_spatial_context needs a 3-D context (B·T, S, D)")
            time_context = repeat(context[::timesteps], "b ... -> (b n) ...", n=h * w)
        elif time_context is not None:
            time_context = repeat(time_context, "b ... -> (b n) ...", n=h * w)
            if time_context.ndim == 2:
                time_context = time_context[:, None]

        x = rearrange(self.norm(x), "b c h w -> b (h w) c")
        x = self.proj_in(x)

        frame_idx = torch.arange(timesteps, device=x.device).repeat(x.shape[0] // timesteps)
        pos = self.time_pos_embed(
            timestep_embedding(frame_idx, self.in_channels, max_period=self.max_time_embed_period).to(x.dtype)
        )[:, None, :]

        for block, time_block in zip(self.transformer_blocks, self.time_stack):
            x = block(x, context)
            x_temporal = time_block(x + pos, time_context, timesteps)
            x = self.time_mixer(x, x_temporal, image_only_indicator)
        x = rearrange(self.proj_out(x), "b (h w) c -> b c h w", h=h, w=w)
        return x + x_in
