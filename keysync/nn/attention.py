"""Multi-head attention and gated feed-forward layers with the reference parameter names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class CrossAttention(nn.Module):
    """Softmax attention, self- or cross-, over token sequences.

    Keys: ``to_q``, ``to_k``, ``to_v`` (no bias) and ``to_out.0`` (with bias). Uses
    :func:`torch.nn.functional.scaled_dot_product_attention` with scale ``dim_head ** -0.5``.

    Args:
        query_dim: width C of the queries.
        context_dim: width of the keys/values source; ``None`` means self-attention.
        heads, dim_head: number of heads and width of each head.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        inner_dim = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, L, C); context: (N, S, context_dim) or None. Returns (N, L, C)."""
        context = x if context is None else context
        q, k, v = (
            rearrange(t, "n l (h d) -> n h l d", h=self.heads)
            for t in (self.to_q(x), self.to_k(context), self.to_v(context))
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "n h l d -> n l (h d)"))


class GEGLU(nn.Module):
    """``value * gelu(gate)`` where ``proj`` produces both halves (value first)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """Gated feed-forward ``net = [GEGLU(dim → mult·dim), Dropout, Linear(mult·dim → dim_out)]``."""

    def __init__(self, dim: int, dim_out: int | None = None, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        inner_dim = int(dim * mult)
        self.net = nn.Sequential(GEGLU(dim, inner_dim), nn.Dropout(dropout), nn.Linear(inner_dim, dim_out or dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
