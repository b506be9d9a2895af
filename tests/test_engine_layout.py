"""Full-size engines built from our configs have exactly the published checkpoints' keys."""

from __future__ import annotations

import pytest

from conftest import load_reference_json
from keysync.models.engine import build_engine, load_model_config

ENCODER_PREFIX = "conditioner.embedders.0.encoder."


def _shapes(engine) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in engine.state_dict().items()}


@pytest.mark.parametrize("config", ["keysync_keyframe", "keysync_keyframe_inference"])
def test_keyframe_keys_and_shapes(config):
    ref = load_reference_json("keyframe_full_keys.json")["state_dict"]
    engine = build_engine(config, device="meta")
    assert len(ref) == 1696
    assert _shapes(engine) == ref
    assert sum(p.numel() for p in engine.diffusion_model.parameters()) == 1_524_950_762
    assert sum(p.numel() for p in engine.parameters()) == 1_589_317_401


@pytest.mark.parametrize("config", ["keysync_interpolation", "keysync_interpolation_inference"])
def test_interpolation_keys_and_shapes(config):
    listing = load_reference_json("interpolation_full_keys.json")["state_dict"]
    ref = {k: v for k, v in listing.items() if not k.startswith(ENCODER_PREFIX)}
    assert len(listing) == 1945 and len(ref) == 1697
    engine = build_engine(config, device="meta")
    assert _shapes(engine) == ref
    assert sum(p.numel() for p in engine.diffusion_model.parameters()) == 1_524_953_642
    assert list(engine.state_dict()["model.learned_mask"].shape) == [4, 64, 64]


def test_prefixes_are_the_reference_ones():
    keys = build_engine("keysync_interpolation_inference", device="meta").state_dict().keys()
    prefixes = {k.split(".")[0] if not k.startswith("model.") else ".".join(k.split(".")[:2]) for k in keys}
    assert prefixes == {"model.diffusion_model", "model.learned_mask", "conditioner", "first_stage_model"}
    assert not any(k.startswith("first_stage_model.encoder.") for k in keys)


def test_training_and_inference_configs_differ_only_where_the_reference_does():
    train = load_model_config("keysync_keyframe")
    infer = load_model_config("keysync_keyframe_inference")
    assert train.conditioner.emb_models.cond_frames.embedder.n_copies == 14
    assert infer.conditioner.emb_models.cond_frames.embedder.n_copies == 1
    assert train.conditioner.emb_models.audio_emb.ucg_rate == 0.2 and infer.conditioner.emb_models.audio_emb.ucg_rate == 0
    assert train.network.diffusion_model.use_checkpoint and not infer.network.diffusion_model.use_checkpoint


def test_unknown_config_lists_available():
    with pytest.raises(FileNotFoundError, match="keysync_keyframe"):
        load_model_config("no_such_model")
