"""Tiny KeyFace training on CPU: WavLM ⊕ BEATs features and emotion files in the dataset, one
keyframe run (latent + pixel L2 + LPIPS loss, λ_lower 3) and one interpolation run of two steps each,
checkpoints loadable into the tiny inference engines."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from keysync.cli.train import compose_train_config
from keysync.data.dataset import LatentVideoDataset
from keysync.data.emotion_files import emotions_job
from keysync.data.paths import ArtefactLayout, list_videos
from keysync.data.precompute import run_precompute
from keysync.data.synthetic import write_synthetic_clips
from keysync.models.checkpoints import read_state_dict
from keysync.pipelines.animation_models import TINY_KEYFACE_CONFIGS, load_keyface_engine
from keysync.training.runner import run_training


def _detector(frames, landmarks):
    level = frames.reshape(len(frames), -1).mean(1) / 255.0
    return {"valence": np.sin(7 * level), "arousal": np.cos(3 * level) - 0.5}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("keyface_data")
    filelist = write_synthetic_clips(root, n_clips=2, num_frames=[175, 180], frame_size=32, audio_emb_type="wavlm")
    layout = ArtefactLayout(root)
    gen = torch.Generator().manual_seed(1)
    for video in list_videos(filelist):
        rel = layout.relative(video)
        n = read_state_dict(layout.audio_features(rel, "wavlm"))["audio"].shape[0]
        for model in ("beats", "wav2vec2"):  # the interpolation model's audio is wav2vec2 ⊕ BEATs
            save_file({"audio": torch.randn(n, 2, 32, generator=gen)}, str(layout.audio_features(rel, model)))
    summary = run_precompute(list_videos(filelist), emotions_job(_detector, layout_in=layout), layout, progress=False)
    assert summary.ok and len(summary.done) == 2
    return filelist


def test_dataset_concatenates_beats_and_reads_emotions(clips):
    ds = LatentVideoDataset(clips, mode="keyframe", audio_emb_type="wavlm", extra_audio_emb_type="beats",
                            use_emotions=True, resize_size=32, fixed_windows_seed=0)
    sample = ds[0]
    layout = ArtefactLayout(clips.parent)
    rel = ds.clips[0].rel
    first = int(sample["sample_id"].rsplit("@", 1)[1])
    idx = first + 13 * torch.arange(14)
    wavlm = read_state_dict(layout.audio_features(rel, "wavlm"))["audio"][idx]
    beats = read_state_dict(layout.audio_features(rel, "beats"))["audio"][idx]
    assert sample["audio_emb"].shape == (14, 2, 64)
    assert torch.equal(sample["audio_emb"], torch.cat([wavlm, beats], -1))
    emotions = torch.load(layout.emotions(rel), weights_only=True)
    assert torch.equal(sample["valence"], emotions["valence"][idx]) and sample["arousal"].shape == (14,)


def _train(experiment: str, filelist: Path, out: Path):
    torch.set_num_threads(1)  # tiny models: a second thread mostly spins on a busy 2-core machine
    cfg = compose_train_config([f"experiment={experiment}", f"data.filelist={filelist}", f"output_dir={out}",
                                "data.dataset.fixed_windows_seed=0", "trainer.max_steps=2",
                                "callbacks.sample_logger.every_n_steps=0"])
    return run_training(cfg)


def _logged(run) -> list[dict]:
    rows = csv.DictReader(open(Path(run.trainer.logger.log_dir) / "metrics.csv"))
    return [r for r in rows if r.get("train/loss")]


@pytest.mark.parametrize("experiment,inference_config", [("tiny_keyface_keyframe", TINY_KEYFACE_CONFIGS[0]),
                                                         ("tiny_keyface_interpolation", TINY_KEYFACE_CONFIGS[1])])
def test_one_training_step_and_checkpoint(clips, tmp_path, experiment, inference_config):
    run = _train(experiment, clips, tmp_path)
    rows = _logged(run)
    assert [int(r["step"]) for r in rows] == [0, 1] and run.trainer.global_step == 2
    assert all(np.isfinite(float(r["train/loss"])) for r in rows)
    if experiment.endswith("keyframe"):
        loss = run.module.engine.loss_fn
        assert loss.lambda_lower == 3 and loss.what_pixel_losses == ["l2", "lpips"]
        # random-weight LPIPS stand-in (its linear heads may be negative): present and non-zero
        assert all(float(r["train/pixel_lpips"]) != 0 and float(r["train/pixel_l2"]) > 0 for r in rows)
    else:
        assert run.module.engine.loss_fn.lambda_lower == 2
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    engine = load_keyface_engine(inference_config, ckpt)  # strict: exactly the published key set
    assert set(read_state_dict(ckpt)) == set(engine.state_dict())
    trained = run.module.state_dict()
    assert all(torch.equal(v, trained[k].cpu()) for k, v in engine.state_dict().items())
