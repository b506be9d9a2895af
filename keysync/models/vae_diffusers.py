"""Convert a diffusers ``AutoencoderKLTemporalDecoder`` (the SVD VAE) to ``AutoencodingEngine`` keys.

The diffusers model adds a ``quant_conv`` (1x1, 2z -> 2z) that the sgm AutoencodingEngine lacks;
conversion is refused unless it is the identity. Latent scale is untouched (unscaled latents on
both sides; the 0.18215 factor lives outside the VAE). This module never imports diffusers:
it works on state dicts, configs and already-built diffusers modules.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping

import torch

from keysync.models.vae import AutoencodingEngine, Encoder, VideoDecoder

_ATTN = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
    # legacy diffusers attention names
    "query": "q",
    "key": "k",
    "value": "v",
    "proj_attn": "proj_out",
}
_TEMPORAL = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3"}


def _resnet(rest: str) -> str:
    """ResnetBlock2D suffix -> LDM ResnetBlock suffix."""
    return rest.replace("conv_shortcut.", "nin_shortcut.", 1) if rest.startswith("conv_shortcut.") else rest


def _video_resnet(rest: str) -> str:
    """SpatioTemporalResBlock suffix -> VideoResBlock suffix."""
    if rest.startswith("spatial_res_block."):
        return _resnet(rest[len("spatial_res_block.") :])
    if rest.startswith("temporal_res_block."):
        layer, param = rest[len("temporal_res_block.") :].rsplit(".", 1)
        if layer not in _TEMPORAL:
            raise KeyError(rest)
        return f"time_stack.{_TEMPORAL[layer]}.{param}"
    if rest == "time_mixer.mix_factor":
        return "mix_factor"
    raise KeyError(rest)


def _attn(rest: str, value: torch.Tensor):
    layer, param = rest.rsplit(".", 1)
    if layer not in _ATTN:
        raise KeyError(rest)
    name = _ATTN[layer]
    if param == "weight" and name != "norm" and value.ndim == 2:
        value = value[:, :, None, None]  # Linear (C, C) -> 1x1 conv (C, C, 1, 1)
    return f"{name}.{param}", value


def check_identity_quant_conv(state_dict: Mapping[str, torch.Tensor], atol: float = 1e-6) -> None:
    """Raise ValueError unless ``quant_conv`` (if present) is the identity 1x1 conv with zero bias."""
    w, b = state_dict.get("quant_conv.weight"), state_dict.get("quant_conv.bias")
    if w is None and b is None:
        return
    w = w.detach().float().cpu()
    eye = torch.eye(w.shape[0], w.shape[1])
    ok = w.ndim == 4 and w.shape[2:] == (1, 1) and torch.allclose(w[:, :, 0, 0], eye, atol=atol, rtol=0)
    if b is not None:
        ok = ok and bool(torch.allclose(b.detach().float().cpu(), torch.zeros_like(b, dtype=torch.float32), atol=atol, rtol=0))
    if not ok:
        raise ValueError(
            "diffusers VAE quant_conv is not the identity: the sgm AutoencodingEngine has no quant_conv, "
            "so these weights cannot be converted without changing the encoder output"
        )


def convert_diffusers_vae_state_dict(
    state_dict: Mapping[str, torch.Tensor], atol: float = 1e-6
) -> Dict[str, torch.Tensor]:
    """diffusers AutoencoderKLTemporalDecoder state dict -> AutoencodingEngine state dict.

    Raises ValueError if ``quant_conv`` is not the identity, or on an unexpected key.
    """
    check_identity_quant_conv(state_dict, atol=atol)
    ups = [int(m.group(1)) for k in state_dict if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", k))]
    n_levels = max(ups) + 1 if ups else 0
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("quant_conv.") or key.startswith("post_quant_conv."):
            if key.startswith("post_quant_conv."):
                raise ValueError("unexpected post_quant_conv: not an AutoencoderKLTemporalDecoder state dict")
            continue
        try:
            new_key, new_value = _convert_key(key, value, n_levels)
        except KeyError as err:
            raise ValueError(f"unexpected key in diffusers VAE state dict: {key!r}") from err
        if new_key in out:
            raise ValueError(f"two diffusers keys map to {new_key!r}")
        out[new_key] = new_value
    return out


def _convert_key(key: str, value: torch.Tensor, n_levels: int):
    part, rest = key.split(".", 1)
    if part not in ("encoder", "decoder"):
        raise KeyError(key)
    simple = {"conv_in.": "conv_in.", "conv_norm_out.": "norm_out.", "conv_out.": "conv_out."}
    if part == "decoder" and rest.startswith("time_conv_out."):
        return f"decoder.conv_out.time_mix_conv.{rest[len('time_conv_out.'):]}", value
    for old, new in simple.items():
        if rest.startswith(old):
            return f"{part}.{new}{rest[len(old):]}", value
    m = re.match(r"mid_block\.attentions\.0\.(.+)$", rest)
    if m:
        k, v = _attn(m.group(1), value)
        return f"{part}.mid.attn_1.{k}", v
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.+)$", rest)
    if m:
        idx = int(m.group(1))
        if idx > 1:
            raise KeyError(key)
        conv = _resnet if part == "encoder" else _video_resnet
        return f"{part}.mid.block_{idx + 1}.{conv(m.group(2))}", value
    if part == "encoder":
        m = re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", rest)
        if m:
            return f"encoder.down.{m.group(1)}.block.{m.group(2)}.{_resnet(m.group(3))}", value
        m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.(.+)$", rest)
        if m:
            return f"encoder.down.{m.group(1)}.downsample.{m.group(2)}", value
    else:
        m = re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", rest)
        if m:
            level = n_levels - 1 - int(m.group(1))
            return f"decoder.up.{level}.block.{m.group(2)}.{_video_resnet(m.group(3))}", value
        m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)$", rest)
        if m:
            level = n_levels - 1 - int(m.group(1))
            return f"decoder.up.{level}.upsample.{m.group(2)}", value
    raise KeyError(key)


def ddconfig_from_diffusers_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Encoder/VideoDecoder params equivalent to a diffusers AutoencoderKLTemporalDecoder config."""
    chans = list(config["block_out_channels"])
    ch = chans[0]
    if any(c % ch for c in chans):
        raise ValueError(f"block_out_channels {chans} are not multiples of {ch}")
    if len(set(config.get("down_block_types", ["DownEncoderBlock2D"]))) != 1:
        raise ValueError("only DownEncoderBlock2D encoders are supported")
    if int(config["layers_per_block"]) != 2:
        # diffusers' MidBlockTemporalDecoder has layers_per_block resnets; sgm always has 2
        raise ValueError("only layers_per_block=2 (the SVD VAE) matches the sgm mid block layout")
    return dict(
        ch=ch,
        ch_mult=[c // ch for c in chans],
        num_res_blocks=int(config["layers_per_block"]),
        z_channels=int(config["latent_channels"]),
        double_z=True,
        resolution=int(config.get("sample_size", 256)),
        in_channels=int(config.get("in_channels", 3)),
        out_ch=int(config.get("out_channels", 3)),
        attn_resolutions=[],
        dropout=0.0,
        attn_type="vanilla",
    )


def autoencoding_engine_from_diffusers(vae) -> AutoencodingEngine:
    """Build an AutoencodingEngine (Encoder + VideoDecoder, kernel (3,1,1)) from a diffusers
    ``AutoencoderKLTemporalDecoder`` instance and load its converted weights (strict)."""
    dd = ddconfig_from_diffusers_config(dict(vae.config))
    engine = AutoencodingEngine(
        encoder_config=Encoder(**dd), decoder_config=VideoDecoder(**dd, video_kernel_size=[3, 1, 1])
    )
    engine.load_state_dict(convert_diffusers_vae_state_dict(vae.state_dict()), strict=True)
    p = next(vae.parameters())
    return engine.to(device=p.device, dtype=p.dtype)
