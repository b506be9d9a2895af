"""Full-size KeyFace engines (meta device) have the key layout of the published keyframe.pt,
interpolation.pt and interpolation_bad.pt.

The expected layout is derived from the reference KeySync listings (keyframe_full_keys.json,
interpolation_full_keys.json) and the KeyFace differences of SPEC §9 / the KeyFace training
configs: the same VideoUNet except ``label_emb.0.0.weight`` [1280, 1536] for keyframes (512
emotion + 1024 audio); the conditioner order cond_frames, valence, arousal, audio_emb (keyframe)
and cond_frames, audio_emb (interpolation), so the 1536 → 1024 audio Linear is
``conditioner.embedders.3.linear`` resp. ``conditioner.embedders.1.linear``; the emotion
embedders have no parameters; no encoder (latent inputs); the weak network has the same keys.
"""

from __future__ import annotations

import pytest

from conftest import load_reference_json
from keysync.models.engine import build_engine, load_model_config

ENCODER_PREFIX = "conditioner.embedders.0.encoder."
KEYSYNC_AUDIO = "conditioner.embedders.2.linear."
NO_LPIPS_FILE = ["loss_fn.what_pixel_losses=[l2]", "loss_fn.lpips_model_path=null"]


def _shapes(engine) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in engine.state_dict().items()}


def _keyface_from_keysync(listing: dict, audio_index: int) -> dict[str, list[int]]:
    ref = {k: v for k, v in listing.items() if not k.startswith((ENCODER_PREFIX, KEYSYNC_AUDIO))}
    ref[f"conditioner.embedders.{audio_index}.linear.weight"] = [1024, 1536]
    ref[f"conditioner.embedders.{audio_index}.linear.bias"] = [1024]
    return ref


def _prefixes(keys) -> set[str]:
    return {".".join(k.split(".")[:2]) if k.startswith("model.") else
            ".".join(k.split(".")[:3]) if k.startswith("conditioner.") else ".".join(k.split(".")[:2]) for k in keys}


@pytest.mark.parametrize("config,overrides", [("keyface_keyframe", NO_LPIPS_FILE), ("keyface_keyframe_inference", [])])
def test_keyframe_layout(config, overrides):
    ref = _keyface_from_keysync(load_reference_json("keyframe_full_keys.json")["state_dict"], audio_index=3)
    ref["model.diffusion_model.label_emb.0.0.weight"] = [1280, 1536]
    engine = build_engine(config, overrides, device="meta")
    shapes = _shapes(engine)
    assert shapes == ref and len(shapes) == 1696
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == [1280, 1536]  # 512 emotion + 1024 audio
    assert shapes["model.diffusion_model.input_blocks.0.0.weight"] == [320, 8, 3, 3]
    assert _prefixes(shapes) == {"model.diffusion_model", "conditioner.embedders.3", "first_stage_model.decoder"}
    assert [e.input_key for e in engine.conditioner.embedders] == ["cond_frames", "valence", "arousal", "audio_emb"]
    assert sum(p.numel() for p in engine.diffusion_model.parameters()) == 1_524_950_762 + 512 * 1280
    assert sum(p.numel() for p in engine.parameters()) == 1_590_759_193


@pytest.mark.parametrize("config", ["keyface_interpolation", "keyface_interpolation_inference",
                                    "keyface_interpolation_bad", "keyface_interpolation_bad_inference"])
def test_interpolation_and_weak_model_layout(config):
    ref = _keyface_from_keysync(load_reference_json("interpolation_full_keys.json")["state_dict"], audio_index=1)
    engine = build_engine(config, device="meta")
    shapes = _shapes(engine)
    assert shapes == ref and len(shapes) == 1697
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == [1280, 1024]  # no emotions
    assert shapes["model.learned_mask"] == [4, 64, 64]
    assert shapes["model.diffusion_model.input_blocks.0.0.weight"] == [320, 9, 3, 3]
    assert _prefixes(shapes) == {"model.diffusion_model", "model.learned_mask", "conditioner.embedders.1",
                                 "first_stage_model.decoder"}
    assert [e.input_key for e in engine.conditioner.embedders] == ["cond_frames", "audio_emb"]
    assert sum(p.numel() for p in engine.diffusion_model.parameters()) == 1_524_953_642


def test_keyface_configs_are_the_reference_ones():
    kf = load_model_config("keyface_keyframe")
    assert kf.loss_fn.lambda_lower == 3 and list(kf.loss_fn.what_pixel_losses) == ["l2", "lpips"]
    assert kf.loss_fn.weight_pixel == 1 and kf.denoiser._target_.endswith(".Denoiser")
    assert kf.network._target_.endswith("OpenAIWrapper") and kf.network.diffusion_model.adm_in_channels == 512
    assert kf.conditioner.emb_models.valence.embedder.outdim == 256 and kf.conditioner.emb_models.valence.ucg_rate == 0
    interp = load_model_config("keyface_interpolation")
    assert interp.loss_fn.lambda_lower == 2 and interp.loss_fn.weight_pixel == 0
    infer = load_model_config("keyface_interpolation_inference")
    assert infer.denoiser._target_.endswith("KarrasTemporalMultiDiffusion") and not infer.denoiser.is_dub
    assert infer.sampler.guider._target_.endswith("KarrasGuider") and infer.sampler.guider.scale == 2.0
    kfi = load_model_config("keyface_keyframe_inference")
    assert (kfi.sampler.guider.audio_ratio, kfi.sampler.guider.ref_ratio) == (5.0, 2.0) and kfi.loss_fn is None
