"""Residual blocks of the VideoUNet (openaimodel / SVD layout and parameter names)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from keysync.nn.blending import AlphaBlender


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back to the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    return GroupNorm32(32, channels)


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    if dims == 2:
        return nn.Conv2d(*args, **kwargs)
    if dims == 3:
        return nn.Conv3d(*args, **kwargs)
    raise ValueError(f"unsupported dims {dims}")


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Time-conditioned residual block.

    ``in_layers = [GN, SiLU, conv]``, ``emb_layers = [SiLU, Linear(emb → out)]`` (added as a
    per-channel bias), ``out_layers = [GN, SiLU, Dropout, conv (zero-init)]``,
    ``skip_connection`` = identity or 1×1 conv. With ``dims=3`` the input is (B, C, T, H, W);
    ``exchange_temb_dims`` then takes a per-frame embedding (B, T, E).
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float = 0.0,
        out_channels: int | None = None,
        dims: int = 2,
        kernel_size: int | Sequence[int] = 3,
        exchange_temb_dims: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.exchange_temb_dims = exchange_temb_dims
        if isinstance(kernel_size, int):
            padding: int | list[int] = kernel_size // 2
        else:
            kernel_size = tuple(kernel_size)
            padding = [k // 2 for k in kernel_size]
        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), conv_nd(dims, channels, out_channels, kernel_size, padding=padding)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            normalization(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(conv_nd(dims, out_channels, out_channels, kernel_size, padding=padding)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else conv_nd(dims, channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)
        while emb_out.ndim < h.ndim:
            emb_out = emb_out[..., None]
        if self.exchange_temb_dims:
            emb_out = rearrange(emb_out, "b t c ... -> b c t ...")
        return self.skip_connection(x) + self.out_layers(h + emb_out)


class VideoResBlock(ResBlock):
    """Spatial ResBlock followed by a temporal ResBlock (``time_stack``), blended by ``time_mixer``.

    Input/output (B·T, C, H, W); ``emb`` (B·T, E). ``out = α·spatial + (1 − α)·temporal``.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float = 0.0,
        video_kernel_size: int | Sequence[int] = 3,
        merge_strategy: str = "fixed",
        merge_factor: float = 0.5,
        out_channels: int | None = None,
    ) -> None:
        super().__init__(channels, emb_channels, dropout, out_channels=out_channels)
        out_channels = out_channels or channels
        self.time_stack = ResBlock(
            out_channels, emb_channels, dropout, out_channels=out_channels, dims=3,
            kernel_size=video_kernel_size, exchange_temb_dims=True,
        )
        self.time_mixer = AlphaBlender(merge_factor, merge_strategy, rearrange_pattern="b t -> b 1 t 1 1")

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_video_frames: int,
                image_only_indicator: torch.Tensor | None = None) -> torch.Tensor:
        x = super().forward(x, emb)
        x_spatial = rearrange(x, "(b t) c h w -> b c t h w", t=num_video_frames)
        x_temporal = self.time_stack(x_spatial, rearrange(emb, "(b t) ... -> b t ...", t=num_video_frames))
        x = self.time_mixer(x_spatial, x_temporal, image_only_indicator)
        return rearrange(x, "b c t h w -> (b t) c h w")


class Downsample(nn.Module):
    """3×3 stride-2 convolution (key ``op``)."""

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 upsampling followed by a 3×3 convolution (key ``conv``)."""

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
