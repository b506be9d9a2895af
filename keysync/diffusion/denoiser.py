"""Denoisers: wrap a network F into D(x; σ) = F(c_in·x, c_noise, cond)·c_out + c_skip·x.

Layout: a batch of B clips of T frames is flattened as (B·T, C, h, w), frame index
fastest ("(b t)"). A 5-D input (B, C, T, h, w) is flattened that way and a per-clip σ
(B,) is repeated per frame. The output is always flattened, (B·T, C, h, w).

The network is called as ``network(x_in, c_noise, cond, **network_kwargs)`` with
x_in (N, C, h, w), c_noise (N,), and e.g. ``num_video_frames=14,
image_only_indicator=(n_clips, T)`` among the kwargs.

* `Denoiser`: plain (KeyFace).
* `DenoiserDub`: KeySync in-painting. With cond["gt"] (B, 4, T, h, w) and
  cond["masks"] (B, 1, T, h, w) (M = 1: generate), the input is blended
  x ← x·M + gt·(1−M) before the network (if `mask_input`) and the output
  D ← D·M + gt·(1−M) after it, so D equals gt outside the mask.
* `TemporalMultiDiffusionDenoiser` / `KarrasTemporalMultiDiffusion`: the KeyFace
  interpolation variants with optional overlap averaging and autoguidance.

`chunk_size` (frames, a multiple of the clip length) evaluates the network on
consecutive chunks of frames; it gives the same result as one call.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
from einops import rearrange, repeat

from .scaling import VScalingWithEDMcNoise
from .util import build


def _slice_like(v: Any, n_frames: int, n_clips: int, fs: slice, cs: slice) -> Any:
    """Slice a cond entry by frame (leading dim = n_frames) or clip (= n_clips)."""
    if isinstance(v, torch.Tensor) and v.ndim > 0:
        if v.shape[0] == n_frames:
            return v[fs]
        if v.shape[0] == n_clips:
            return v[cs]
        return v
    if isinstance(v, (list, tuple)):
        return type(v)(_slice_like(e, n_frames, n_clips, fs, cs) for e in v)
    return v


def chunk_network(network, x_in: torch.Tensor, c_noise: torch.Tensor, cond: Dict, network_kwargs: Dict,
                  chunk_size: int, num_frames: int) -> torch.Tensor:
    """Evaluate `network` on consecutive chunks of `chunk_size` frames and concatenate.

    x_in (N, C, h, w) is already multiplied by c_in, c_noise is (N,). Tensors in `cond`
    and `network_kwargs` with leading dim N are sliced by frame, those with leading dim
    N // num_frames (per clip: concat, crossattn, gt, masks, image_only_indicator, ...)
    by clip index (frame // num_frames); anything else is passed unchanged.
    """
    n = x_in.shape[0]
    if chunk_size <= 0 or chunk_size % num_frames != 0:
        raise ValueError(f"chunk_size ({chunk_size}) must be a positive multiple of num_frames ({num_frames})")
    if n % num_frames != 0:
        raise ValueError(f"batch of {n} frames is not a whole number of {num_frames}-frame clips")
    n_clips = n // num_frames
    outs = []
    for start in range(0, n, chunk_size):
        end = min(start + chunk_size, n)
        fs, cs = slice(start, end), slice(start // num_frames, end // num_frames)
        cond_chunk = {k: _slice_like(v, n, n_clips, fs, cs) for k, v in cond.items()}
        kw_chunk = {k: _slice_like(v, n, n_clips, fs, cs) for k, v in network_kwargs.items()}
        outs.append(network(x_in[fs], c_noise[fs], cond_chunk, **kw_chunk))
    return torch.cat(outs, dim=0)


def average_segment_overlaps(x: torch.Tensor, num_frames: int, num_overlap_frames: int,
                             n_groups: int = 1) -> torch.Tensor:
    """Average the overlapping frames of adjacent segments (multi-diffusion).

    x: (N, C, h, w) = n_groups stacked groups (e.g. guidance passes) of S consecutive
    segments of `num_frames` frames. Within a group, the last `num_overlap_frames` of
    segment s and the first ones of segment s+1 are replaced by their mean. Returns a
    new tensor.
    """
    k = num_overlap_frames
    n = x.shape[0]
    if k <= 0 or n % (num_frames * n_groups) != 0:
        return x
    v = x.reshape(n_groups, n // (num_frames * n_groups), num_frames, *x.shape[1:]).clone()
    for s in range(v.shape[1] - 1):
        avg = torch.stack([v[:, s, -k:], v[:, s + 1, :k]]).mean(0)
        v[:, s, -k:] = avg
        v[:, s + 1, :k] = avg
    return v.reshape(x.shape)


def split_batch_halves(x: torch.Tensor, sigma: torch.Tensor, cond: Dict, kwargs: Dict):
    """Split x, σ, every batched cond / kwarg tensor into first and second halves."""
    def half(v, i):
        if isinstance(v, torch.Tensor) and v.ndim > 0:
            if v.shape[0] % 2:
                raise ValueError(f"cannot halve a batch of {v.shape[0]}")
            h = v.shape[0] // 2
            return v[:h] if i == 0 else v[h:]
        if isinstance(v, (list, tuple)):
            return type(v)(half(e, i) for e in v)
        return v

    return [(half(x, i), half(sigma, i), {k: half(v, i) for k, v in cond.items()},
             {k: half(v, i) for k, v in kwargs.items()}) for i in (0, 1)]


class Denoiser(nn.Module):
    """Plain denoiser (KeyFace): D = F(x·c_in, c_noise, cond)·c_out + x·c_skip."""

    def __init__(self, scaling: Any = None, scaling_config: Any = None):
        super().__init__()
        spec = scaling if scaling is not None else scaling_config
        self.scaling = build(spec) if spec is not None else VScalingWithEDMcNoise()

    # hooks ---------------------------------------------------------------------------------
    def _prepare_input(self, x: torch.Tensor, cond: Dict, num_frames: int, num_overlap_frames: int,
                       n_skips: int) -> torch.Tensor:
        return x

    def _finish_output(self, out: torch.Tensor, cond: Dict) -> torch.Tensor:
        return out

    # main ----------------------------------------------------------------------------------
    @staticmethod
    def flatten_inputs(x: torch.Tensor, sigma: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Optional[int]]:
        """(B, C, T, h, w) → (B·T, C, h, w) with σ repeated per frame; σ becomes (N,)."""
        t = None
        if x.ndim == 5:
            t = x.shape[2]
            x = rearrange(x, "b c t h w -> (b t) c h w")
        sigma = torch.as_tensor(sigma, device=x.device)
        if not sigma.is_floating_point():
            sigma = sigma.to(x.dtype)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        sigma = sigma.reshape(sigma.shape[0])
        if sigma.shape[0] != x.shape[0]:
            if t is None or sigma.shape[0] * t != x.shape[0]:
                raise ValueError(f"sigma of shape {tuple(sigma.shape)} does not match input {tuple(x.shape)}")
            sigma = repeat(sigma, "b -> (b t)", t=t)
        return x, sigma, t

    def forward(self, network, x: torch.Tensor, sigma: torch.Tensor, cond: Dict,
                num_overlap_frames: int = 1, num_frames: Optional[int] = None, n_skips: int = 1,
                chunk_size: Optional[int] = None, **network_kwargs) -> torch.Tensor:
        """x: (N, C, h, w) or (B, C, T, h, w); σ: (N,), (B,) or scalar → D (N, C, h, w).

        `num_frames` (frames per clip, for chunking) defaults to T of a 5-D input, else
        to `num_video_frames` from the kwargs, else 14. `num_overlap_frames` and
        `n_skips` only matter for the multi-diffusion subclass.
        """
        x, sigma, t = self.flatten_inputs(x, sigma)
        if num_frames is None:
            num_frames = t or network_kwargs.get("num_video_frames") or 14
        c_skip, c_out, c_in, c_noise = self.scaling(sigma)
        x = self._prepare_input(x, cond, num_frames, num_overlap_frames, n_skips)
        if chunk_size is not None:
            out = chunk_network(network, x * c_in, c_noise, cond, network_kwargs, chunk_size, num_frames)
        else:
            out = network(x * c_in, c_noise, cond, **network_kwargs)
        out = out * c_out + x * c_skip
        return self._finish_output(out, cond)


def get_gt_and_masks(cond: Dict, n: int) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """cond["gt"], cond["masks"] flattened to (n, C, h, w), or None when both are absent."""
    gt, masks = cond.get("gt"), cond.get("masks")
    if gt is None and masks is None:
        return None
    if gt is None or masks is None:
        raise ValueError("in-painting needs both cond['gt'] and cond['masks']")
    if gt.ndim == 5:
        gt = rearrange(gt, "b c t h w -> (b t) c h w")
    if masks.ndim == 5:
        masks = rearrange(masks, "b c t h w -> (b t) c h w")
    if gt.shape[0] != n or masks.shape[0] != n:
        raise ValueError(f"gt {tuple(gt.shape)} / masks {tuple(masks.shape)} do not match a batch of {n} frames")
    return gt, masks


class DenoiserDub(Denoiser):
    """KeySync in-painting denoiser: clean gt outside the mask at input and output.

    Input blend x·M + gt·(1−M) only when `mask_input`; the output blend is applied
    whenever gt and masks are in cond (as the reference does). Without them it acts
    like `Denoiser`.
    """

    def __init__(self, scaling: Any = None, mask_input: bool = True, scaling_config: Any = None):
        super().__init__(scaling, scaling_config)
        self.mask_input = mask_input

    def _prepare_input(self, x, cond, num_frames, num_overlap_frames, n_skips):
        gm = get_gt_and_masks(cond, x.shape[0])
        if gm is not None and self.mask_input:
            gt, masks = gm
            x = x * masks + gt * (1.0 - masks)
        return x

    def _finish_output(self, out, cond):
        gm = get_gt_and_masks(cond, out.shape[0])
        if gm is not None:
            gt, masks = gm
            out = out * masks + gt * (1.0 - masks)
        return out


class TemporalMultiDiffusionDenoiser(DenoiserDub):
    """Denoiser for several consecutive segments with overlapping boundary frames (KeyFace).

    With `average_overlap=True` the last `num_overlap_frames` of each segment and the first
    ones of the next are averaged before the network call, separately within each of the
    `n_skips` stacked groups (guidance passes). The reference's loop
    (`range(n_clips - n_skips·n_clips)`) never runs, so the default `average_overlap=False`
    reproduces the reference: segments are only merged after decoding.
    `is_dub` turns on the gt/mask blending of `DenoiserDub` (off for KeyFace).
    """

    def __init__(self, scaling: Any = None, is_dub: bool = False, average_overlap: bool = False,
                 scaling_config: Any = None):
        super().__init__(scaling, mask_input=True, scaling_config=scaling_config)
        self.is_dub = is_dub
        self.average_overlap = average_overlap

    def _prepare_input(self, x, cond, num_frames, num_overlap_frames, n_skips):
        if self.is_dub:
            x = super()._prepare_input(x, cond, num_frames, num_overlap_frames, n_skips)
        if self.average_overlap:
            x = average_segment_overlaps(x, num_frames, num_overlap_frames, max(1, n_skips))
        return x

    def _finish_output(self, out, cond):
        return super()._finish_output(out, cond) if self.is_dub else out


DenoiserTemporalMultiDiffusion = TemporalMultiDiffusionDenoiser


class KarrasTemporalMultiDiffusion(TemporalMultiDiffusionDenoiser):
    """Autoguidance denoiser: the batch's first half goes through `bad_network`, the second
    through the given (good) network; outputs are concatenated [bad, good].

    Pair it with `KarrasGuider`, which stacks the same conditions twice. `n_skips` counts
    the stacked passes of the whole batch (2), so each half uses n_skips // 2.
    """

    def __init__(self, scaling: Any = None, bad_network=None, is_dub: bool = False,
                 average_overlap: bool = False, scaling_config: Any = None):
        super().__init__(scaling, is_dub, average_overlap, scaling_config)
        self.bad_network = bad_network

    def set_bad_network(self, bad_network) -> None:
        self.bad_network = bad_network

    def forward(self, network, x, sigma, cond, num_overlap_frames: int = 1, num_frames: Optional[int] = None,
                n_skips: int = 2, chunk_size: Optional[int] = None, **network_kwargs):
        if self.bad_network is None:
            raise RuntimeError("KarrasTemporalMultiDiffusion needs set_bad_network() before use")
        x, sigma, t = self.flatten_inputs(x, sigma)
        num_frames = num_frames or t or network_kwargs.get("num_video_frames") or 14
        halves = split_batch_halves(x, sigma, cond, network_kwargs)
        outs = [super(KarrasTemporalMultiDiffusion, self).forward(
                    net, xh, sh, ch, num_overlap_frames=num_overlap_frames, num_frames=num_frames,
                    n_skips=max(1, n_skips // 2), chunk_size=chunk_size, **kh)
                for net, (xh, sh, ch, kh) in zip((self.bad_network, network), halves)]
        return torch.cat(outs, dim=0)


__all__ = ["Denoiser", "DenoiserDub", "DenoiserTemporalMultiDiffusion", "KarrasTemporalMultiDiffusion",
           "TemporalMultiDiffusionDenoiser", "average_segment_overlaps", "chunk_network",
           "get_gt_and_masks", "split_batch_halves"]
