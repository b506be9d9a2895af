"""The synthetic talking-face world: mouth parameters from audio, rendering, reading back."""

from __future__ import annotations

import numpy as np

from keysync.data.synthetic_world import (Identity, make_clip, mouth_parameters, read_mouth_opening, speech,
                                          write_world)
from keysync.media import probe_video, read_video


def test_mouth_follows_level_and_closes_in_silence():
    t = np.arange(16000 * 2) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (t > 1.0)  # 1 s silence, then 1 s of sound
    opening, width = mouth_parameters(tone.astype(np.float32))
    assert len(opening) == 50
    assert (opening[:24] == 0).all() and (opening[27:] > 0.9).all()
    assert (width[:24] == 1.0).all() and (0.8 <= width).all() and (width <= 1.2).all()
    quiet = mouth_parameters((tone * 0.05).astype(np.float32))[0]
    assert 0.1 < quiet[30:].mean() < 0.5 * opening[30:].mean()  # -26 dB quieter: a smaller opening


def test_rendered_mouth_reads_back_and_identities_differ():
    rng = np.random.default_rng(0)
    audio = speech(rng, 2.0, "en")
    a, b = (make_clip(Identity.random(np.random.default_rng(s)), audio, 96, seed=s) for s in (1, 2))
    assert a.frames.shape == (50, 96, 96, 3) and a.landmarks.shape == (50, 68, 2)
    assert np.abs(a.frames[0].astype(int) - b.frames[0].astype(int)).mean() > 10  # different people
    read = read_mouth_opening(a.frames, a.landmarks)
    assert np.corrcoef(read, a.opening)[0, 1] > 0.95
    closed = a.opening == 0
    assert closed.any() and (read[closed] < 0.05).all()  # espeak pauses: closed mouth
    inside = a.landmarks[:, :, 0].min() > 0 and a.landmarks[:, :, 0].max() < 96
    assert inside


def test_write_world_layout(tmp_path):
    videos = write_world(tmp_path, n_clips=2, seconds=1.0, size=64, seed=3)
    assert [v.name for v in videos] == ["id000.mp4", "id001.mp4"]
    info = probe_video(videos[0])
    assert (info.num_frames, info.fps, info.width, info.has_audio) == (25, 25.0, 64, True)
    assert np.load(tmp_path / "landmarks_crop" / "id000.npy").shape == (25, 68, 2)
    mouth = np.load(tmp_path / "mouth" / "id001.npz")
    assert mouth["opening"].shape == (25,) and (tmp_path / "audio" / "id001.wav").is_file()
    frames, _ = read_video(videos[0])
    read = read_mouth_opening(frames, np.load(tmp_path / "landmarks_crop" / "id000.npy"))
    assert np.abs(read - np.load(tmp_path / "mouth" / "id000.npz")["opening"]).mean() < 0.15  # survives h264


def test_synth_command(tmp_path, capsys):
    from keysync.cli.main import main

    assert main(["synth", str(tmp_path / "w"), "--clips", "1", "--seconds", "0.6", "--size", "48"]) == 0
    assert "wrote 1 clips" in capsys.readouterr().out
    assert (tmp_path / "w" / "mouth" / "id000.npz").is_file()
    assert main(["synth", str(tmp_path / "x"), "--clips", "0"]) == 2


def test_cropped_world_matches_the_dubbing_crops(tmp_path):
    """--crop_size writes the face crops dubbing would take (same boxes), landmarks in crop pixels."""
    from keysync.data.synthetic_world import crop_clip
    from keysync.face.crop import plan_crops

    rng = np.random.default_rng(4)
    clip = make_clip(Identity.random(rng), speech(rng, 1.5, "en"), 128, seed=2)
    frames, lms = crop_clip(clip, 64, crop_scale=1.6)
    assert frames.shape == (38, 64, 64, 3) and lms.shape == (38, 68, 2)
    plan = plan_crops(clip.landmarks, (128, 128), out_size=64, scale=1.6)
    assert np.array_equal(frames, plan.crop(clip.frames))
    assert 0 < lms.min() and lms.max() < 64
    assert np.corrcoef(read_mouth_opening(frames, lms), clip.opening)[0, 1] > 0.9

    videos = write_world(tmp_path, n_clips=1, seconds=1.0, size=128, seed=3, crop_size=48, crop_scale=1.6)
    info = probe_video(videos[0])
    assert (info.width, info.height) == (48, 48)
    assert np.load(tmp_path / "landmarks_crop" / "id000.npy").max() < 48


def test_world_scores():
    from keysync.evaluation.world_metrics import correlation, mean_scores, world_scores

    t = np.linspace(0, 6, 150)
    drive = np.clip(np.sin(t), 0, None)  # silent (0) half the time
    source = np.clip(np.cos(1.7 * t), 0, None)
    perfect = world_scores(drive, drive, source)
    assert perfect.sync == 1.0 and perfect.leakage == 0.0 and perfect.silence_closure == 1.0
    assert perfect.source_correlation == correlation(drive, source) != 0  # unrelated, yet correlated
    copy = world_scores(source, drive, source, outside_pixels=3)
    assert abs(copy.leakage - 1.0) < 1e-9 and copy.sync < 0.5 and copy.silence_closure < 0.8
    assert copy.outside_pixels == 3 and abs(copy.source_correlation - 1.0) < 1e-9
    mixed = world_scores(0.7 * drive + 0.3 * source, drive, source)  # some of the source's mouth left
    assert 0.2 < mixed.leakage < 1.0 and mixed.sync > 0.8
    static = world_scores(np.zeros(150), drive, source)
    assert static.sync == 0.0 and static.silence_closure == 1.0 and static.jitter == 0.0
    noisy = world_scores(drive + np.random.default_rng(0).normal(0, 0.05, 150), drive, source)
    assert noisy.jitter > perfect.jitter
    mean = mean_scores([perfect, copy])
    assert mean.sync == (perfect.sync + copy.sync) / 2 and mean.outside_pixels == 3
    try:
        correlation(np.zeros(3), np.zeros(4))
    except ValueError as err:
        assert "lengths differ" in str(err)
    else:
        raise AssertionError("mismatched lengths must raise")
