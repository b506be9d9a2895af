"""LipLeak: the landmark-based speaking decision and the metric on generated clips."""

from __future__ import annotations

import numpy as np
import pytest

from keysync.evaluation.lipleak import (DEFAULT_THRESHOLD, calibrate_threshold, lipleak, mouth_activity,
                                        mouth_opening, speaking_frames, write_silent_audio)
from keysync.evaluation.synthetic import face_landmarks, syllable_signal


def test_mouth_opening_is_scale_free_and_tracks_the_lips():
    speech = syllable_signal(50, seed=2)
    small, large = face_landmarks(speech, size=96), face_landmarks(speech, size=384)
    assert np.allclose(mouth_opening(small), mouth_opening(large))
    opening = mouth_opening(small)
    assert np.corrcoef(opening, speech)[0, 1] > 0.99
    closed = mouth_opening(face_landmarks(np.zeros(3)))
    assert (opening.max() - closed.max()) > 0.3  # a wide-open mouth opens by > 30% of its width


def test_speaking_decision_definition():
    # activity = range over a centred 9-frame window of the 3-frame smoothed opening
    opening = np.zeros(30)
    opening[15] = 0.3  # one isolated frame: smoothed to 0.1 on frames 14-16
    act = mouth_activity(opening)
    assert np.allclose(act[10:21], 0.1) and act[9] == 0.0 and act[21] == 0.0  # window t-4..t+4
    assert speaking_frames(face_landmarks(np.zeros(20))).sum() == 0
    assert DEFAULT_THRESHOLD == 0.08


def test_moving_mouth_under_silence_scores_high_lipleak():
    moving = face_landmarks(syllable_signal(100, seed=3), size=128, jitter=0.3)
    assert lipleak(moving) > 0.8


@pytest.mark.parametrize("openness", [0.0, 0.6])
def test_still_mouth_closed_or_open_scores_zero(openness):
    still = face_landmarks(np.full(100, openness), size=128, jitter=0.5, seed=2)
    assert lipleak(still) == 0.0


def test_threshold_missing_frames_and_calibration():
    moving = face_landmarks(syllable_signal(60, seed=5), jitter=0.3)
    assert lipleak(moving, threshold=10.0) == 0.0
    gappy = moving.copy()
    gappy[10:14] = np.nan  # no face: filled from neighbours
    assert 0.5 < lipleak(gappy) <= 1.0
    with pytest.raises(ValueError, match="no face"):
        lipleak(np.full((10, 68, 2), np.nan))
    silent = [face_landmarks(np.zeros(80), jitter=0.5, seed=s) for s in range(3)]
    thr = calibrate_threshold(silent)
    assert DEFAULT_THRESHOLD / 2 <= thr < 0.08 and lipleak(silent[0], thr) < 0.05


def test_write_silent_audio_matches_video_length(tmp_path):
    from keysync.media import read_audio, write_video

    write_video(tmp_path / "v.mp4", np.zeros((25, 32, 32, 3), np.uint8), fps=25)
    write_silent_audio(tmp_path / "v.mp4", tmp_path / "silence.wav")
    audio = read_audio(tmp_path / "silence.wav")
    assert len(audio) == 16000 and not audio.any()
