"""VideoUNet: the SVD-style spatio-temporal UNet of KeySync/KeyFace (reference state-dict names)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from keysync.nn.embeddings import timestep_embedding
from keysync.nn.resblocks import Downsample, Upsample, VideoResBlock, normalization, zero_module
from keysync.nn.transformers import SpatialVideoTransformer

#: audio_cond_method values this implementation supports (see SPEC §2.5).
SUPPORTED_AUDIO_COND = ("both_keyframes", "to_time_emb")


class TimestepEmbedSequential(nn.Sequential):
    """Sequential container that routes each layer the arguments it needs."""

    def forward(self, x, emb, context=None, time_context=None, num_video_frames=1, image_only_indicator=None):
        for layer in self:
            if isinstance(layer, VideoResBlock):
                x = layer(x, emb, num_video_frames, image_only_indicator)
            elif isinstance(layer, SpatialVideoTransformer):
                x = layer(x, context, time_context, num_video_frames, image_only_indicator)
            else:
                x = layer(x)
        return x


def _per_level(value: int | Sequence[int], n_levels: int) -> list[int]:
    return [value] * n_levels if isinstance(value, int) else list(value)


class VideoUNet(nn.Module):
    """Spatio-temporal UNet with audio conditioning.

    Constructor parameters are the reference ``network_config.params`` names. Audio enters
    through ``label_emb`` (added to the time embedding, per frame) and through the
    cross-attention context:

    * ``audio_cond_method="both_keyframes"``: ``context`` (B, T, D) is the per-frame audio;
      it is both the cross-attention context of every frame and, per frame, the input of
      ``label_emb``.
    * ``audio_cond_method="to_time_emb"``: ``audio_emb`` (B, T, D) feeds ``label_emb``;
      ``context`` is only the cross-attention context.

    In both cases ``label_emb`` takes ``[y, audio]`` (y: (B·T, adm_in_channels), KeyFace's
    emotion vector, may be absent) of width ``adm_in_channels + audio_dim``.
    """

    def __init__(
        self,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[int] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        num_classes: str | int | None = None,
        use_checkpoint: bool = False,
        num_heads: int = -1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        transformer_depth: int | Sequence[int] = 1,
        transformer_depth_middle: int | None = None,
        context_dim: int | None = None,
        time_downup: bool = False,
        time_context_dim: int | None = None,
        extra_ff_mix_layer: bool = False,
        use_spatial_context: bool = False,
        merge_strategy: str = "fixed",
        merge_factor: float = 0.5,
        spatial_transformer_attn_type: str = "softmax",
        video_kernel_size: int | Sequence[int] = 3,
        use_linear_in_transformer: bool = False,
        adm_in_channels: int | None = None,
        disable_temporal_crossattention: bool = False,
        max_ddpm_temb_period: int = 10000,
        fine_tuning_method: str | None = None,
        unfreeze_blocks: Sequence[str] | None = None,
        audio_cond_method: str | None = None,
        audio_dim: int = 0,
        additional_audio_frames: int = 0,
    ) -> None:
        super().__init__()
        self._check_unsupported(
            dims=dims, use_scale_shift_norm=use_scale_shift_norm, resblock_updown=resblock_updown,
            time_downup=time_downup, disable_temporal_crossattention=disable_temporal_crossattention,
            conv_resample=conv_resample, audio_cond_method=audio_cond_method,
            additional_audio_frames=additional_audio_frames, fine_tuning_method=fine_tuning_method,
            num_classes=num_classes, time_context_dim=time_context_dim,
        )
        if num_head_channels == -1 and num_heads == -1:
            raise ValueError("set num_heads or num_head_channels")
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_classes = num_classes
        self.use_checkpoint = use_checkpoint
        self.audio_cond_method = audio_cond_method
        self.audio_is_context = audio_cond_method == "both_keyframes"
        self.max_ddpm_temb_period = max_ddpm_temb_period

        depth = _per_level(transformer_depth, len(channel_mult))
        depth_middle = depth[-1] if transformer_depth_middle is None else transformer_depth_middle
        time_embed_dim = model_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )
        self.label_in_channels = (adm_in_channels or 0) + (audio_dim if audio_cond_method else 0)
        if num_classes is not None:
            self.label_emb = nn.Sequential(nn.Sequential(
                nn.Linear(self.label_in_channels, time_embed_dim), nn.SiLU(),
                nn.Linear(time_embed_dim, time_embed_dim),
            ))

        def resblock(ch_in: int, ch_out: int) -> VideoResBlock:
            return VideoResBlock(ch_in, time_embed_dim, dropout, video_kernel_size, merge_strategy,
                                 merge_factor, out_channels=ch_out)

        def attention(ch: int, n_depth: int) -> SpatialVideoTransformer:
            heads, head_dim = (ch // num_head_channels, num_head_channels) if num_head_channels != -1 \
                else (num_heads, ch // num_heads)
            return SpatialVideoTransformer(
                ch, heads, head_dim, depth=n_depth, dropout=dropout, context_dim=context_dim,
                use_linear=use_linear_in_transformer, use_spatial_context=use_spatial_context,
                merge_strategy=merge_strategy, merge_factor=merge_factor, ff_in=extra_ff_mix_layer,
                max_time_embed_period=max_ddpm_temb_period,
            )

        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        skip_channels = [model_channels]
        ch, ds = model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [resblock(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers.append(attention(ch, depth[level]))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                ds *= 2
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch, ch)))
                skip_channels.append(ch)

        self.middle_block = TimestepEmbedSequential(resblock(ch, ch), attention(ch, depth_middle), resblock(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [resblock(ch + skip_channels.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers.append(attention(ch, depth[level]))
                if level and i == num_res_blocks:
                    ds //= 2
                    layers.append(Upsample(ch, ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(nn.Conv2d(model_channels, out_channels, 3, padding=1))
        )

    @staticmethod
    def _check_unsupported(**kw) -> None:
        if kw["audio_cond_method"] not in (None, *SUPPORTED_AUDIO_COND):
            raise ValueError(
                f"audio_cond_method={kw['audio_cond_method']!r} is not supported; "
                f"supported: {SUPPORTED_AUDIO_COND} (the published KeySync/KeyFace models use 'both_keyframes')"
            )
        if kw["num_classes"] not in (None, "sequential"):
            raise ValueError(f"num_classes={kw['num_classes']!r} is not supported; use 'sequential' or None")
        fixed = {"dims": 2, "use_scale_shift_norm": False, "resblock_updown": False, "time_downup": False,
                 "disable_temporal_crossattention": False, "conv_resample": True, "additional_audio_frames": 0,
                 "time_context_dim": None}
        for name, expected in fixed.items():
            if kw[name] != expected:
                raise ValueError(f"{name}={kw[name]!r} is not supported (only {expected!r}, as in every KeySync/KeyFace config)")
        if kw["fine_tuning_method"] not in (None, "null"):
            raise ValueError(f"fine_tuning_method={kw['fine_tuning_method']!r} is not supported (the reference configs use null)")

    def _label_input(self, y, audio_emb, n_frames_total: int) -> torch.Tensor | None:
        parts = []
        if y is not None:
            parts.append(y)
        if audio_emb is not None:
            parts.append(rearrange(audio_emb, "b t d -> (b t) d") if audio_emb.ndim == 3 else audio_emb)
        if not parts:
            return None
        label = torch.cat(parts, dim=-1)
        if label.shape != (n_frames_total, self.label_in_channels):
            raise ValueError(
                f"label_emb input has shape {tuple(label.shape)}, expected ({n_frames_total}, {self.label_in_channels})"
            )
        return label

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        time_context: torch.Tensor | None = None,
        num_video_frames: int | torch.Tensor | None = None,
        image_only_indicator: torch.Tensor | None = None,
        audio_emb: torch.Tensor | None = None,
        skip_spatial_attention_at: Sequence[bool] | None = None,
        skip_temporal_attention_at: Sequence[bool] | None = None,
    ) -> torch.Tensor:
        """Predict the network output F for a batch of clips.

        Args:
            x: (B·T, in_channels, h, w), frames of a clip contiguous ("(b t)").
            timesteps: (B·T,) c_noise values.
            context: (B, T, D) per-frame audio tokens (or already (B·T, S, D)).
            y: (B·T, adm_in_channels) extra label input (KeyFace emotions) or None.
            num_video_frames: T (int, or a tensor whose first element is used).
            image_only_indicator: (B, T), 1 marks an image frame (temporal branches off).
            audio_emb: (B, T, audio_dim) for ``to_time_emb``; ignored for ``both_keyframes``.

        Returns:
            (B·T, out_channels, h, w).
        """
        if skip_spatial_attention_at is not None or skip_temporal_attention_at is not None:
            if any(skip_spatial_attention_at or ()) or any(skip_temporal_attention_at or ()):
                raise NotImplementedError("skipping attention layers is not supported")
        if num_video_frames is None:
            raise ValueError("num_video_frames is required")
        t_frames = int(num_video_frames[0] if torch.is_tensor(num_video_frames) and num_video_frames.ndim else num_video_frames)
        n_total = x.shape[0]
        if n_total % t_frames:
            raise ValueError(f"batch of {n_total} frames is not a multiple of num_video_frames={t_frames}")
        n_clips = n_total // t_frames
        if image_only_indicator is None:
            image_only_indicator = torch.zeros(n_clips, t_frames, device=x.device, dtype=x.dtype)
        elif image_only_indicator.shape != (n_clips, t_frames):
            raise ValueError(f"image_only_indicator has shape {tuple(image_only_indicator.shape)}, expected ({n_clips}, {t_frames})")

        if self.audio_is_context:
            audio_emb = context
        if context is not None and context.shape[0] == n_clips and context.shape[0] != n_total:
            context = repeat(context, "b ... -> (b t) ...", t=t_frames)

        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels, self.max_ddpm_temb_period).to(x.dtype))
        if self.num_classes is not None:
            label = self._label_input(y, audio_emb if self.audio_cond_method else None, n_total)
            if label is None:
                raise ValueError("this VideoUNet has a label embedding: pass y and/or audio")
            emb = emb + self.label_emb(label)

        kwargs = dict(context=context, time_context=time_context, num_video_frames=t_frames,
                      image_only_indicator=image_only_indicator)
        skips = []
        h = x
        for block in self.input_blocks:
            h = self._run(block, h, emb, kwargs)
            skips.append(h)
        h = self._run(self.middle_block, h, emb, kwargs)
        for block in self.output_blocks:
            h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb, kwargs)
        return self.out(h.type(x.dtype))

    def _run(self, block: TimestepEmbedSequential, h: torch.Tensor, emb: torch.Tensor, kwargs: dict) -> torch.Tensor:
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, emb, use_reentrant=False, **kwargs)
        return block(h, emb, **kwargs)
