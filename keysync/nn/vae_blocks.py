"""Building blocks of the SD / SVD autoencoder (sgm / LDM state-dict names).

Layout convention: videos are flattened as ``(B*T, C, H, W)`` with the frame index
fastest ("(b t)"). Temporal layers need ``timesteps`` = T, the frames per clip.

The blocks operate on pixel-space features or on *unscaled* latents (the 0.18215
latent scale factor is applied outside the autoencoder, see ``keysync.models.vae``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

ATTN_TYPES = ("vanilla", "vanilla-xformers", "none")


def Normalize(in_channels: int, num_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm(32, eps=1e-6, affine) used by every 2-D block of the autoencoder."""
    return nn.GroupNorm(num_groups=num_groups, num_channels=in_channels, eps=1e-6, affine=True)


def nonlinearity(x: torch.Tensor) -> torch.Tensor:
    """swish / SiLU."""
    return F.silu(x)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (used by the 3-D ``time_stack``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def _video_padding(kernel_size: Union[int, Sequence[int]]):
    if isinstance(kernel_size, int):
        return kernel_size // 2
    return tuple(int(k) // 2 for k in kernel_size)


def _as_kernel(kernel_size: Union[int, Sequence[int], None]):
    if kernel_size is None:
        return (3, 1, 1)
    if isinstance(kernel_size, int):
        return kernel_size
    return tuple(int(k) for k in kernel_size)


class ResnetBlock(nn.Module):
    """2-D residual block: norm1-swish-conv1 (+temb) norm2-swish-dropout-conv2, plus shortcut.

    (N, C_in, H, W) -> (N, C_out, H, W). ``temb_channels`` is 0 in the autoencoder.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: Optional[int] = None,
        conv_shortcut: bool = False,
        dropout: float = 0.0,
        temb_channels: int = 512,
    ):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.use_conv_shortcut = conv_shortcut

        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        if temb_channels > 0:
            self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            if conv_shortcut:
                self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
            else:
                self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor, temb: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.conv1(nonlinearity(self.norm1(x)))
        if temb is not None:
            h = h + self.temb_proj(nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention over H*W tokens with 1x1 conv q/k/v/proj_out.

    (N, C, H, W) -> (N, C, H, W). The reference "vanilla" and "vanilla-xformers"
    variants have identical weights and numerics (softmax(q k^T / sqrt(C)) v).
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.norm = Normalize(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1)
        self.k = nn.Conv2d(in_channels, in_channels, 1)
        self.v = nn.Conv2d(in_channels, in_channels, 1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        # (b, c, h, w) -> (b, 1, h*w, c)
        q, k, v = (t.reshape(b, 1, c, h * w).transpose(-1, -2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(-1, -2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        # extra kwargs (e.g. ``timesteps`` from the VideoDecoder) are ignored
        return x + self.proj_out(self.attention(x))


class _IdentityAttn(nn.Identity):
    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:  # noqa: D401
        return x


def make_attn(in_channels: int, attn_type: str = "vanilla") -> nn.Module:
    """Attention block factory; accepts the reference ``attn_type`` strings."""
    if attn_type in ("vanilla", "vanilla-xformers"):
        return AttnBlock(in_channels)
    if attn_type == "none":
        return _IdentityAttn()
    raise ValueError(
        f"unsupported attn_type {attn_type!r}; expected one of {ATTN_TYPES} "
        "('linear' attention of the LDM code base is not implemented)"
    )


class Upsample(nn.Module):
    """Nearest x2 upsampling followed by a 3x3 conv (key ``conv``). (N,C,H,W) -> (N,C,2H,2W)."""

    def __init__(self, in_channels: int, with_conv: bool = True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class Downsample(nn.Module):
    """Asymmetric pad (0,1,0,1) then 3x3 conv stride 2 (key ``conv``). (N,C,H,W) -> (N,C,H/2,W/2)."""

    def __init__(self, in_channels: int, with_conv: bool = True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv:
            return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class TemporalResBlock3D(nn.Module):
    """3-D residual block without time embedding (the ``time_stack`` of VideoResBlock).

    (B, C, T, H, W) -> (B, C, T, H, W). Keys ``in_layers.{0,2}``, ``out_layers.{0,3}``;
    GroupNorm(32, eps=1e-5) computed in float32, SiLU, Conv3d(kernel_size, 'same' padding).
    """

    def __init__(self, channels: int, kernel_size=(3, 1, 1), dropout: float = 0.0):
        super().__init__()
        kernel_size = _as_kernel(kernel_size)
        padding = _video_padding(kernel_size)
        self.in_layers = nn.Sequential(
            GroupNorm32(32, channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, kernel_size, padding=padding),
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(32, channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv3d(channels, channels, kernel_size, padding=padding),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out_layers(self.in_layers(x))


def _to_video(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    bt, c, h, w = x.shape
    if timesteps is None or timesteps < 1 or bt % timesteps != 0:
        raise ValueError(f"batch {bt} is not a multiple of timesteps={timesteps}")
    return x.reshape(bt // timesteps, timesteps, c, h, w).permute(0, 2, 1, 3, 4)


def _from_video(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class VideoResBlock(ResnetBlock):
    """VAE-decoder temporal res block: 2-D ResnetBlock, then 3-D ``time_stack``, then blend.

    ``x = alpha * temporal + (1 - alpha) * spatial`` with alpha = sigmoid(mix_factor)
    ("learned") or alpha = mix_factor ("fixed", a buffer). NOTE: opposite convention to
    the UNet AlphaBlender. (B*T, C_in, H, W) -> (B*T, C_out, H, W).
    """

    def __init__(
        self,
        out_channels: int,
        *args,
        dropout: float = 0.0,
        video_kernel_size=3,
        alpha: float = 0.0,
        merge_strategy: str = "learned",
        **kwargs,
    ):
        super().__init__(*args, out_channels=out_channels, dropout=dropout, **kwargs)
        if video_kernel_size is None:
            video_kernel_size = [3, 1, 1]
        self.time_stack = TemporalResBlock3D(out_channels, kernel_size=video_kernel_size, dropout=dropout)
        self.merge_strategy = merge_strategy
        if merge_strategy == "fixed":
            self.register_buffer("mix_factor", torch.tensor([float(alpha)]))
        elif merge_strategy == "learned":
            self.register_parameter("mix_factor", nn.Parameter(torch.tensor([float(alpha)])))
        else:
            raise ValueError(f"unknown merge_strategy {merge_strategy!r} (expected 'fixed' or 'learned')")

    def get_alpha(self) -> torch.Tensor:
        if self.merge_strategy == "fixed":
            return self.mix_factor
        return torch.sigmoid(self.mix_factor)

    def forward(
        self,
        x: torch.Tensor,
        temb: Optional[torch.Tensor] = None,
        skip_video: bool = False,
        timesteps: Optional[int] = None,
    ) -> torch.Tensor:
        x = super().forward(x, temb)
        if skip_video:
            return x
        x_spatial = _to_video(x, timesteps)
        x_temporal = self.time_stack(x_spatial)
        alpha = self.get_alpha()
        x = alpha * x_temporal + (1.0 - alpha) * x_spatial
        return _from_video(x)


class AE3DConv(nn.Conv2d):
    """Conv2d followed by ``time_mix_conv`` (Conv3d, video_kernel_size, 'same' padding).

    Weights of the 2-D conv sit directly under the module (``conv_out.weight``).
    (B*T, C_in, H, W) -> (B*T, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, video_kernel_size=3, *args, **kwargs):
        super().__init__(in_channels, out_channels, *args, **kwargs)
        video_kernel_size = _as_kernel(video_kernel_size)
        self.time_mix_conv = nn.Conv3d(
            out_channels, out_channels, kernel_size=video_kernel_size, padding=_video_padding(video_kernel_size)
        )

    def forward(self, input: torch.Tensor, timesteps: Optional[int] = None, skip_video: bool = False) -> torch.Tensor:
        x = super().forward(input)
        if skip_video:
            return x
        return _from_video(self.time_mix_conv(_to_video(x, timesteps)))
