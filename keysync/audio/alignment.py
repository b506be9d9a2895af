"""Audio-token <-> video-frame alignment (pure functions, no models).

Conventions (SPEC §1.4, §11.25; reference README §10 "Alignment facts"):

* 25 fps video, 16 kHz audio: video frame ``f`` covers samples ``[640 f, 640 f + 640)``.
* HuBERT / wav2vec2 / WavLM emit 50 Hz tokens: a 400-sample receptive field with a
  320-sample hop, so ``n`` samples give ``floor((n - 400) / 320) + 1`` tokens and
  ``640 F`` samples give ``2F - 1`` tokens. Features are stored as ``(F, 2, D)``.
* HuBERT / wav2vec2 ("zero-token" rule): one all-zero token is appended when the token
  count is odd, then tokens are paired: frame ``i`` holds tokens ``(2i, 2i + 1)`` and
  the second half of the last frame is exactly zero.
* WavLM / BEATs ("nearest" rule): ``F`` is first padded to an even ``F'`` with one zero
  frame, then the ``T`` tokens are nearest-resized to ``2F'``. For ``T = 2F' - 1`` the
  output token ``j`` is raw token ``max(j - 1, 0)``: token 0 is duplicated and every
  token sits one slot (20 ms) late.
"""

from __future__ import annotations

from typing import List, Tuple

import torch

__all__ = [
    "SAMPLE_RATE",
    "FPS",
    "SAMPLES_PER_FRAME",
    "TOKEN_WINDOW",
    "TOKEN_HOP",
    "num_tokens",
    "num_frames",
    "pair_tokens_zero_pad",
    "nearest_resize_tokens",
    "nearest_resize_index",
    "pad_frames_to_even",
    "calculate_splits",
    "aligned_chunk_plan",
]

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = 640  # ceil(16000 / 25)
TOKEN_WINDOW = 400  # receptive field of the 7-layer conv feature extractor
TOKEN_HOP = 320  # its total stride


def num_tokens(n_samples: int, window: int = TOKEN_WINDOW, hop: int = TOKEN_HOP) -> int:
    """Tokens the conv feature extractor emits for ``n_samples`` (0 if too short)."""
    if n_samples < window:
        return 0
    return (n_samples - window) // hop + 1


def num_frames(n_samples: int, samples_per_frame: int = SAMPLES_PER_FRAME) -> int:
    """Video frames covered by ``n_samples`` once zero padded to a frame multiple."""
    return -(-int(n_samples) // samples_per_frame)


def pair_tokens_zero_pad(tokens: torch.Tensor) -> torch.Tensor:
    """``(T, D)`` tokens -> ``(ceil(T/2), 2, D)``, appending one zero token if ``T`` is odd.

    The HuBERT / wav2vec2 rule of the reference (``torch.zeros_like(x[:, :1])`` appended,
    then ``"(f d) c -> f d c", d=2``).
    """
    if tokens.ndim != 2:
        raise ValueError(f"expected (T, D) tokens, got shape {tuple(tokens.shape)}")
    if tokens.shape[0] == 0:
        raise ValueError("no tokens to pair (audio shorter than one token window?)")
    if tokens.shape[0] % 2:
        tokens = torch.cat([tokens, torch.zeros_like(tokens[:1])], dim=0)
    return tokens.reshape(tokens.shape[0] // 2, 2, tokens.shape[1])


def nearest_resize_tokens(tokens: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``(T, D)`` tokens -> ``(n_frames, 2, D)`` by nearest resizing to ``2 n_frames``.

    Uses ``F.interpolate(mode="nearest")`` exactly as the WavLM / BEATs wrappers do
    (source index ``floor(j * T / (2 n_frames))`` in float32 arithmetic).
    """
    if tokens.ndim != 2:
        raise ValueError(f"expected (T, D) tokens, got shape {tuple(tokens.shape)}")
    if tokens.shape[0] == 0:
        raise ValueError("no tokens to resize (audio shorter than one token window?)")
    x = torch.nn.functional.interpolate(tokens.T[None], size=2 * n_frames, mode="nearest")
    return x[0].T.reshape(n_frames, 2, tokens.shape[1])


def nearest_resize_index(n_tokens: int, n_out: int) -> List[int]:
    """Source token of every output slot of :func:`nearest_resize_tokens`."""
    idx = torch.arange(n_tokens, dtype=torch.float32)[None, None]
    out = torch.nn.functional.interpolate(idx, size=n_out, mode="nearest")
    return [int(v) for v in out[0, 0].tolist()]


def pad_frames_to_even(frames: torch.Tensor) -> torch.Tensor:
    """``(F, S)`` raw audio frames -> ``(F', S)`` with one zero frame appended if F is odd."""
    if frames.shape[0] % 2:
        frames = torch.cat([frames, torch.zeros_like(frames[:1])], dim=0)
    return frames


def calculate_splits(total: int, min_last_size: int) -> List[int]:
    """Chunk sizes of the reference's ``calculate_splits(x, chunk, dim)``.

    ``total <= chunk`` -> one chunk; otherwise ``n = (total - chunk) // chunk + 1``
    chunks, the first ``n - 1`` of size ``(total - chunk) // n`` and the last taking the
    rest (always ``>= chunk``). Nothing is split below ``2 * chunk``. Examples from the
    reference: ``(656000, 320000) -> [168000, 488000]``, ``(1026, 500) -> [263, 763]``.
    """
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    if min_last_size <= 0:
        raise ValueError(f"chunk size must be positive, got {min_last_size}")
    if total <= min_last_size:
        return [total]
    n = (total - min_last_size) // min_last_size + 1
    size = (total - min_last_size) // n
    if n == 1 or size == 0:
        return [total]
    return [size] * (n - 1) + [total - size * (n - 1)]


def aligned_chunk_plan(
    n_frames: int,
    chunk_frames: int,
    lead_in: int = 0,
    lookahead: int = TOKEN_WINDOW - TOKEN_HOP,
    samples_per_frame: int = SAMPLES_PER_FRAME,
) -> List[Tuple[int, int, int, int]]:
    """Frame-aligned chunking that loses no token at chunk boundaries.

    Chunk sizes (in frames) follow :func:`calculate_splits`. Each chunk ``[a, b)`` of
    frames is encoded from the sample window ``[640 a - lead_in, 640 b + lookahead)``
    (clipped to ``[0, 640 n_frames)``) so that, with a 400/320 conv front end, it
    yields exactly the tokens the unchunked sequence has at those positions:

    * HuBERT / wav2vec2 (``lead_in=0``, ``lookahead=80``): global tokens ``2a .. 2b-1``
      (the last chunk has one token fewer; the global zero token is appended after).
    * WavLM (``lead_in=320``, ``lookahead=0``): global tokens ``2a-1 .. 2b-2`` for
      ``a >= 1``, i.e. exactly the tokens the nearest resize would place in frames
      ``[a, b)``; the first chunk duplicates its token 0 as the unchunked resize does.

    Returns ``(frame_start, frame_end, sample_start, sample_end)`` tuples.
    """
    plan = []
    total = n_frames * samples_per_frame
    start = 0
    for size in calculate_splits(n_frames, chunk_frames):
        end = start + size
        s0 = max(start * samples_per_frame - lead_in, 0)
        s1 = min(end * samples_per_frame + lookahead, total)
        plan.append((start, end, s0, s1))
        start = end
    return plan

