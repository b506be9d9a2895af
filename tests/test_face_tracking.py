"""Landmark post-processing without a model: main-face tracking, gap filling, smoothing,
and :func:`extract_landmarks` driven by a scripted backend."""

from __future__ import annotations

import numpy as np
import pytest

from keysync.face.landmarks import LandmarkBackend, LandmarkTrack, create_backend, extract_landmarks
from keysync.face.tracking import (FaceCandidate, MainFaceTracker, NoFaceFoundError, box_iou,
                                   fill_missing, gaussian_smooth)


def face_at(cx, cy, size, score=1.0):
    """A 68-point 'face': points spread over a square of ``size`` centred on (cx, cy)."""
    g = np.linspace(-0.5, 0.5, 68)
    pts = np.stack([cx + size * g, cy + size * np.sin(7 * g) / 2], 1)
    return FaceCandidate(points=pts, score=score, box=[cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])


class ScriptedBackend(LandmarkBackend):
    """Returns preset candidates per frame index (a stand-in detector for the interface)."""

    name = "scripted"

    def __init__(self, script):
        self.script = script
        self.i = 0
        self.resets = 0
        self.batches = []

    def reset(self):
        self.i = 0
        self.resets += 1

    def detect(self, frames):
        self.batches.append(len(frames))
        out = [self.script[self.i + k] for k in range(len(frames))]
        self.i += len(frames)
        return out


def frames(n, h=48, w=64):
    return np.zeros((n, h, w, 3), np.uint8)


def test_box_iou():
    assert box_iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 10])) == 1.0
    assert box_iou(np.array([0, 0, 10, 10]), np.array([20, 20, 30, 30])) == 0.0
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])) == pytest.approx(1 / 3)


def test_tracker_keeps_main_face():
    tr = MainFaceTracker()
    main, small = face_at(100, 100, 80), face_at(300, 100, 40)
    assert tr.update([small, main]) is main  # largest first
    bigger_elsewhere = face_at(300, 300, 150)
    moved = face_at(110, 105, 80)
    assert tr.update([bigger_elsewhere, moved]) is moved  # follows overlap, not size
    assert tr.update([bigger_elsewhere]) is None  # a far face is not the main face
    near = face_at(150, 110, 80)
    assert tr.update([near]) is near  # no overlap, but within one box size
    assert tr.update([]) is None


def test_fill_missing_interpolates_and_extends():
    pts = np.zeros((6, 68, 2), np.float32)
    found = np.array([False, True, False, False, True, False])
    pts[1], pts[4] = 10.0, 40.0
    out = fill_missing(pts, found)
    assert np.allclose(out[:, 0, 0], [10, 10, 20, 30, 40, 40])
    assert np.array_equal(out[found], pts[found])
    with pytest.raises(NoFaceFoundError, match="no face"):
        fill_missing(pts, np.zeros(6, bool))


def test_gaussian_smooth():
    x = np.full((10, 68, 2), 5.0)
    assert np.allclose(gaussian_smooth(x, 2.0), 5.0)
    rng = np.random.default_rng(0)
    noisy = rng.normal(0, 1, (200, 3))
    assert gaussian_smooth(noisy, 2.0).std() < 0.5 * noisy.std()
    assert np.array_equal(gaussian_smooth(noisy, 0), noisy.astype(np.float32))
    assert gaussian_smooth(noisy[:2], 5.0).shape == (2, 3)  # clip shorter than the kernel


def test_extract_fills_and_flags_missing_frames():
    script = [[face_at(30, 20, 20 + i)] if i != 3 else [] for i in range(7)]
    be = ScriptedBackend(script)
    track = extract_landmarks(frames(7), be, batch_size=3, smooth_sigma=0, progress=False)
    assert isinstance(track, LandmarkTrack) and len(track) == 7
    assert track.points.shape == (7, 68, 2) and track.points.dtype == np.float32
    assert track.found.tolist() == [True] * 3 + [False] + [True] * 3
    assert track.confidence[3] == 0 and track.num_missing == 1
    assert np.allclose(track.points[3], (track.points[2] + track.points[4]) / 2, atol=1e-4)
    assert be.batches == [3, 3, 1] and be.resets == 1
    assert track.frame_size == (48, 64) and track.num_faces.tolist() == [1, 1, 1, 0, 1, 1, 1]


def test_extract_keeps_tracked_main_face_and_smooths():
    rng = np.random.default_rng(1)
    script = []
    for i in range(12):
        main = face_at(40 + rng.normal(0, 1), 30 + rng.normal(0, 1), 30)
        script.append([face_at(200, 200, 60), main] if i else [main])  # a larger bystander from frame 1
    track = extract_landmarks(frames(12, 300, 300), ScriptedBackend(script), smooth_sigma=2.0, progress=False)
    centres = track.points.mean(1)
    assert np.all(np.abs(centres - [40, 30]).max(1) < 3)
    assert track.num_faces.tolist() == [1] + [2] * 11
    assert centres[:, 0].std() < track.raw_points.mean(1)[:, 0].std()


def test_extract_accepts_a_stream_of_frames_and_chunks():
    script = [[face_at(30, 20, 20)] for _ in range(5)]
    stream = [frames(1)[0], frames(2), frames(2)]  # a single frame, then chunks
    track = extract_landmarks(iter(stream), ScriptedBackend(script), batch_size=2, progress=False)
    assert len(track) == 5 and track.found.all()


def test_no_face_anywhere_is_a_clear_error():
    with pytest.raises(NoFaceFoundError, match="no face was found in any of the 4 frames"):
        extract_landmarks(frames(4), ScriptedBackend([[]] * 4), progress=False)
    track = extract_landmarks(frames(4), ScriptedBackend([[]] * 4), fill=False, progress=False)
    assert not track.found.any()


def test_bad_input_and_backend_names():
    with pytest.raises(ValueError):
        extract_landmarks(np.zeros((2, 8, 8), np.uint8), ScriptedBackend([[]] * 2), progress=False)
    with pytest.raises(ValueError, match="unknown landmark backend"):
        create_backend("dlib5")
