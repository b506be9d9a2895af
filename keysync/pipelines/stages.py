"""Model stages of the two-stage sampling, on tensors (no files, no planning).

Latents are **scaled** (× 0.18215) throughout, shaped (frames, 4, h, w); masks (frames, 1, h, w)
with 1 = regenerate; audio features (frames, 2, D) as the embedders expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from einops import rearrange

FORCE_UC_ZERO = ("cond_frames", "audio_emb")


@torch.no_grad()
def sample_keyframes(engine, reference: torch.Tensor, gt: torch.Tensor | None, masks: torch.Tensor | None,
                     audio: torch.Tensor, noise: torch.Tensor, force_uc_zero: Sequence[str] = FORCE_UC_ZERO,
                     extra: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """One keyframe batch (SPEC §1.8): 14 slots sampled together.

    Args:
        reference: (4, h, w) identity latent (the first frame's), shared by every batch.
        gt, masks, audio: per slot, (T, 4, h, w), (T, 1, h, w), (T, 2, D). ``gt`` / ``masks``
            are None for KeyFace (no in-painting).
        noise: (T, 4, h, w) unit Gaussian noise.
        extra: further per-slot conditions, (T, ...) each, given to the conditioner as one clip
            (1, T, ...) under their key (KeyFace: ``valence`` and ``arousal``, (T,) in [-1, 1]).

    Returns:
        (T, 4, h, w) keyframe latents; outside the mask they equal ``gt``.
    """
    t = audio.shape[0]
    batch = {"cond_frames": reference[None], "audio_emb": audio[None]}
    if gt is not None:
        batch["gt"] = rearrange(gt, "t c h w -> 1 c t h w")
    if masks is not None:
        batch["masks"] = rearrange(masks, "t c h w -> 1 c t h w")
    batch.update({k: v[None] for k, v in (extra or {}).items()})
    c, uc = engine.conditioner.get_unconditional_conditioning(batch, force_uc_zero_embeddings=list(force_uc_zero))
    return engine.sample(c, uc, noise, num_video_frames=t)


@torch.no_grad()
def sample_interpolation(engine, keyframes: torch.Tensor, gt: torch.Tensor | None, masks: torch.Tensor | None,
                         audio: torch.Tensor, noise: torch.Tensor, chunk_size: int | None = 28,
                         paste_keyframes: bool = True, force_uc_zero: Sequence[str] = FORCE_UC_ZERO) -> torch.Tensor:
    """All interpolation segments of a chunk in one sampler call (SPEC §1.9).

    Args:
        keyframes: (S, 2, 4, h, w) start/end keyframe latents per segment.
        gt, masks, audio: (S, T, 4, h, w), (S, T, 1, h, w), (S, T, 2, D); gt / masks None for KeyFace.
        noise: (S·T, 4, h, w).
        chunk_size: frames per network call (the reference: 2 segments = 28).
        paste_keyframes: overwrite frames 0 and T−1 with the keyframe latents (KeySync does).

    Returns:
        (S, T, 4, h, w) latents.
    """
    s, t = audio.shape[:2]
    batch = {"cond_frames": rearrange(keyframes, "s k c h w -> s c k h w"), "audio_emb": audio}
    if gt is not None:
        batch["gt"] = rearrange(gt, "s t c h w -> s c t h w")
    if masks is not None:
        batch["masks"] = rearrange(masks, "s t c h w -> s c t h w")
    c, uc = engine.conditioner.get_unconditional_conditioning(batch, force_uc_zero_embeddings=list(force_uc_zero))
    kwargs = {"num_overlap_frames": 1, "num_frames": t}
    if chunk_size:
        kwargs["chunk_size"] = chunk_size
    out = rearrange(engine.sample(c, uc, noise, num_video_frames=t, **kwargs), "(s t) c h w -> s t c h w", s=s)
    if paste_keyframes:
        out[:, 0], out[:, -1] = keyframes[:, 0], keyframes[:, 1]
    return out


@torch.no_grad()
def decode_latents_to_uint8(engine, latents: torch.Tensor, frames_per_call: int = 1) -> torch.Tensor:
    """Scaled latents (N, 4, h, w) → uint8 frames (N, H, W, 3), ``(x+1)/2`` clamped as the reference."""
    engine.en_and_decode_n_samples_a_time = frames_per_call
    x = engine.decode_first_stage(latents.to(next(engine.first_stage_model.parameters())))
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
