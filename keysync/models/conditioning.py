"""Conditioning: the embedders of KeySync/KeyFace and the conditioner that runs them.

Output keys follow the reference: ``concat`` (reference latents, channel-concatenated to the
network input), ``crossattn`` (per-frame audio tokens), ``vector`` (KeyFace emotion
embeddings), ``gt`` / ``masks`` (in-painting inputs of the KeySync denoiser).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from einops import rearrange, repeat
from torch import nn

from keysync.nn.embeddings import timestep_embedding
from keysync.utils.config import instantiate_from_config

#: default output key by output ndim when an embedder has no ``cond_type``.
OUTPUT_DIM2KEYS = {2: "vector", 3: "crossattn", 4: "concat", 5: "concat"}
#: dimension along which outputs with the same key are concatenated.
KEY2CATDIM = {"vector": 1, "crossattn": 2, "concat": 1}


class IdentityEncoder(nn.Module):
    """Passes its input through unchanged (``gt`` latents, ``masks``)."""

    def __init__(self, cond_type: str | None = None) -> None:
        super().__init__()
        if cond_type is not None:
            self.cond_type = cond_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class WhisperAudioEmbedder(nn.Module):
    """Per-frame audio features → one token per frame.

    Input (B, T, 2, audio_dim): two feature tokens per video frame. ``merge_method``
    ``"mean"`` averages them, ``"concat"`` joins them (Linear input 2·audio_dim). Output
    (B, T, linear_dim).
    """

    merge_methods = ("mean", "concat")

    def __init__(self, merge_method: str = "mean", linear_dim: int = 1024, cond_type: str | None = None,
                 audio_dim: int = 768) -> None:
        super().__init__()
        if merge_method not in self.merge_methods:
            raise ValueError(f"merge_method={merge_method!r} is not supported; expected one of {self.merge_methods}")
        self.merge_method = merge_method
        if cond_type is not None:
            self.cond_type = cond_type
        self.linear = nn.Linear(audio_dim * (2 if merge_method == "concat" else 1), linear_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"audio embeddings must be (B, T, 2, D), got {tuple(x.shape)}")
        x = x.mean(dim=2) if self.merge_method == "mean" else rearrange(x, "b t k d -> b t (k d)")
        return self.linear(x)


class ConcatTimestepEmbedderND(nn.Module):
    """Scalar per-frame values (KeyFace valence / arousal) → sinusoidal embedding.

    Input (B, T) (``is_temporal``) or (B, D); output (B·T, outdim) resp. (B, D·outdim).
    """

    def __init__(self, outdim: int, is_temporal: bool = False, max_period: float = 10000.0) -> None:
        super().__init__()
        self.outdim = outdim
        self.is_temporal = is_temporal
        self.max_period = max_period

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 1:
            x = x[:, None]
        b, d = x.shape
        emb = timestep_embedding(rearrange(x, "b d -> (b d)"), self.outdim, self.max_period)
        if self.is_temporal:
            return emb
        return rearrange(emb, "(b d) e -> b (d e)", b=b, d=d)


class VideoPredictionEmbedderWithEncoder(nn.Module):
    """Reference frame(s) → ``concat`` condition.

    Latent input (4 channels, scaled by 0.18215): repeated ``n_copies`` times per sample,
    the ``n_cond_frames`` frames of a sample stacked on channels ("(b t) c h w → b (t c) h w"),
    then divided by 0.18215 (raw VAE space). Pixel input (3 channels) is encoded with the
    embedder's own ``AutoencoderKLModeOnly`` (mode, × ``scale_factor``) when ``load_encoder``.
    A 5-D input (B, C, T, H, W) is flattened to (B·T, C, H, W) first.
    """

    def __init__(
        self,
        n_cond_frames: int,
        n_copies: int,
        encoder_config: Mapping | None = None,
        sigma_sampler_config: Mapping | None = None,
        sigma_cond_config: Mapping | None = None,
        is_ae: bool = False,
        scale_factor: float = 1.0,
        disable_encoder_autocast: bool = False,
        en_and_decode_n_samples_a_time: int | None = None,
        load_encoder: bool = True,
        latent_scale_factor: float = 0.18215,
    ) -> None:
        super().__init__()
        if sigma_sampler_config is not None or sigma_cond_config is not None:
            raise ValueError("noise augmentation of the reference frame (sigma_sampler_config) is not supported")
        self.n_cond_frames = n_cond_frames
        self.n_copies = n_copies
        self.is_ae = is_ae
        self.scale_factor = scale_factor
        self.latent_scale_factor = latent_scale_factor
        self.disable_encoder_autocast = disable_encoder_autocast
        self.en_and_decode_n_samples_a_time = en_and_decode_n_samples_a_time
        self.encoder = instantiate_from_config(encoder_config) if (load_encoder and encoder_config) else None

    def forward(self, vid: torch.Tensor) -> torch.Tensor:
        if vid.ndim == 5:
            vid = rearrange(vid, "b c t h w -> (b t) c h w")
        if vid.shape[1] == 4:
            vid = repeat(vid, "b ... -> (b k) ...", k=self.n_copies)
            vid = rearrange(vid, "(b t) c h w -> b (t c) h w", t=self.n_cond_frames)
            return vid / self.latent_scale_factor
        if self.encoder is None:
            raise ValueError(
                f"cond_frames has {vid.shape[1]} channels: pixel input needs the embedder's encoder "
                "(load_encoder: true); pass 4-channel latents otherwise"
            )
        with torch.autocast(vid.device.type, enabled=not self.disable_encoder_autocast):
            step = self.en_and_decode_n_samples_a_time or vid.shape[0]
            latents = torch.cat([self.encoder.encode(vid[i:i + step]) for i in range(0, vid.shape[0], step)])
        latents = rearrange(latents * self.scale_factor, "(b t) c h w -> b (t c) h w", t=self.n_cond_frames)
        return repeat(latents, "b ... -> (b k) ...", k=self.n_copies)


class GeneralConditioner(nn.Module):
    """Runs every embedder on its ``batch[input_key]`` and gathers outputs by key.

    ``emb_models`` is a list, or a mapping name → entry whose order is the checkpoint order
    (``conditioner.embedders.N``). Each entry is a config mapping with ``target``/``_target_`` and
    ``params`` (or an ``embedder`` config), plus ``input_key``, ``is_trainable`` and
    ``ucg_rate``; an entry set to null is left out (so a config derived from another can drop
    an embedder, e.g. KeyFace's interpolation model drops the keyframe model's emotion
    embedders). Outputs sharing a key are concatenated (vector: dim 1, crossattn: dim 2,
    concat: dim 1). In training mode each embedder's output rows are zeroed with probability
    ``ucg_rate`` (classifier-free dropout, applied to the *output*, after any Linear).
    """

    def __init__(self, emb_models: Sequence[Mapping] | Mapping[str, Mapping]) -> None:
        super().__init__()
        if isinstance(emb_models, Mapping):  # name -> config, in checkpoint order
            emb_models = list(emb_models.values())
        emb_models = [cfg for cfg in emb_models if cfg is not None]
        embedders = []
        for i, cfg in enumerate(emb_models):
            cfg = dict(cfg)
            embedder = instantiate_from_config(cfg.get("embedder", cfg))
            if not isinstance(embedder, nn.Module):
                raise TypeError(f"embedder #{i} ({type(embedder).__name__}) is not an nn.Module")
            embedder.is_trainable = bool(cfg.get("is_trainable", False))
            embedder.ucg_rate = float(cfg.get("ucg_rate", 0.0))
            if "input_key" not in cfg:
                raise ValueError(f"embedder #{i} needs an input_key")
            embedder.input_key = cfg["input_key"]
            if not embedder.is_trainable:
                embedder.requires_grad_(False)
            embedders.append(embedder)
        self.embedders = nn.ModuleList(embedders)

    def forward(self, batch: Mapping[str, torch.Tensor], force_zero_embeddings: Iterable[str] | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        force_zero = set(force_zero_embeddings or ())
        out: dict[str, torch.Tensor] = {}
        for embedder in self.embedders:
            if embedder.input_key not in batch:
                raise KeyError(f"batch has no {embedder.input_key!r} for {type(embedder).__name__}")
            with torch.set_grad_enabled(embedder.is_trainable and torch.is_grad_enabled()):
                emb = embedder(batch[embedder.input_key])
            if self.training and embedder.ucg_rate > 0:
                keep = torch.bernoulli(torch.full((emb.shape[0],), 1.0 - embedder.ucg_rate), generator=generator)
                emb = keep.to(emb).view(-1, *([1] * (emb.ndim - 1))) * emb
            if embedder.input_key in force_zero:
                emb = torch.zeros_like(emb)
            key = getattr(embedder, "cond_type", None) or OUTPUT_DIM2KEYS[emb.ndim]
            out[key] = torch.cat([out[key], emb], dim=KEY2CATDIM[key]) if key in out else emb
        return out

    def get_unconditional_conditioning(
        self,
        batch_c: Mapping[str, torch.Tensor],
        batch_uc: Mapping[str, torch.Tensor] | None = None,
        force_uc_zero_embeddings: Iterable[str] | None = None,
        force_cond_zero_embeddings: Iterable[str] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(c, uc) without random dropout; ``uc`` has the listed embedders' outputs zeroed."""
        was_training = self.training
        self.eval()
        try:
            c = self(batch_c, force_cond_zero_embeddings)
            uc = self(batch_c if batch_uc is None else batch_uc, force_uc_zero_embeddings)
        finally:
            self.train(was_training)
        return c, uc
