"""VAE (first stage) against the tiny reference vectors and the full-size key listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keysync.models.vae import (
    AutoencoderKLModeOnly,
    AutoencodingEngine,
    Decoder,
    DiagonalGaussianDistribution,
    Encoder,
    VideoDecoder,
    decode_latents,
)

REF = Path(__file__).parent / "data" / "reference"
ATOL = 1e-4

FULL_DD = dict(
    attn_type="vanilla-xformers", double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3,
    ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0,
)


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def _strip(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def manifest():
    return json.loads((REF / "vae_embedders_manifest.json").read_text())


@pytest.fixture(scope="module")
def tiny_vae(manifest):
    vae = AutoencodingEngine(**manifest["vae_tiny"]["config"]["params"]).eval()
    sd = _strip(load_file(str(REF / "vae_tiny_weights.safetensors")), "first_stage_model.")
    vae.load_state_dict(sd, strict=True)
    return vae


@pytest.fixture(scope="module")
def io():
    return load_file(str(REF / "vae_tiny_io.safetensors"))


def test_tiny_param_counts(tiny_vae, manifest):
    counts = manifest["vae_tiny"]["num_params"]
    assert _n_params(tiny_vae.encoder) == counts["encoder"] == 256_232
    assert _n_params(tiny_vae.decoder) == counts["decoder"] == 514_599
    assert isinstance(tiny_vae.decoder, VideoDecoder)
    assert not hasattr(tiny_vae, "quant_conv") and not hasattr(tiny_vae, "post_quant_conv")


@torch.no_grad()
def test_tiny_vae_matches_reference(tiny_vae, io):
    errs = {}
    x = io["input_video"]
    moments = tiny_vae.encoder(x)
    errs["encoder_moments"] = _max_err(moments, io["encoder_moments"])
    post = DiagonalGaussianDistribution(moments)
    errs["posterior_mean"] = _max_err(post.mean, io["posterior_mean"])
    errs["posterior_logvar"] = _max_err(post.logvar, io["posterior_logvar"])
    errs["posterior_mode"] = _max_err(post.mode(), io["posterior_mode"])
    errs["encode_sampled(eps)"] = _max_err(post.sample(noise=io["sample_eps"]), io["encode_sampled"])
    # the reference drew eps with torch.randn on CPU under seed 1234
    z = tiny_vae.encode(x, generator=torch.Generator().manual_seed(1234))
    errs["encode_sampled(seed)"] = _max_err(z, io["encode_sampled"])
    _, log = tiny_vae.encode(x, mode="mean", return_reg_log=True)
    errs["kl_loss"] = _max_err(log["kl_loss"], io["kl_loss"])
    errs["decoded_from_mode"] = _max_err(tiny_vae.decode(io["posterior_mode"], timesteps=4), io["decoded_from_mode"])
    errs["decode2_output"] = _max_err(tiny_vae.decode(io["decode2_input"], timesteps=4), io["decode2_output"])
    print("max abs errors vs reference:", {k: f"{v:.2e}" for k, v in errs.items()})
    for k, v in errs.items():
        tol = ATOL * max(1.0, abs(io["kl_loss"].item())) if k == "kl_loss" else ATOL
        assert v <= tol, (k, v)


@torch.no_grad()
def test_encode_modes_and_generator(tiny_vae, io):
    x = io["input_video"][:2]
    a = tiny_vae.encode(x, mode="sample", generator=torch.Generator().manual_seed(7))
    b = tiny_vae.encode(x, mode="sample", generator=torch.Generator().manual_seed(7))
    c = tiny_vae.encode(x, mode="sample", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    mean = tiny_vae.encode(x, mode="mean")
    assert torch.equal(mean, tiny_vae.encode(x, mode="mode"))
    assert _max_err(mean, io["posterior_mean"][:2]) <= ATOL
    with pytest.raises(ValueError):
        tiny_vae.encode(x, mode="bogus")


@torch.no_grad()
def test_decode_latents_chunking(tiny_vae, io):
    z = io["posterior_mode"]
    scaled = z * 0.18215
    per_frame = decode_latents(tiny_vae, scaled, frames_per_call=1)
    manual = torch.cat([tiny_vae.decode(z[i : i + 1], timesteps=1) for i in range(4)])
    all_at_once = decode_latents(tiny_vae, scaled, frames_per_call=4)
    assert per_frame.shape == (4, 3, 32, 32)
    assert _max_err(per_frame, manual) <= 1e-5
    assert _max_err(all_at_once, io["decoded_from_mode"]) <= ATOL
    assert decode_latents(tiny_vae, scaled, frames_per_call=None).shape == (4, 3, 32, 32)
    # the temporal layers see a different context: the results must differ
    assert _max_err(per_frame, all_at_once) > 1e-3
    # uneven last round: 3 + 1 frames
    uneven = decode_latents(tiny_vae, scaled, frames_per_call=3)
    ref = torch.cat([tiny_vae.decode(z[:3], timesteps=3), tiny_vae.decode(z[3:], timesteps=1)])
    assert _max_err(uneven, ref) <= 1e-5


def test_decode_latents_gradients_flow(tiny_vae, io):
    z = (io["posterior_mode"][:1] * 0.18215).clone().requires_grad_(True)
    decode_latents(tiny_vae, z, frames_per_call=1).square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_video_decoder_needs_timesteps(tiny_vae, io):
    with pytest.raises(ValueError):
        tiny_vae.decode(io["posterior_mode"])
    with pytest.raises(ValueError):
        tiny_vae.decode(io["posterior_mode"], timesteps=3)  # 4 frames not a multiple of 3


@torch.no_grad()
def test_cond_frame_encoder_mode(manifest):
    cfg = manifest["video_prediction_embedder"]["encoder_config"]
    assert cfg["target"].endswith("AutoencoderKLModeOnly")
    ae = AutoencoderKLModeOnly(**cfg["params"]).eval()
    assert ae.encoder.mid.attn_1.__class__.__name__ == "AttnBlock"  # vanilla-xformers
    data = load_file(str(REF / "embedders_tiny.safetensors"))
    ae.load_state_dict(_strip(data, manifest["video_prediction_embedder"]["encoder_weight_prefix"]), strict=True)
    out = ae.encode(data["vpe_image_in_2"])
    err = _max_err(out, data["vpe_image_in_2_encoder_mode"])
    print(f"vpe_image_in_2_encoder_mode max abs error: {err:.2e}")
    assert err <= ATOL
    # ModeOnly ignores sampling: encode is deterministic, decode goes through post_quant_conv
    assert torch.equal(out, ae.encode(data["vpe_image_in_2"]))
    assert ae.decode(out).shape == (2, 3, 32, 32)


def test_attn_type_validation():
    dd = dict(FULL_DD, ch=32, ch_mult=[1], num_res_blocks=1, resolution=8)
    for ok in ("vanilla", "vanilla-xformers"):
        Encoder(**dict(dd, attn_type=ok))
    for bad in ("linear", "softmax", "xformers"):
        with pytest.raises(ValueError, match="attn_type"):
            Encoder(**dict(dd, attn_type=bad))
        with pytest.raises(ValueError, match="attn_type"):
            Decoder(**dict(dd, attn_type=bad))


def _shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_full_size_encoder_and_video_decoder():
    with torch.device("meta"):
        enc = Encoder(**FULL_DD)
        dec = VideoDecoder(**FULL_DD, video_kernel_size=[3, 1, 1])
    assert len(enc.state_dict()) == 106 and _n_params(enc) == 34_163_592
    assert len(dec.state_dict()) == 266 and _n_params(dec) == 63_579_183
    ref = json.loads((REF / "keyframe_full_keys.json").read_text())["state_dict"]
    assert _shapes(dec) == {k: list(v) for k, v in _strip(ref, "first_stage_model.decoder.").items()}


def test_full_size_engine_from_target_dicts():
    params = {
        "encoder_config": {"target": "sgm.modules.diffusionmodules.model.Encoder", "params": FULL_DD},
        "decoder_config": {
            "target": "sgm.modules.autoencoding.temporal_ae.VideoDecoder",
            "params": dict(FULL_DD, video_kernel_size=[3, 1, 1]),
        },
        "loss_config": {"target": "torch.nn.Identity"},
        "regularizer_config": {"target": "sgm.modules.autoencoding.regularizers.DiagonalGaussianRegularizer"},
    }
    with torch.device("meta"):
        vae = AutoencodingEngine(**params)
    assert len(vae.state_dict()) == 106 + 266
    with pytest.raises(ValueError):
        AutoencodingEngine(**dict(params, encoder_config={"target": "foo.Bar", "params": {}}))


def test_full_size_cond_frame_autoencoder():
    with torch.device("meta"):
        ae = AutoencoderKLModeOnly(embed_dim=4, ddconfig=FULL_DD, lossconfig={"target": "torch.nn.Identity"})
    assert _n_params(ae) == 83_653_863
    ref = json.loads((REF / "interpolation_full_keys.json").read_text())["state_dict"]
    assert _shapes(ae) == {k: list(v) for k, v in _strip(ref, "conditioner.embedders.0.encoder.").items()}


# ---------------------------------------------------------------- diffusers conversion


def _tiny_diffusers_vae():
    import diffusers
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLTemporalDecoder(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        block_out_channels=(32, 64), layers_per_block=2, latent_channels=4, sample_size=32,
    ).eval()
    # randomise everything (many diffusers layers start at zero / identity), keep quant_conv identity
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.startswith("quant_conv."):
                continue
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif name.endswith("mix_factor"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        vae.quant_conv.weight.copy_(torch.eye(8)[:, :, None, None])
        vae.quant_conv.bias.zero_()
    return vae


@torch.no_grad()
def test_diffusers_conversion_matches():
    from keysync.models.vae_diffusers import autoencoding_engine_from_diffusers

    dvae = _tiny_diffusers_vae()
    ours = autoencoding_engine_from_diffusers(dvae).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    d_post = dvae.encode(x).latent_dist
    moments = ours.encoder(x)
    err_enc = _max_err(moments, d_post.parameters)
    z = d_post.mean
    err_dec = _max_err(ours.decode(z, timesteps=4), dvae.decode(z, num_frames=4).sample)
    err_dec1 = _max_err(decode_latents(ours, z * 0.18215, frames_per_call=2), dvae.decode(z, num_frames=2).sample)
    print(f"diffusers conversion max abs errors: moments {err_enc:.2e}, decode {err_dec:.2e}, decode(t=2) {err_dec1:.2e}")
    assert max(err_enc, err_dec, err_dec1) <= ATOL


def test_diffusers_conversion_refuses_non_identity_quant_conv():
    from keysync.models.vae_diffusers import convert_diffusers_vae_state_dict

    dvae = _tiny_diffusers_vae()
    sd = dict(dvae.state_dict())
    sd["quant_conv.weight"] = sd["quant_conv.weight"] * 1.5
    with pytest.raises(ValueError, match="quant_conv"):
        convert_diffusers_vae_state_dict(sd)
    sd = dict(dvae.state_dict())
    sd["quant_conv.bias"] = sd["quant_conv.bias"] + 0.01
    with pytest.raises(ValueError, match="quant_conv"):
        convert_diffusers_vae_state_dict(sd)
