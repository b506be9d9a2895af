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
