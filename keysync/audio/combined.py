"""Audio features of several encoders joined on the feature axis (KeyFace, SPEC §9).

KeyFace conditions its keyframe model on WavLM ⊕ BEATs and its interpolation model on
wav2vec2 ⊕ BEATs: each encoder's ``(F, 2, D_i)`` features (already aligned to 2 tokens per
25 fps frame) are truncated to the shortest length and concatenated to ``(F, 2, ΣD_i)``
(768 + 768 = 1536 for the published encoders). The embedder then averages the 2 tokens and
applies one Linear (1536 → 1024).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .alignment import SAMPLE_RATE

__all__ = ["concat_features", "ConcatEncoder"]


def concat_features(*features: torch.Tensor) -> torch.Tensor:
    """``(F_i, 2, D_i)`` tensors → ``(min F_i, 2, ΣD_i)`` float32, in argument order."""
    if not features:
        raise ValueError("no features to concatenate")
    for f in features:
        if f.ndim != 3 or f.shape[1] != 2:
            raise ValueError(f"audio features must be (F, 2, D), got {tuple(f.shape)}")
    n = min(f.shape[0] for f in features)
    if n == 0:
        raise ValueError("one of the feature streams is empty")
    return torch.cat([f[:n].float() for f in features], dim=-1)


class ConcatEncoder:
    """Several encoders ``(audio, sr, n_frames) -> (F, 2, D_i)`` used as one: their features
    concatenated by :func:`concat_features` (e.g. ``ConcatEncoder(wavlm, beats)`` for KeyFace
    keyframes). ``names`` label the parts (logging, ``feature_dims``)."""

    def __init__(self, *encoders, names: Sequence[str] | None = None):
        if not encoders:
            raise ValueError("ConcatEncoder needs at least one encoder")
        self.encoders = list(encoders)
        self.names = list(names) if names is not None else [getattr(e, "kind", type(e).__name__) for e in encoders]

    def __call__(self, audio, sr: int = SAMPLE_RATE, n_frames: int | None = None) -> torch.Tensor:
        """``audio`` (N,) at ``sr`` → ``(F, 2, ΣD_i)``; ``F = n_frames`` when given."""
        return concat_features(*(enc(audio, sr, n_frames) for enc in self.encoders))
