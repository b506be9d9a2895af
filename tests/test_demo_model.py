"""The bundled demo model really lip-syncs held-out synthetic faces through the real pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keysync.data.synthetic_world import Identity, make_clip, mouth_parameters, read_mouth_opening, speech
from keysync.evaluation.world_metrics import dub_world_clip, world_scores
from keysync.pipelines.default_models import DefaultModels, load_default_dubbing_models
from keysync.pipelines.demo_model import DEMO_DIR, demo_available, demo_info, load_demo_models


@pytest.fixture(scope="module")
def demo():
    assert demo_available(), f"the demo model must ship in {DEMO_DIR}"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    models, options = load_demo_models()
    yield DefaultModels(models, options, "demo", "demo")
    models.close()
    torch.set_num_threads(n)


def test_demo_files_are_small_and_described():
    sizes = {p.name: p.stat().st_size for p in DEMO_DIR.iterdir()}
    assert sum(sizes.values()) <= 25e6, sizes
    info = demo_info()
    assert info["resolution"] == 64 and info["audio"] == "logmel" and "held_out" in info


def test_default_models_prefer_the_demo_model(tmp_path):
    chosen = load_default_dubbing_models(tmp_path)  # no published weights there
    try:
        assert chosen.kind == "demo" and "DEMO model" in chosen.description and chosen.options.resolution == 64
    finally:
        chosen.models.close()


def test_held_out_clip_follows_the_new_speech(demo, tmp_path):
    """A new identity (seed never used in training) talks in the first half of its clip and is
    silent in the second; the new speech (another voice) is silent first and talks second. The
    generated mouth follows the new speech (it closes while the source talks and opens after),
    not the source's, and nothing changes outside the lower face."""
    rng = np.random.default_rng(90210)
    half = np.zeros(int(1.5 * 16000), np.float32)
    source_audio = np.concatenate([speech(rng, 1.5, "en-us+m2"), half])
    drive = np.concatenate([half, speech(rng, 1.5, "en+f4")])
    src = make_clip(Identity.random(rng), source_audio, 128, seed=5)
    target, _ = mouth_parameters(drive)
    frames, outside = dub_world_clip(demo, src, drive, tmp_path, 0)
    assert frames.shape == src.frames.shape == (75, 128, 128, 3)
    read = read_mouth_opening(frames, src.landmarks)
    model = world_scores(read, target, src.opening, outside)
    copy = world_scores(read_mouth_opening(src.frames, src.landmarks), target, src.opening)
    assert model.outside_pixels == 0
    assert copy.sync < 0.0 and model.sync > 0.8, (model, copy)
    assert model.leakage < 0.3 and model.silence_closure > 0.9, model
    assert read[:35].max() < 0.1 < read[45:].max()  # closed while the source talks, open after


def test_train_demo_script_reproduces_the_recipe(tmp_path):
    """scripts/train_demo.sh end to end at a few steps: world, VAE, features, both models, export;
    the folder it writes loads as a demo model."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "CLIPS": "2", "VAE_STEPS": "2", "KEYFRAME_STEPS": "2", "INTERPOLATION_STEPS": "2",
           "SKIP_BENCHMARK": "1", "KEYSYNC": str(Path(sys.executable).parent / "keysync")}
    out = tmp_path / "model"
    result = subprocess.run(["bash", str(repo / "scripts" / "train_demo.sh"), str(tmp_path / "work"), str(out)],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert demo_available(out) and demo_info(out)["recipe"]["keyframe_steps"] == 2
    models, options = load_demo_models(out)
    assert options.resolution == 64 and models.keyframe.sampler.guider.audio_ratio == 3.0
    models.close()
