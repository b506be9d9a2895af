"""Microsoft WavLM checkpoint format -> transformers WavLMModel, vs. the reference vectors.

The reference loaded ``torch.save({"cfg": cfg, "model": state_dict})`` written to
``pretrained_models/checkpoints/WavLM-Base+.pt`` through the original constructors; this
test writes the same kind of file from the stored tiny weights (original key names) and
cfg (safetensors metadata ``cfg_json``) and loads it with our key mapping.

Largest errors recorded when written (atol 1e-4; one CPU thread):
  offline_f1 1.1e-6 · offline_f7 8.3e-7 · offline_f14 9.5e-7 · offline_n5000 9.5e-7 ·
  offline_long_f1025 2.6e-6 · offline_f7_pre_resize_tokens 8.3e-7 · rawpipe_f7 8.3e-7 ·
  rawpipe_long_f1025 2.4e-6
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import transformers  # noqa: E402

from keysync.audio.encoders import WavLMEncoder, load_audio_encoder  # noqa: E402
from keysync.audio.loading import prepare_waveform  # noqa: E402
from keysync.audio.models import load_wavlm  # noqa: E402
from keysync.audio.wavlm_checkpoint import (  # noqa: E402
    convert_original_wavlm_state_dict,
    load_original_wavlm,
    parse_conv_feature_layers,
    wavlm_config_from_original,
)

REF = Path(__file__).parent / "data" / "reference"
WEIGHTS = REF / "audio_wavlm_tiny_weights.safetensors"
ATOL = 1e-4


def maxabs(a, b):
    return (a.float() - b.float()).abs().max().item()


pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def original():
    with safe_open(str(WEIGHTS), "pt") as f:
        cfg = json.loads(f.metadata()["cfg_json"])
    return {"cfg": cfg, "model": load_file(str(WEIGHTS))}


@pytest.fixture(scope="module")
def checkpoint(original, tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoints") / "WavLM-Base+.pt"
    torch.save(original, path)
    return path


@pytest.fixture(scope="module")
def inputs():
    return load_file(str(REF / "audio_inputs.safetensors"))


@pytest.fixture(scope="module")
def io():
    return load_file(str(REF / "audio_wavlm_tiny_io.safetensors"))


def test_every_original_key_maps_one_to_one(original):
    config = wavlm_config_from_original(original["cfg"])
    model = transformers.WavLMModel(config)
    mapped = convert_original_wavlm_state_dict(original["model"], model.state_dict())
    assert len(original["model"]) == len(model.state_dict()) == len(mapped) == 58
    assert config.normalize_waveform is False and config._attn_implementation == "eager"
    assert config.conv_kernel == (10, 3, 3, 3, 3, 2, 2) and config.max_bucket_distance == 800


def test_checkpoint_reproduces_reference(checkpoint, inputs, io):
    model = load_wavlm(checkpoint)  # torch.load(weights_only=True) inside
    assert not model.training
    enc = WavLMEncoder(model, mode="reference_offline")
    for k in ("f1", "f7", "f14", "n5000", "long_f1025"):
        out = enc(inputs[f"wave_{k}"], keep_even_padding=True)
        assert out.shape == io[f"offline_{k}"].shape and maxabs(out, io[f"offline_{k}"]) < ATOL, k
    tokens = enc.model_tokens(prepare_waveform(inputs["wave_f7"], n_video_frames=8))
    assert maxabs(tokens, io["offline_f7_pre_resize_tokens"]) < ATOL
    raw = WavLMEncoder(model, mode="reference_rawpipe", show_progress=False)
    for k in ("f7", "long_f1025"):  # long: chunks [263, 763] frames, each resized alone
        out = raw(inputs[f"wave_{k}"], keep_even_padding=True)
        assert out.shape == io[f"rawpipe_{k}"].shape and maxabs(out, io[f"rawpipe_{k}"]) < ATOL, k


def test_default_mode_returns_video_frames(checkpoint, inputs, io):
    enc = load_audio_encoder("wavlm", checkpoint)
    out = enc(inputs["wave_f7"])  # F = 7 (the reference file has F' = 8)
    assert out.shape == (7, 2, 32) and maxabs(out, io["offline_f7"][:7]) < ATOL
    assert torch.equal(out[0, 0], out[0, 1])


def test_large_style_config_and_layer_norm_extractor(original, tmp_path):
    """``extractor_mode="layer_norm"`` / ``layer_norm_first`` / ``normalize`` (WavLM Large
    flags): conversion builds, every key lands, and ``normalize`` turns the waveform layer
    norm on in the encoder."""
    cfg = dict(original["cfg"], extractor_mode="layer_norm", layer_norm_first=True,
               normalize=True, conv_bias=True)
    config = wavlm_config_from_original(cfg)
    assert config.feat_extract_norm == "layer" and config.do_stable_layer_norm
    model = transformers.WavLMModel(config)
    # write an original-format state dict by inverting the names
    state = {}
    for k, v in model.state_dict().items():
        k = (k.replace("feature_projection.layer_norm", "layer_norm")
             .replace("feature_projection.projection", "post_extract_proj")
             .replace("masked_spec_embed", "mask_emb")
             .replace("pos_conv_embed.conv.parametrizations.weight.original0", "pos_conv.0.weight_g")
             .replace("pos_conv_embed.conv.parametrizations.weight.original1", "pos_conv.0.weight_v")
             .replace("pos_conv_embed.conv.bias", "pos_conv.0.bias")
             .replace(".attention.gru_rel_pos_const", ".self_attn.grep_a")
             .replace(".attention.gru_rel_pos_linear", ".self_attn.grep_linear")
             .replace(".attention.rel_attn_embed", ".self_attn.relative_attention_bias")
             .replace(".attention.", ".self_attn.")
             .replace("feed_forward.intermediate_dense", "fc1")
             .replace("feed_forward.output_dense", "fc2"))
        k = k.replace(".conv.weight", ".0.weight").replace(".conv.bias", ".0.bias")
        k = k.replace(".layer_norm.", ".2.1.") \
            if k.startswith("feature_extractor") else k
        if k.startswith("encoder.layers.") and k.split(".")[3] == "layer_norm":
            k = k.replace(".layer_norm.", ".self_attn_layer_norm.")
        state[k] = v.clone()
    path = tmp_path / "WavLM-Large-tiny.pt"
    torch.save({"cfg": cfg, "model": state}, path)
    loaded = load_original_wavlm(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    enc = WavLMEncoder(loaded)
    assert enc.normalize_waveform
    x = torch.randn(4 * 640, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(enc(x), enc(3.0 * x + 0.5), atol=1e-4)  # waveform layer norm


def test_conv_layer_spec_parsing():
    assert parse_conv_feature_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2") == (
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2)
    with pytest.raises(ValueError):
        parse_conv_feature_layers("__import__('os').getcwd()")


def test_bad_checkpoints(original, tmp_path):
    with pytest.raises(FileNotFoundError, match="WavLM-Base"):
        load_wavlm(tmp_path / "WavLM-Base+.pt")
    bad = dict(original["model"], **{"encoder.extra.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="encoder.extra.weight"):
        load_original_wavlm({"cfg": original["cfg"], "model": bad})
    partial = {k: v for k, v in original["model"].items() if "fc1" not in k}
    with pytest.raises(KeyError, match="feed_forward"):
        load_original_wavlm({"cfg": original["cfg"], "model": partial})
    with pytest.raises(NotImplementedError):
        wavlm_config_from_original(dict(original["cfg"], gru_rel_pos=False))
