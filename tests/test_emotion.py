"""Emotion control (named states, CSV, accentuation) and training-side emotion files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from keysync.cli.main import main as cli_main
from keysync.data.emotion_files import compute_emotions, load_detector, load_emotions, save_emotions
from keysync.data.paths import ArtefactLayout
from keysync.pipelines.emotion import (EMOTION_STATES, accentuate, emotion_from_states, emotion_streams,
                                       parse_states, read_emotion_csv)


def brightness_detector(frames: np.ndarray, landmarks):
    """A stand-in user detector: valence from brightness, arousal from the landmarks' spread."""
    mean = frames.reshape(len(frames), -1).mean(1) / 255.0
    spread = np.zeros(len(frames)) if landmarks is None else landmarks[:, :, 1].std(1) / 100.0
    return {"valence": 2 * mean - 1, "arousal": np.clip(spread, -1, 1), "labels": (mean > 0.5).astype(int),
            "scores": np.stack([mean, 1 - mean], 1)}


def test_named_states():
    v, a = emotion_from_states("happy", 10)
    assert v.shape == a.shape == (10,) and v.dtype == torch.float32
    assert torch.allclose(v, torch.full((10,), 0.85)) and torch.allclose(a, torch.full((10,), 0.75))
    v, a = emotion_from_states(["happy", "sad"], 11)
    assert v[0] == pytest.approx(0.85) and v[-1] == pytest.approx(-0.85) and v[5] == pytest.approx(0.0, abs=1e-6)
    assert a[-1] == pytest.approx(-0.35) and torch.all(v[1:] <= v[:-1])
    v, a = emotion_from_states("happy,neutral,angry", 21)
    assert (v[10], a[10]) == (0, 0) and v[20] == pytest.approx(-0.443) and a[20] == pytest.approx(0.908)
    assert parse_states(" Happy , sad") == ["happy", "sad"]
    with pytest.raises(ValueError, match="unknown emotion"):
        parse_states("elated")
    assert set(EMOTION_STATES) >= {"neutral", "happy", "sad", "angry", "surprised"}
    assert all(-1 <= x <= 1 for va in EMOTION_STATES.values() for x in va)


def test_accentuation():
    v, a = emotion_from_states("happy", 3, accent=True)
    assert torch.allclose(v, torch.ones(3)) and torch.allclose(a, torch.full((3,), 1.0))  # 1.275, 1.125 clamped
    v, a = emotion_from_states("sad", 3, accent=True)
    assert torch.allclose(v, torch.full((3,), -1.0)) and torch.allclose(a, torch.full((3,), -0.525))
    assert torch.equal(accentuate(torch.zeros(2), torch.zeros(2))[0], torch.zeros(2))  # neutral stays neutral


def test_csv_by_time_and_by_frame(tmp_path):
    csv = tmp_path / "va.csv"
    csv.write_text("time,valence,arousal\n1.0,1.0,-0.5\n0.0,0.0,0.5\n2.0,-1,0\n")  # unsorted rows, sparse
    v, a = read_emotion_csv(csv, 60)
    assert v.shape == (60,)
    assert v[0] == 0 and v[25] == 1 and v[50] == -1 and v[59] == -1  # held after the last row
    assert v[10] == pytest.approx(0.4) and a[10] == pytest.approx(0.5 - 0.4)  # linear between rows
    assert v[30] == pytest.approx(1 - 2 * 5 / 25)
    csv.write_text("frame,valence,arousal\n4,0.5,0.5\n8,-0.5,0.1\n")
    v, a = read_emotion_csv(csv, 10, accent=True)
    assert v[0] == pytest.approx(0.75) and v[6] == 0 and v[9] == pytest.approx(-0.75) and a[9] == pytest.approx(0.15)
    assert torch.equal(emotion_streams(10, "sad", csv, accent=True)[0], v)  # the CSV wins over the states
    csv.write_text("time,valence\n0,0\n")
    with pytest.raises(ValueError, match="header"):
        read_emotion_csv(csv, 5)
    csv.write_text("time,valence,arousal\n0,1.5,0\n")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        read_emotion_csv(csv, 5)
    csv.write_text("time,valence,arousal\n0,x,0\n")
    with pytest.raises(ValueError, match="not a number"):
        read_emotion_csv(csv, 5)
    with pytest.raises(FileNotFoundError):
        read_emotion_csv(tmp_path / "nope.csv", 5)


def test_emotion_files_from_a_user_detector(tmp_path, capsys):
    frames = [np.full((7, 8, 8, 3), 200, np.uint8), np.zeros((3, 8, 8, 3), np.uint8)]
    landmarks = np.random.RandomState(0).rand(10, 68, 2).astype(np.float32) * 64
    out = compute_emotions(frames, brightness_detector, landmarks, batch_size=4)
    assert out["valence"].shape == (10,) and out["scores"].shape == (10, 2) and out["labels"].dtype == torch.int64
    assert out["valence"][0] == pytest.approx(2 * 200 / 255 - 1) and out["valence"][9] == -1
    assert out["labels"].tolist() == [1] * 7 + [0] * 3
    path = save_emotions(out, tmp_path / "emotions" / "x.pt")
    back = load_emotions(path)
    assert all(torch.equal(back[k], out[k]) for k in out)
    no_labels = compute_emotions(frames, lambda f, l: {"valence": np.zeros(len(f)), "arousal": np.zeros(len(f))})
    assert no_labels["labels"].eq(-1).all() and no_labels["scores"].shape == (10, 0)
    with pytest.raises(ValueError, match="valence"):
        compute_emotions(frames, lambda f, l: {"arousal": np.zeros(len(f))})
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        compute_emotions(frames, lambda f, l: {"valence": np.full(len(f), 2.0), "arousal": np.zeros(len(f))})
    assert load_detector("test_emotion:brightness_detector") is brightness_detector

    # the same through `keysync precompute emotions` on a clip with precomputed landmarks
    root = tmp_path / "data"
    video = root / "video_crop" / "spk" / "c.mp4"
    video.parent.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=32x32:rate=25", "-frames:v", "12", "-pix_fmt", "yuv420p", str(video)], check=True)
    layout = ArtefactLayout(root)
    layout.landmarks(Path("spk/c")).parent.mkdir(parents=True)
    np.save(layout.landmarks(Path("spk/c")), np.random.RandomState(1).rand(12, 68, 2).astype(np.float32) * 32)
    assert cli_main(["precompute", "emotions", str(root / "video_crop"), "--detector",
                     "test_emotion:brightness_detector", "--batch-size", "5"]) == 0
    assert "1 written" in capsys.readouterr().out
    written = load_emotions(layout.emotions(Path("spk/c")))
    assert written["valence"].shape == (12,) and (written["arousal"] > 0).all()
