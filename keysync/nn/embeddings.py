"""Sinusoidal embeddings (timesteps, frame positions, scalar conditions)."""

from __future__ import annotations

import math

import torch


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of scalar values, ``[cos, sin]`` order (reference convention).

    Args:
        timesteps: (N,) float values (c_noise, frame indices, valence/arousal, ...).
        dim: embedding width; an odd width is zero-padded by one column.
        max_period: controls the lowest frequency.

    Returns:
        (N, dim) float32 embedding.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding
