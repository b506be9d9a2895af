"""Network input assembly: how conditions are concatenated to the noisy latent (SPEC §2.2).

Every wrapper holds the VideoUNet as ``diffusion_model`` (state-dict prefix
``model.diffusion_model.`` inside the engine) and is called as
``wrapper(x, t, c, num_video_frames=T, image_only_indicator=...)`` with x (B·T, 4, h, w)
already multiplied by c_in, t the per-frame c_noise (B·T,), and c the conditioner output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from einops import rearrange, repeat
from torch import nn


def _repeat_over_frames(cond: torch.Tensor, n_frames_total: int) -> torch.Tensor:
    """(B, C, h, w) per clip → (B·T, C, h, w); a per-frame tensor is returned unchanged."""
    if cond.shape[0] == n_frames_total:
        return cond
    if n_frames_total % cond.shape[0]:
        raise ValueError(f"concat condition batch {cond.shape[0]} does not divide {n_frames_total} frames")
    return repeat(cond, "b c h w -> (b t) c h w", t=n_frames_total // cond.shape[0])


class OpenAIWrapper(nn.Module):
    """``[x, concat]`` on channels (KeyFace keyframe model: concat = identity latent / 0.18215)."""

    def __init__(self, diffusion_model: nn.Module, compile_model: bool = False, mask_input: bool = False) -> None:
        super().__init__()
        self.mask_input = mask_input
        self.diffusion_model = torch.compile(diffusion_model) if compile_model else diffusion_model

    def _unet(self, x: torch.Tensor, t: torch.Tensor, c: Mapping[str, torch.Tensor], **kwargs) -> torch.Tensor:
        return self.diffusion_model(
            x, timesteps=t, context=c.get("crossattn"), y=c.get("vector"), audio_emb=c.get("audio_emb"), **kwargs
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: Mapping[str, torch.Tensor], **kwargs) -> torch.Tensor:
        if "concat" in c:
            x = torch.cat([x, _repeat_over_frames(c["concat"], x.shape[0]).type_as(x)], dim=1)
        return self._unet(x, t, c, **kwargs)


class DubbingWrapper(OpenAIWrapper):
    """KeySync keyframe model: ``[x (4), reference latent / 0.18215 (4)]`` → 8 channels.

    ``mask_input`` (every wrapper takes it) records that the denoiser in-paints x with the
    masked ground truth before the call; the wrapper itself does not touch x.
    """

    def __init__(self, diffusion_model: nn.Module, compile_model: bool = False, mask_input: bool = True) -> None:
        super().__init__(diffusion_model, compile_model, mask_input)


class InterpolationWrapper(OpenAIWrapper):
    """Interpolation model: ``[x (4), cond sequence (4), keyframe indicator (1)]`` → 9 channels.

    ``c["concat"]`` (B, 8, h, w) holds the start (channels 0–3) and end (4–7) keyframe
    latents / 0.18215. The cond sequence is ``[start, learned_mask × (T−2), end]`` along
    time; the indicator is 1 on the two keyframes and 0 in between (``add_mask``).
    ``learned_mask`` (n_channels, h, w) is a parameter shared by all middle frames.
    """

    starting_methods = ("zeros", "ones", "random")

    def __init__(
        self,
        diffusion_model: nn.Module,
        compile_model: bool = False,
        mask_input: bool = True,
        im_size: Sequence[int] = (512, 512),
        n_channels: int = 4,
        starting_mask_method: str = "zeros",
        add_mask: bool = True,
        fix_image_leak: bool = False,
    ) -> None:
        super().__init__(diffusion_model, compile_model, mask_input)
        if starting_mask_method not in self.starting_methods:
            raise ValueError(f"starting_mask_method={starting_mask_method!r}; expected one of {self.starting_methods}")
        if fix_image_leak:
            raise ValueError("fix_image_leak=True is not supported (no published model uses it)")
        shape = (n_channels, im_size[0] // 8, im_size[1] // 8)
        init = {"zeros": torch.zeros, "ones": torch.ones, "random": torch.randn}[starting_mask_method]
        self.learned_mask = nn.Parameter(init(shape))
        self.add_mask = add_mask

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: Mapping[str, torch.Tensor], **kwargs) -> torch.Tensor:
        cond = rearrange(c["concat"], "b (t c) h w -> b c t h w", t=2)
        n_clips = cond.shape[0]
        if x.shape[0] % n_clips:
            raise ValueError(f"{x.shape[0]} frames cannot be split into {n_clips} keyframe pairs")
        n_frames = x.shape[0] // n_clips
        start, end = cond[:, :, 0], cond[:, :, 1]
        middle = repeat(self.learned_mask, "c h w -> b c h w", b=n_clips).to(cond)
        if self.add_mask:
            ones = torch.ones_like(middle[:, :1])
            start = torch.cat([start, ones], dim=1)
            end = torch.cat([end, ones], dim=1)
            middle = torch.cat([middle, torch.zeros_like(ones)], dim=1)
        seq = torch.stack([start] + [middle] * (n_frames - 2) + [end], dim=2)
        x = torch.cat([x, rearrange(seq, "b c t h w -> (b t) c h w").type_as(x)], dim=1)
        return self._unet(x, t, c, **kwargs)
