"""LatentVideoDataset, clip index, samplers and data module on synthetic artefacts."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from keysync.data.clip_index import SampleLoadError, build_clip_index
from keysync.data.datamodule import LatentVideoDataModule
from keysync.data.dataset import LatentVideoDataset
from keysync.data.paths import ArtefactLayout
from keysync.data.samplers import BalancedGroupSampler, dataset_group, group_weights
from keysync.data.synthetic import write_synthetic_clips
from keysync.face.masks import build_masks

FRAME = 64


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """3 clips (180, 200, 100 frames) with video and audio; the 100-frame one is too short for keyframes."""
    root = tmp_path_factory.mktemp("clips")
    return write_synthetic_clips(root, n_clips=3, num_frames=[180, 200, 100], frame_size=FRAME, with_audio=True)


def _dataset(filelist, **kwargs) -> LatentVideoDataset:
    defaults = dict(resize_size=32, seed=0)
    return LatentVideoDataset(filelist, **{**defaults, **kwargs})


def _start(sample) -> int:
    return int(sample["sample_id"].rsplit("@", 1)[1])


def _artefacts(filelist: Path, name: str):
    layout = ArtefactLayout(filelist.parent)
    rel = Path(name)
    return (load_file(str(layout.latents(rel)))["latents"], load_file(str(layout.audio_features(rel, "hubert")))["audio"],
            np.load(layout.landmarks(rel)))


def test_keyframe_sample(clips):
    ds = _dataset(clips, mode="keyframe", load_original_frames=True)
    assert len(ds) == 2 and [c.rel.name for c in ds.clips] == ["clip_0", "clip_1"]
    sample = ds[1]
    idx = [_start(sample) + 13 * i for i in range(14)]
    latents, audio, landmarks = _artefacts(clips, "clip_1")
    assert sample["sample_id"].startswith("1:clip_1@")
    assert torch.equal(sample["latents"], latents[idx].permute(1, 0, 2, 3))
    assert sample["gt"] is sample["latents"]
    assert torch.equal(sample["cond_frames"], latents[idx[0]])  # identity reference = first keyframe
    assert torch.equal(sample["audio_emb"], audio[idx])  # non-consecutive rows, 25 fps
    expected = build_masks(landmarks[idx], size=(FRAME, FRAME), kind="box", latent_size=(16, 16))
    assert torch.equal(sample["masks"], expected.permute(1, 0, 2, 3))
    assert sample["masks"].shape == (1, 14, 16, 16) and 0 < sample["masks"].mean() < 1
    assert sample["original_frames"].shape == (3, 14, 32, 32)
    assert -1 <= sample["original_frames"].min() and sample["original_frames"].max() <= 1
    assert torch.equal(sample["cond_frames_without_noise"], sample["original_frames"][:, :1])
    assert sample["num_video_frames"] == 14 and torch.equal(sample["image_only_indicator"], torch.zeros(14))
    assert sample["fps_id"].tolist() == [24] and sample["motion_bucket_id"].tolist() == [125]


def test_interpolation_sample_and_optional_parts(clips):
    ds = _dataset(clips, mode="interpolation", load_raw_audio=True)
    assert len(ds) == 3  # the 100-frame clip is long enough for 14 consecutive frames
    sample = ds[2]
    idx = list(range(_start(sample), _start(sample) + 14))
    latents, audio, _ = _artefacts(clips, "clip_2")
    assert torch.equal(sample["latents"], latents[idx].permute(1, 0, 2, 3))
    assert torch.equal(sample["cond_frames"], torch.stack([latents[idx[0]], latents[idx[-1]]], 1))
    assert torch.equal(sample["audio_emb"], audio[idx])
    assert "original_frames" not in sample and "cond_frames_without_noise" not in sample  # off unless asked
    assert sample["raw_audio"].shape == (14 * 640,)


def test_short_videos_excluded_with_logged_count(clips, caplog):
    with caplog.at_level(logging.INFO, logger="keysync.data.clip_index"):
        records = build_clip_index(clips, 14, 12, "hubert")
    assert [r.num_frames for r in records] == [180, 200]
    assert "2 of 3 videos usable; shorter than 171 frames: 1" in caplog.text
    with pytest.raises(ValueError, match="no usable videos"):
        build_clip_index(clips, 14, 20, "hubert")


def test_windows_are_seeded(clips):
    a, b = _dataset(clips, fixed_windows_seed=3), _dataset(clips, fixed_windows_seed=3)
    assert [a[i]["sample_id"] for i in range(2)] * 2 == [b[i]["sample_id"] for i in (0, 1, 0, 1)]
    c, d = _dataset(clips, seed=5), _dataset(clips, seed=5)
    assert [c[0]["sample_id"] for _ in range(4)] == [d[0]["sample_id"] for _ in range(4)]
    d.rank = 1
    d._rng = None
    assert [c[0]["sample_id"] for _ in range(6)] != [d[0]["sample_id"] for _ in range(6)]


def test_unreadable_sample_raises_naming_the_file(tmp_path, caplog):
    filelist = write_synthetic_clips(tmp_path, n_clips=2, num_frames=180, with_video=False)
    ds = _dataset(filelist, frame_size=(FRAME, FRAME))
    skipping = _dataset(filelist, frame_size=(FRAME, FRAME), on_error="skip")
    bad = ArtefactLayout(tmp_path).audio_features(Path("clip_1"), "hubert")
    bad.write_bytes(b"not a safetensors file")  # broken after the index was built
    ds[0]
    with pytest.raises(SampleLoadError, match=str(bad)):
        ds[1]
    with caplog.at_level(logging.WARNING):
        assert skipping[1]["sample_id"].startswith("0:clip_0")  # the next index instead, counted
    assert skipping.skipped == 1 and "1 skipped so far" in caplog.text and str(bad) in caplog.text
    # at index time: the broken file is named (or, with on_error=skip, the clip is dropped and counted)
    with pytest.raises(SampleLoadError, match=str(bad)):
        _dataset(filelist, frame_size=(FRAME, FRAME))
    with caplog.at_level(logging.INFO):
        assert len(_dataset(filelist, frame_size=(FRAME, FRAME), on_error="skip")) == 1
    assert "unreadable: 1" in caplog.text
    ArtefactLayout(tmp_path).landmarks(Path("clip_0")).unlink()
    with pytest.raises(SampleLoadError, match="clip_0.npy"):
        _dataset(filelist, frame_size=(FRAME, FRAME))


def test_mask_geometry_and_emotions(tmp_path):
    filelist = write_synthetic_clips(tmp_path, n_clips=1, num_frames=180, with_video=False)
    emo = ArtefactLayout(tmp_path).emotions(Path("clip_0"))
    emo.parent.mkdir(parents=True)
    torch.save({"valence": torch.linspace(-1, 1, 180), "arousal": torch.zeros(180),
                "labels": torch.arange(180) % 8, "scores": torch.zeros(180, 8)}, emo)
    ds = _dataset(filelist, frame_size=(FRAME, FRAME), mask_geometry="crop", use_emotions=True, fixed_windows_seed=0)
    ref = _dataset(filelist, frame_size=(FRAME, FRAME), fixed_windows_seed=0)
    s, r = ds[0], ref[0]
    start = _start(s)
    assert s["masks"].shape == r["masks"].shape == (1, 14, 16, 16)
    assert (s["masks"] != r["masks"]).float().mean() < 0.05  # square frames: same geometry up to rounding
    assert torch.equal(s["emo_labels"], (torch.arange(start, start + 14 * 13, 13)) % 8)
    assert s["valence"].shape == s["arousal"].shape == (14,)


def test_groups_and_balanced_sampler():
    paths = ["/d/AA_processed/a.mp4", "/d/AA_processed/b.mp4", "/d/1000actors_nsv/c.mp4", "/d/x/d.mp4"] + \
        [f"/d/x/e{i}.mp4" for i in range(4)]
    groups = [dataset_group(p) for p in paths]
    assert groups[:4] == ["AA_processed", "AA_processed", "1000actors_nsv", "other"]
    assert torch.allclose(group_weights(groups)[:4], torch.tensor([0.5, 0.5, 1.0, 0.2], dtype=torch.float64))
    whole = BalancedGroupSampler(groups, num_samples=3000, seed=1)
    draws = list(whole)
    per_group = Counter(groups[i] for i in draws)
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in per_group.values())  # groups equally likely
    shards = [list(BalancedGroupSampler(groups, num_samples=3000, seed=1, rank=r, num_replicas=2)) for r in (0, 1)]
    assert shards[0] == draws[0::2] and shards[1] == draws[1::2] and len(shards[0]) == 1500
    whole.set_epoch(1)
    assert list(whole) != draws


def test_datamodule_builds_rank_samplers(clips):
    dm = LatentVideoDataModule(dict(filelist=str(clips), mode="interpolation", resize_size=32, virtual_increase=2),
                               batch_size=2, balance_datasets=False, seed=0)
    dm.setup("fit")
    shards = [list(dm.build_sampler(r, 2)) for r in (0, 1)]
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(6))
    batch = next(iter(dm.train_dataloader()))
    assert batch["latents"].shape == (2, 4, 14, 16, 16) and batch["cond_frames"].shape == (2, 4, 2, 16, 16)
    assert batch["audio_emb"].shape == (2, 14, 2, 32) and batch["masks"].shape == (2, 1, 14, 16, 16)
    assert len(batch["sample_id"]) == 2 and batch["num_video_frames"].tolist() == [14, 14]
