"""SPEC §2.7 freezing rules on the full-size models (meta device: no memory, no weights)."""

from __future__ import annotations

import pytest

from keysync.models.engine import build_engine
from keysync.training.freezing import apply_freeze_rules, count_parameters
from keysync.training.module import KeySyncTrainingModule

#: trainable UNet parameters of the full-size keyframe model after to_freeze=["time_"],
#: to_unfreeze=["time_embed"]: spatial ResBlocks/transformers, input_blocks.0, label_emb, out, time_embed.
KEYFRAME_TRAINABLE_UNET = 868_873_924
KEYFRAME_FROZEN = 656_076_838      # temporal layers: time_stack, time_mixer, time_pos_embed
AUDIO_LINEAR = 768 * 1024 + 1024   # conditioner.embedders.2.linear (is_trainable)
LEARNED_MASK = 4 * 64 * 64         # interpolation only
EXTRA_INPUT_CHANNEL = 320 * 3 * 3  # interpolation: input_blocks.0.0 has 9 input channels




@pytest.fixture(scope="module")
def keyframe():
    """The training module's view of the full-size keyframe engine (rules of the experiment)."""
    engine = build_engine("keysync_keyframe", device="meta")
    module = KeySyncTrainingModule(engine, to_freeze=["time_"], to_unfreeze=["time_embed"])
    return engine, module.frozen_names, module


def test_keyframe_trainable_set_matches_spec(keyframe):
    engine, frozen, module = keyframe
    assert count_parameters(engine.model.diffusion_model) == 1_524_950_762
    assert count_parameters(engine.model, trainable=True) == KEYFRAME_TRAINABLE_UNET
    assert count_parameters(engine.model, trainable=False) == KEYFRAME_FROZEN
    assert count_parameters(engine.conditioner, trainable=True) == AUDIO_LINEAR
    assert count_parameters(engine.model, True) + count_parameters(engine.conditioner, True) == 869_661_380
    assert count_parameters(engine.first_stage_model, trainable=True) == 0
    # exactly what the optimizer gets
    assert module.num_trainable == sum(p.numel() for p in module.optimized_parameters()) == 869_661_380


def test_keyframe_frozen_names(keyframe):
    engine, frozen, _ = keyframe
    assert frozen and all("time_" in n and "time_embed" not in n for n in frozen)
    kinds = {next(k for k in ("time_stack", "time_mixer", "time_pos_embed") if k in n) for n in frozen}
    assert kinds == {"time_stack", "time_mixer", "time_pos_embed"}
    trainable = [n for n, p in engine.model.named_parameters() if p.requires_grad]
    assert not any("time_" in n and "time_embed" not in n for n in trainable)
    tops = {n.split(".")[1] for n in trainable}
    assert tops == {"input_blocks", "middle_block", "output_blocks", "label_emb", "time_embed", "out"}
    assert "diffusion_model.input_blocks.0.0.weight" in trainable
    assert any("time_embed" in n for n in trainable)


def test_interpolation_adds_learned_mask():
    engine = build_engine("keysync_interpolation", device="meta")
    apply_freeze_rules(engine.model, ["time_"], ["time_embed"])
    assert engine.model.learned_mask.requires_grad
    assert count_parameters(engine.model, True) == KEYFRAME_TRAINABLE_UNET + LEARNED_MASK + EXTRA_INPUT_CHANNEL
    assert count_parameters(engine.model, False) == KEYFRAME_FROZEN
