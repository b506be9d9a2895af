"""ESPnet-style Conformer blocks of the auto_avsr encoder (relative-position self-attention).

Checkpoint-compatible re-implementations of the ESPnet modules used by auto_avsr's
``Encoder`` (``rel_pos_type: latest``, ``macaron_style``, ``use_cnn_module``,
``normalize_before``). Names follow the checkpoint (``encoder.encoders.<i>.``): ``self_attn``
(``linear_q/k/v/out``, ``linear_pos``, ``pos_bias_u/v``), ``feed_forward`` and
``feed_forward_macaron`` (``w_1``, ``w_2``), ``conv_module`` (``pointwise_cov1``,
``depthwise_conv``, ``norm``, ``pointwise_cov2``), ``norm_ff_macaron``, ``norm_mha``,
``norm_conv``, ``norm_ff``, ``norm_final``.

Facts that matter numerically (reference README §11, SPEC §11.29):

* every LayerNorm uses eps **1e-12**;
* the feed-forward modules use **ReLU** (Swish only in the conv module and the ResNet);
* the relative positional encoding returns ``x * sqrt(d)`` and a (1, 2T-1, d) table for
  relative positions T-1 ... -(T-1).

All tensors are (B, T, d) unless stated; there is no padding mask (LipScore scores one clip
at a time).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .avsr_frontend import Swish

__all__ = ["LayerNorm", "RelPositionalEncoding", "RelPositionMultiHeadedAttention", "PositionwiseFeedForward",
           "ConvolutionModule", "ConformerLayer"]

LAYER_NORM_EPS = 1e-12


class LayerNorm(nn.LayerNorm):
    """``torch.nn.LayerNorm`` with ESPnet's eps 1e-12."""

    def __init__(self, dim: int):
        super().__init__(dim, eps=LAYER_NORM_EPS)


class RelPositionalEncoding(nn.Module):
    """ESPnet "latest" relative positional encoding (no parameters).

    ``forward(x)`` with x (B, T, d) returns ``(x * sqrt(d), pos_emb)``, pos_emb (1, 2T-1, d):
    row j holds relative position T-1-j; even channels sin, odd cos, frequencies
    10000^(-2i/d), computed in float32 exactly as ESPnet does (a table for 5000 positions,
    sliced around its centre).
    """

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.pe: torch.Tensor | None = None
        self._extend(max_len)

    def _extend(self, length: int) -> None:
        if self.pe is not None and self.pe.size(1) >= 2 * length - 1:
            return
        position = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, self.d_model, 2, dtype=torch.float32)
                             * -(math.log(10000.0) / self.d_model))
        pos = torch.zeros(length, self.d_model)
        neg = torch.zeros(length, self.d_model)
        pos[:, 0::2] = torch.sin(position * div_term)
        pos[:, 1::2] = torch.cos(position * div_term)
        neg[:, 0::2] = torch.sin(-1 * position * div_term)
        neg[:, 1::2] = torch.cos(-1 * position * div_term)
        self.pe = torch.cat([torch.flip(pos, [0]).unsqueeze(0), neg[1:].unsqueeze(0)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = x.size(1)
        self._extend(t)
        pe = self.pe.to(device=x.device, dtype=x.dtype)
        centre = pe.size(1) // 2
        return x * self.xscale, pe[:, centre - t + 1: centre + t]


class RelPositionMultiHeadedAttention(nn.Module):
    """Multi-head self-attention with relative positions (Transformer-XL style biases).

    scores = ((q + u) k^T + rel_shift((q + v) p^T)) / sqrt(d_k), p = linear_pos(pos_emb).
    """

    def __init__(self, n_head: int, n_feat: int):
        super().__init__()
        assert n_feat % n_head == 0, "attention dim must be divisible by the number of heads"
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(self.h, self.d_k))

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, 2T-1) -> (B, H, T, T): align relative positions to key positions."""
        b, h, t, n = x.shape
        padded = torch.cat([x.new_zeros(b, h, t, 1), x], dim=-1).view(b, h, n + 1, t)
        return padded[:, :, 1:].reshape(b, h, t, n)[:, :, :, : n // 2 + 1]

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        bd = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)))
        attn = torch.softmax((ac + bd) / math.sqrt(self.d_k), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).contiguous().view(b, t, self.h * self.d_k)
        return self.linear_out(out)


class PositionwiseFeedForward(nn.Module):
    """Linear(d, units) -> ReLU -> Linear(units, d)."""

    def __init__(self, dim: int, units: int):
        super().__init__()
        self.w_1 = nn.Linear(dim, units)
        self.w_2 = nn.Linear(units, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(torch.relu(self.w_1(x)))


class ConvolutionModule(nn.Module):
    """Conformer conv module: pointwise (2d) -> GLU -> depthwise (k) -> BN -> Swish -> pointwise."""

    def __init__(self, channels: int, kernel_size: int = 31):
        super().__init__()
        assert (kernel_size - 1) % 2 == 0, "kernel size must be odd"
        self.pointwise_cov1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2,
                                        groups=channels)
        self.norm = nn.BatchNorm1d(channels)
        self.pointwise_cov2 = nn.Conv1d(channels, channels, 1)
        self.activation = Swish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.glu(self.pointwise_cov1(x.transpose(1, 2)), dim=1)
        x = self.activation(self.norm(self.depthwise_conv(x)))
        return self.pointwise_cov2(x).transpose(1, 2)


class ConformerLayer(nn.Module):
    """One macaron Conformer block (pre-norm):

    x += FFmac(LN x)/2; x += MHA(LN x); x += Conv(LN x); x += FF(LN x)/2; x = LN_final(x).
    """

    def __init__(self, dim: int, heads: int, units: int, kernel_size: int = 31):
        super().__init__()
        self.self_attn = RelPositionMultiHeadedAttention(heads, dim)
        self.feed_forward = PositionwiseFeedForward(dim, units)
        self.feed_forward_macaron = PositionwiseFeedForward(dim, units)
        self.conv_module = ConvolutionModule(dim, kernel_size)
        self.norm_ff = LayerNorm(dim)
        self.norm_mha = LayerNorm(dim)
        self.norm_ff_macaron = LayerNorm(dim)
        self.norm_conv = LayerNorm(dim)
        self.norm_final = LayerNorm(dim)
        self.ff_scale = 0.5

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        x = x + self.ff_scale * self.feed_forward_macaron(self.norm_ff_macaron(x))
        x = x + self.self_attn(self.norm_mha(x), pos_emb)
        x = x + self.conv_module(self.norm_conv(x))
        x = x + self.ff_scale * self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)
