"""SD / SVD first-stage autoencoder with the reference (sgm) state-dict names.

* ``Encoder``: pixels in [-1, 1], (N, in_channels, H, W) -> moments (N, 2*z_channels, H/f, W/f)
  with f = 2 ** (len(ch_mult) - 1) (8 for the full model).
* ``Decoder`` / ``VideoDecoder``: *unscaled* latents (N, z_channels, h, w) -> pixels, roughly in
  [-1, 1] and not clamped. The VideoDecoder needs ``timesteps`` = frames per clip, with
  batches flattened as (B*T) and the frame index fastest.
* ``AutoencodingEngine``: the sgm first stage (Encoder + VideoDecoder, no quant convs).
* ``AutoencoderKLModeOnly``: the legacy KL autoencoder of the cond-frame embedder
  (Encoder + plain Decoder + quant_conv / post_quant_conv; ``encode`` returns the mode).
* ``decode_latents``: the reference ``decode_first_stage``; takes *scaled* latents
  (x 0.18215, the diffusion-model scale), divides by the scale and decodes in rounds.

Sub-configs (``encoder_config``, ``decoder_config``) are accepted as already-built modules,
as ``{"target": "...Encoder|Decoder|VideoDecoder", "params": {...}}`` dicts (the reference
target strings, resolved by their last component to the classes of this module), or as
plain parameter dicts (the default class is used).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from keysync.nn.vae_blocks import (
    ATTN_TYPES,
    AE3DConv,
    Downsample,
    Normalize,
    ResnetBlock,
    Upsample,
    VideoResBlock,
    make_attn,
    nonlinearity,
)


def _check_attn_type(attn_type: str, use_linear_attn: bool = False) -> str:
    if use_linear_attn or attn_type == "linear":
        raise ValueError("linear attention (attn_type='linear') is not supported")
    if attn_type not in ATTN_TYPES:
        raise ValueError(f"unknown attn_type {attn_type!r}; expected one of {ATTN_TYPES}")
    return attn_type


class Encoder(nn.Module):
    """LDM encoder. (N, in_channels, H, W) -> (N, 2*z_channels if double_z else z_channels, H/f, W/f)."""

    def __init__(
        self,
        *, ch: int, out_ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int,
        attn_resolutions: Sequence[int] = (), dropout: float = 0.0, resamp_with_conv: bool = True,
        in_channels: int, resolution: int, z_channels: int, double_z: bool = True,
        use_linear_attn: bool = False, attn_type: str = "vanilla", **ignore_kwargs,
    ):
        super().__init__()
        attn_type = _check_attn_type(attn_type, use_linear_attn)
        self.ch, self.temb_ch, self.num_resolutions = ch, 0, len(ch_mult)
        self.num_res_blocks, self.resolution, self.in_channels = num_res_blocks, resolution, in_channels

        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        block_in = ch
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i_level]
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(in_channels=block_in, out_channels=block_out, temb_channels=0, dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(make_attn(block_in, attn_type))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in, resamp_with_conv)
                curr_res //= 2
            self.down.append(down)

        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)
        self.mid.attn_1 = make_attn(block_in, attn_type)
        self.mid.block_2 = ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i_level, down in enumerate(self.down):
            for i_block, block in enumerate(down.block):
                h = block(h, None)
                if len(down.attn) > 0:
                    h = down.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h, None)), None)
        return self.conv_out(nonlinearity(self.norm_out(h)))


class Decoder(nn.Module):
    """LDM decoder. (N, z_channels, h, w) unscaled latents -> (N, out_ch, h*f, w*f).

    ``up`` is stored so that ``up.{i}`` with i = 0 is the highest resolution; each level has
    ``num_res_blocks + 1`` blocks. Subclasses override ``_make_resblock`` / ``_make_conv``.
    """

    def __init__(
        self,
        *, ch: int, out_ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int,
        attn_resolutions: Sequence[int] = (), dropout: float = 0.0, resamp_with_conv: bool = True,
        in_channels: int, resolution: int, z_channels: int, give_pre_end: bool = False,
        tanh_out: bool = False, use_linear_attn: bool = False, attn_type: str = "vanilla", **ignore_kwargs,
    ):
        super().__init__()
        attn_type = _check_attn_type(attn_type, use_linear_attn)
        self.ch, self.temb_ch, self.num_resolutions = ch, 0, len(ch_mult)
        self.num_res_blocks, self.resolution, self.in_channels = num_res_blocks, resolution, in_channels
        self.give_pre_end, self.tanh_out = give_pre_end, tanh_out

        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.z_shape = (1, z_channels, curr_res, curr_res)
        make_res = self._make_resblock()

        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = make_res(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)
        self.mid.attn_1 = make_attn(block_in, attn_type)
        self.mid.block_2 = make_res(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)

        ups = []
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(make_res(in_channels=block_in, out_channels=block_out, temb_channels=0, dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(make_attn(block_in, attn_type))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample(block_in, resamp_with_conv)
                curr_res *= 2
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)
        self.norm_out = Normalize(block_in)
        self.conv_out = self._make_conv(block_in, out_ch)

    def _make_resblock(self):
        return ResnetBlock

    def _make_conv(self, in_ch: int, out_ch: int) -> nn.Module:
        return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1)

    def _block_kwargs(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        return {}

    def forward(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        bkw = self._block_kwargs(kwargs)
        h = self.conv_in(z)
        h = self.mid.block_1(h, None, **bkw)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h, None, **bkw)
        for i_level in reversed(range(self.num_resolutions)):
            up = self.up[i_level]
            for i_block, block in enumerate(up.block):
                h = block(h, None, **bkw)
                if len(up.attn) > 0:
                    h = up.attn[i_block](h)
            if i_level != 0:
                h = up.upsample(h)
        if self.give_pre_end:
            return h
        h = self.conv_out(nonlinearity(self.norm_out(h)), **bkw)
        return torch.tanh(h) if self.tanh_out else h


class VideoDecoder(Decoder):
    """SVD temporal decoder (time_mode "conv-only"): every res block is a VideoResBlock,
    ``conv_out`` is an AE3DConv, the mid attention stays plain 2-D.

    ``forward(z, timesteps)``: z (B*T, z_channels, h, w) unscaled -> (B*T, out_ch, h*f, w*f).
    """

    available_time_modes = ("conv-only",)

    def __init__(
        self, *args, video_kernel_size: Union[int, Sequence[int]] = 3, alpha: float = 0.0,
        merge_strategy: str = "learned", time_mode: str = "conv-only", **kwargs,
    ):
        if time_mode not in self.available_time_modes:
            raise ValueError(f"time_mode {time_mode!r} not supported; expected one of {self.available_time_modes}")
        self.video_kernel_size, self.alpha = video_kernel_size, alpha
        self.merge_strategy, self.time_mode = merge_strategy, time_mode
        super().__init__(*args, **kwargs)

    def _make_resblock(self):
        vks, alpha, ms = self.video_kernel_size, self.alpha, self.merge_strategy

        def make(**kw):
            return VideoResBlock(video_kernel_size=vks, alpha=alpha, merge_strategy=ms, **kw)

        return make

    def _make_conv(self, in_ch: int, out_ch: int) -> nn.Module:
        return AE3DConv(in_ch, out_ch, video_kernel_size=self.video_kernel_size, kernel_size=3, stride=1, padding=1)

    def _block_kwargs(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        if kwargs.get("timesteps") is None:
            raise ValueError("VideoDecoder.forward needs timesteps= (frames per clip)")
        return {"timesteps": int(kwargs["timesteps"]), "skip_video": bool(kwargs.get("skip_video", False))}

    def forward(self, z: torch.Tensor, timesteps: Optional[int] = None, skip_video: bool = False) -> torch.Tensor:
        return super().forward(z, timesteps=timesteps, skip_video=skip_video)

    def get_last_layer(self, skip_time_mix: bool = False) -> torch.Tensor:
        return self.conv_out.time_mix_conv.weight if skip_time_mix else self.conv_out.weight


class DiagonalGaussianDistribution:
    """Gaussian from moments (N, 2C, h, w): mean, logvar = chunk(2, dim=1), logvar clamped to [-30, 20]."""

    def __init__(self, parameters: torch.Tensor, deterministic: bool = False):
        self.parameters = parameters
        self.mean, logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.deterministic = deterministic
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)
        if deterministic:
            self.std = self.var = torch.zeros_like(self.mean)

    def sample(self, generator: Optional[torch.Generator] = None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """mean + std * eps. eps is ``noise`` if given, else drawn from ``generator`` (on its
        device), else from the global CPU RNG in float32 like the reference."""
        if noise is None:
            dev = generator.device if generator is not None else torch.device("cpu")
            noise = torch.randn(self.mean.shape, generator=generator, device=dev, dtype=torch.float32)
        return self.mean + self.std * noise.to(device=self.mean.device, dtype=self.mean.dtype)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other: Optional["DiagonalGaussianDistribution"] = None) -> torch.Tensor:
        """Per-sample KL, shape (N,) (summed over C, h, w)."""
        if self.deterministic:
            return torch.zeros(self.mean.shape[0], device=self.mean.device)
        if other is None:
            return 0.5 * torch.sum(self.mean.pow(2) + self.var - 1.0 - self.logvar, dim=[1, 2, 3])
        return 0.5 * torch.sum(
            (self.mean - other.mean).pow(2) / other.var + self.var / other.var - 1.0 - self.logvar + other.logvar,
            dim=[1, 2, 3],
        )


def _last_name(target: str) -> str:
    return str(target).rsplit(".", 1)[-1]


def _build(cfg: Union[nn.Module, Dict[str, Any]], default_cls, allowed: Dict[str, Any]) -> nn.Module:
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    if "target" in cfg:
        name = _last_name(cfg["target"])
        if name not in allowed:
            raise ValueError(f"unsupported target {cfg['target']!r}; expected one of {sorted(allowed)}")
        return allowed[name](**dict(cfg.get("params", {}) or {}))
    return default_cls(**cfg)


_ENCODERS = {"Encoder": Encoder}
_DECODERS = {"Decoder": Decoder, "VideoDecoder": VideoDecoder}


def _regularizer_sample(regularizer_config: Optional[Dict[str, Any]], default: bool) -> bool:
    if regularizer_config is None:
        return default
    target = regularizer_config.get("target", "DiagonalGaussianRegularizer")
    if _last_name(target) != "DiagonalGaussianRegularizer":
        raise ValueError(f"unsupported regularizer {target!r}; only DiagonalGaussianRegularizer is implemented")
    return bool((regularizer_config.get("params") or {}).get("sample", True))


class AutoencodingEngine(nn.Module):
    """sgm first stage: ``encoder`` + ``decoder`` with a DiagonalGaussianRegularizer, no quant convs.

    Latents here are *unscaled* (the diffusion model works with latents x 0.18215).
    ``loss_config`` and training-only options (``**kwargs``) are accepted and ignored.
    """

    def __init__(
        self, encoder_config: Union[nn.Module, Dict[str, Any]], decoder_config: Union[nn.Module, Dict[str, Any]],
        loss_config: Optional[Dict[str, Any]] = None, regularizer_config: Optional[Dict[str, Any]] = None,
        input_key: str = "jpg", **kwargs,
    ):
        super().__init__()
        if kwargs.get("ckpt_path") is not None:
            raise ValueError("ckpt_path is not supported here; load weights with load_state_dict")
        self.encoder = _build(encoder_config, Encoder, _ENCODERS)
        self.decoder = _build(decoder_config, VideoDecoder, _DECODERS)
        self.sample_posterior = _regularizer_sample(regularizer_config, default=True)
        self.input_key = input_key
        self.ignored_kwargs = dict(kwargs)

    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def encode(
        self, x: torch.Tensor, mode: Optional[str] = None, generator: Optional[torch.Generator] = None,
        return_reg_log: bool = False, unregularized: bool = False,
    ):
        """(N, 3, H, W) pixels in [-1, 1] -> unscaled latents (N, z_channels, H/f, W/f).

        mode: "sample" (mean + std*eps, the reference default), "mean" / "mode"; None uses the
        regulariser's ``sample`` flag. ``return_reg_log`` adds {"kl_loss": sum(kl) / N}.
        """
        moments = self._moments(x)
        if unregularized:
            return (moments, {}) if return_reg_log else moments
        posterior = DiagonalGaussianDistribution(moments)
        if mode is None:
            mode = "sample" if self.sample_posterior else "mode"
        if mode == "sample":
            z = posterior.sample(generator=generator)
        elif mode in ("mean", "mode"):
            z = posterior.mode()
        else:
            raise ValueError(f"unknown encode mode {mode!r}; expected 'sample', 'mean' or 'mode'")
        if return_reg_log:
            kl = posterior.kl()
            return z, {"kl_loss": torch.sum(kl) / kl.shape[0]}
        return z

    def decode(self, z: torch.Tensor, **decoder_kwargs) -> torch.Tensor:
        """Unscaled latents (B*T, C, h, w) -> pixels (B*T, 3, H, W); VideoDecoder needs timesteps=T."""
        return self.decoder(z, **decoder_kwargs)

    def forward(self, x: torch.Tensor, **decoder_kwargs) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]:
        z, reg_log = self.encode(x, return_reg_log=True)
        return z, self.decode(z, **decoder_kwargs), reg_log


class AutoencoderKLModeOnly(AutoencodingEngine):
    """Legacy KL autoencoder of the cond-frame embedder: Encoder -> quant_conv -> mode.

    ``encode``: (N, 3, H, W) -> unscaled mode latents (N, embed_dim, H/f, W/f).
    ``decode``: post_quant_conv -> plain Decoder.
    """

    def __init__(
        self, embed_dim: int, ddconfig: Dict[str, Any], lossconfig: Optional[Dict[str, Any]] = None,
        max_batch_size: Optional[int] = None, monitor: Optional[str] = None, ckpt_path: Optional[str] = None,
        **kwargs,
    ):
        super().__init__(
            encoder_config=Encoder(**ddconfig),
            decoder_config=Decoder(**ddconfig),
            loss_config=lossconfig,
            regularizer_config={"target": "DiagonalGaussianRegularizer", "params": {"sample": False}},
            ckpt_path=ckpt_path,
            **kwargs,
        )
        zc = ddconfig["z_channels"]
        mult = 1 + int(bool(ddconfig.get("double_z", True)))
        self.quant_conv = nn.Conv2d(mult * zc, mult * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, zc, 1)
        self.embed_dim = embed_dim
        self.max_batch_size = max_batch_size
        self.monitor = monitor

    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_batch_size is None:
            return self.quant_conv(self.encoder(x))
        chunks = x.split(self.max_batch_size, dim=0)
        return torch.cat([self.quant_conv(self.encoder(c)) for c in chunks], dim=0)

    def decode(self, z: torch.Tensor, **decoder_kwargs) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z), **decoder_kwargs)


def decode_latents(
    vae: AutoencodingEngine, latents_scaled: torch.Tensor, frames_per_call: Optional[int] = 1,
    scale_factor: float = 0.18215,
) -> torch.Tensor:
    """Reference ``decode_first_stage``: *scaled* latents (N, 4, h, w) -> pixels (N, 3, H, W).

    Divides by ``scale_factor`` and decodes in rounds of ``frames_per_call`` frames (None or
    <= 0: all at once), passing ``timesteps`` = frames in the round to a VideoDecoder. Autocast
    is disabled; latents are cast to the VAE's dtype. Output is not clamped. Gradients flow.
    """
    z = latents_scaled / scale_factor
    n = z.shape[0]
    per = n if not frames_per_call or frames_per_call <= 0 else int(frames_per_call)
    param = next(vae.parameters(), None)
    if param is not None:
        z = z.to(dtype=param.dtype)
    temporal = isinstance(vae.decoder, VideoDecoder)
    dev_type = z.device.type if z.device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    outs = []
    with torch.autocast(device_type=dev_type, enabled=False):
        for i in range(math.ceil(n / per)):
            chunk = z[i * per : (i + 1) * per]
            kwargs = {"timesteps": chunk.shape[0]} if temporal else {}
            outs.append(vae.decode(chunk, **kwargs))
    return torch.cat(outs, dim=0)
