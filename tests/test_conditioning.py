"""Embedders and conditioner reproduce the reference (SPEC §3) and behave as documented."""

from __future__ import annotations

import pytest
import torch

from conftest import load_reference, load_reference_json, max_abs_err
from keysync.models.conditioning import (
    ConcatTimestepEmbedderND,
    GeneralConditioner,
    IdentityEncoder,
    VideoPredictionEmbedderWithEncoder,
    WhisperAudioEmbedder,
)
from keysync.models.engine import build_engine
from keysync.nn.embeddings import timestep_embedding


@pytest.fixture(scope="module")
def emb():
    return load_reference("embedders_tiny.safetensors")


def test_whisper_audio_embedder(emb):
    embedder = WhisperAudioEmbedder(merge_method="mean", linear_dim=64, cond_type="crossattn", audio_dim=32)
    embedder.load_state_dict({"linear.weight": emb["conditioner.embedders.2.linear.weight"],
                              "linear.bias": emb["conditioner.embedders.2.linear.bias"]})
    with torch.no_grad():
        assert max_abs_err(embedder(emb["whisper_in"]), emb["whisper_out"]) <= 1e-5
    concat = WhisperAudioEmbedder(merge_method="concat", linear_dim=8, audio_dim=32)
    assert concat(emb["whisper_in"]).shape == (1, 14, 8) and concat.linear.in_features == 64
    with pytest.raises(ValueError, match="merge_method"):
        WhisperAudioEmbedder(merge_method="attention")
    with pytest.raises(ValueError, match=r"\(B, T, 2, D\)"):
        embedder(torch.zeros(14, 2, 32))


@pytest.mark.parametrize("case", ["latent_c1_k1", "latent_c1_k14", "latent_c2_k1"])
def test_reference_frame_embedder_latent_path(emb, case):
    info = load_reference_json("vae_embedders_manifest.json")["video_prediction_embedder"]["cases"][case]
    embedder = VideoPredictionEmbedderWithEncoder(info["n_cond_frames"], info["n_copies"], is_ae=True, load_encoder=False)
    out = embedder(emb[info["input"]])
    assert max_abs_err(out, emb[info["output"]]) <= 1e-5


@pytest.mark.parametrize("case", ["image_c1_k1", "image_c1_k14", "image_c2_k1", "image_c2_k1_5d"])
def test_reference_frame_embedder_pixel_path(emb, case):
    manifest = load_reference_json("vae_embedders_manifest.json")["video_prediction_embedder"]
    info = manifest["cases"][case]
    enc_cfg = {"target": "keysync.models.vae.AutoencoderKLModeOnly",
               "params": {k: v for k, v in manifest["encoder_config"]["params"].items() if k != "lossconfig"}}
    embedder = VideoPredictionEmbedderWithEncoder(info["n_cond_frames"], info["n_copies"], encoder_config=enc_cfg,
                                                  is_ae=True, load_encoder=True, disable_encoder_autocast=True)
    prefix = "conditioner.embedders.0."
    embedder.load_state_dict({k.removeprefix(prefix): v for k, v in emb.items() if k.startswith(prefix)}, strict=True)
    with torch.no_grad():
        out = embedder(emb[info["input"]])
    assert max_abs_err(out, emb[info["output"]]) <= 1e-4


def test_pixel_input_without_encoder_is_a_clear_error():
    embedder = VideoPredictionEmbedderWithEncoder(1, 1, load_encoder=False)
    with pytest.raises(ValueError, match="3 channels"):
        embedder(torch.zeros(1, 3, 32, 32))


def test_emotion_embedder_is_timestep_sinusoid_per_frame():
    embedder = ConcatTimestepEmbedderND(outdim=256, is_temporal=True)
    valence = torch.tensor([[0.5, -0.25, 1.0]])
    out = embedder(valence)
    assert out.shape == (3, 256)
    assert torch.allclose(out, timestep_embedding(valence.flatten(), 256))
    # [cos, sin] order; the first frequency is 1, so column 0 is cos(value), column 128 sin(value)
    assert torch.allclose(out[:, 0], torch.cos(valence.flatten()))
    assert torch.allclose(out[:, 128], torch.sin(valence.flatten()))


def _tiny_conditioner(**override) -> GeneralConditioner:
    rates = {"cond_frames": 0.0, "audio_emb": 0.0, **override}
    overrides = [f"conditioner.emb_models.{k}.ucg_rate={v}" for k, v in rates.items()]
    return build_engine("tiny/keysync_keyframe", overrides=overrides + [
        "conditioner.emb_models.cond_frames.embedder.n_copies=1"]).conditioner


def test_conditioner_reproduces_sampler_conditioning():
    ref = load_reference("sampler_keyframe_tiny_audioref.safetensors")
    cond = _tiny_conditioner()
    emb = load_reference("embedders_tiny.safetensors")
    cond.load_state_dict({k.removeprefix("conditioner."): v for k, v in emb.items()
                          if k.startswith("conditioner.embedders.2.")}, strict=True)
    batch = {"cond_frames": ref["input_cond_frames"], "gt": ref["input_gt"], "audio_emb": ref["input_audio_emb"],
             "masks": ref["input_masks"]}
    c, uc = cond.get_unconditional_conditioning(batch, force_uc_zero_embeddings=["cond_frames", "audio_emb"])
    assert sorted(c) == sorted(uc) == ["concat", "crossattn", "gt", "masks"]
    for key in c:
        assert max_abs_err(c[key], ref[f"c_{key}"]) <= 1e-5, key
        assert max_abs_err(uc[key], ref[f"uc_{key}"]) <= 1e-5, key
    # unconditional audio is zero *after* the Linear: its bias is not kept
    assert torch.count_nonzero(uc["crossattn"]) == 0 and cond.embedders[2].linear.bias.abs().sum() > 0


def test_ucg_dropout_granularity_and_training_only():
    cond = _tiny_conditioner(cond_frames=0.5, audio_emb=0.5)
    cond.embedders[0].n_copies = 14  # training layout: the reference is dropped per frame
    batch = {"cond_frames": torch.ones(8, 4, 2, 2), "gt": torch.ones(8, 4, 14, 2, 2),
             "audio_emb": torch.ones(8, 14, 2, 32), "masks": torch.ones(8, 1, 14, 2, 2)}
    cond.train()
    out = cond(batch, generator=torch.Generator().manual_seed(0))
    kept_frames = out["concat"].flatten(1).abs().sum(1) > 0
    assert out["concat"].shape[0] == 8 * 14 and 0 < kept_frames.sum() < 8 * 14
    kept_clips = out["crossattn"].flatten(1).abs().sum(1) > 0
    assert 0 < kept_clips.sum() < 8  # audio dropped per clip
    # every clip's audio tokens are either all kept or all zero
    per_clip = (out["crossattn"].abs().sum(-1) > 0)
    assert torch.all(per_clip.all(1) | (~per_clip).all(1))
    assert torch.equal(out["gt"], batch["gt"])  # gt never dropped
    cond.eval()
    assert (cond(batch)["concat"].flatten(1).abs().sum(1) > 0).all()


def test_same_key_outputs_are_concatenated_and_identity_keys_pass():
    cond = GeneralConditioner([
        {"input_key": "valence", "embedder": {"_target_": "keysync.models.conditioning.ConcatTimestepEmbedderND",
                                              "outdim": 8, "is_temporal": True}},
        {"input_key": "arousal", "target": "keysync.models.conditioning.ConcatTimestepEmbedderND",
         "params": {"outdim": 8, "is_temporal": True}},
        {"input_key": "gt", "embedder": IdentityEncoder(cond_type="gt")},
    ])
    out = cond({"valence": torch.zeros(2, 14), "arousal": torch.ones(2, 14), "gt": torch.ones(3)})
    assert out["vector"].shape == (28, 16)
    assert torch.equal(out["gt"], torch.ones(3))
    with pytest.raises(KeyError, match="arousal"):
        cond({"valence": torch.zeros(2, 14), "gt": torch.ones(3)})
    assert not any(p.requires_grad for p in cond.parameters())
