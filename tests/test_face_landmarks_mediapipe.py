"""Offline landmark backend (MediaPipe Face Mesh → iBUG-68) on a real face, no download."""

from __future__ import annotations

import numpy as np
import pytest

import skimage.data as skdata

from keysync.face.backend_mediapipe import MESH_TO_IBUG68, MediaPipeBackend, mesh_to_ibug68  # noqa: E402
from keysync.face.crop import transform_points  # noqa: E402
from keysync.face.landmarks import NoFaceFoundError, create_backend, extract_landmarks  # noqa: E402
from keysync.face.synthetic import jitter_clip, place_on_canvas  # noqa: E402

# astronaut(): the face spans about x 175..275, y 75..185 (512×512 image)
FACE_REGION = (165, 60, 290, 200)


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def backend():
    be = create_backend("mediapipe")
    yield be
    be.close()


def inside(points, region):
    x0, y0, x1, y1 = region
    return bool(np.all((points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)))


def test_map_is_a_valid_68_point_layout():
    assert len(MESH_TO_IBUG68) == 68
    mesh = np.arange(468 * 2, dtype=np.float32).reshape(468, 2)
    assert mesh_to_ibug68(mesh).shape == (68, 2)


def test_astronaut_68_points_in_face(astronaut, backend):
    track = extract_landmarks(astronaut[None], backend, progress=False)
    pts = track.points[0]
    assert pts.shape == (68, 2) and track.found.all() and track.confidence[0] > 0
    assert inside(pts[48:68], FACE_REGION), "mouth outside the face"
    assert inside(pts[0:17], FACE_REGION), "jaw outside the face"
    # anatomy: brows above eyes above nose tip above mouth above chin; left jaw left of right jaw
    brows, eyes, nose, mouth, chin = pts[17:27, 1].mean(), pts[36:48, 1].mean(), pts[30, 1], pts[48:68, 1].mean(), pts[8, 1]
    assert brows < eyes < nose < mouth < chin
    assert pts[0, 0] < pts[8, 0] < pts[16, 0] and pts[36, 0] < pts[45, 0] and pts[48, 0] < pts[54, 0]
    # the mouth is ~ 45 px wide in this image
    assert 30 < pts[54, 0] - pts[48, 0] < 60


def test_landmarks_follow_a_moving_face(astronaut, backend):
    clip, mats = jitter_clip(astronaut, num_frames=8, max_shift=10, max_scale=0.06, seed=3)
    track = extract_landmarks(clip, backend, batch_size=3, smooth_sigma=0, progress=False)
    assert track.points.shape == (8, 68, 2) and track.found.all()
    ref = track.points[0]  # frame 0 is the untouched image
    iod = np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0))
    for i in range(1, 8):
        expected = transform_points(ref, mats[i])
        err = np.linalg.norm(track.points[i] - expected, axis=1)
        assert err[48:68].mean() < 0.08 * iod, f"frame {i}: mouth off by {err[48:68].mean():.1f} px"
        assert err[0:17].mean() < 0.15 * iod, f"frame {i}: jaw off by {err[0:17].mean():.1f} px"
        x0, y0, x1, y1 = FACE_REGION
        region = transform_points(np.array([[x0, y0], [x1, y1]], float), mats[i]).ravel()
        assert inside(track.points[i][np.r_[0:17, 48:68]], region)


def test_frame_without_face_is_filled_and_flagged(astronaut, backend):
    clip, _ = jitter_clip(astronaut, num_frames=5, max_shift=4, seed=1)
    clip[2] = 90  # a flat grey frame: no face
    track = extract_landmarks(clip, backend, smooth_sigma=0, progress=False)
    assert track.found.tolist() == [True, True, False, True, True]
    assert track.confidence[2] == 0 and np.isfinite(track.points).all()
    assert np.allclose(track.points[2], (track.points[1] + track.points[3]) / 2, atol=1e-3)


def test_clip_without_any_face_raises(backend):
    with pytest.raises(NoFaceFoundError):
        extract_landmarks(np.full((3, 128, 160, 3), 90, np.uint8), backend, progress=False)


def test_main_face_kept_among_several(astronaut, backend):
    import cv2

    frame = np.full((512, 1024, 3), 128, np.uint8)
    frame[:, :512] = astronaut
    frame[100:460, 600:960] = cv2.resize(astronaut, (360, 360))  # a second, smaller face
    track = extract_landmarks(np.stack([frame] * 2), backend, progress=False)
    assert track.num_faces.tolist() == [2, 2]
    assert inside(track.points[0][48:68], FACE_REGION)


@pytest.mark.parametrize("canvas,top_left", [((720, 1280), (700, 100)), ((1080, 1920), (1300, 500))])
def test_small_face_in_a_large_non_square_frame(astronaut, canvas, top_left):
    """MediaPipe's mesh alone misses these faces (~100 px); the full-range detector finds them."""
    frame = place_on_canvas(astronaut, canvas, top_left)
    be = MediaPipeBackend(static_image_mode=True)
    try:
        track = extract_landmarks(frame[None], be, progress=False)
    finally:
        be.close()
    x0, y0, x1, y1 = FACE_REGION
    assert track.found.all()
    dx, dy = top_left
    assert inside(track.points[0][np.r_[0:17, 48:68]], (x0 + dx, y0 + dy, x1 + dx, y1 + dy))


def test_tracking_mode_on_a_slowly_moving_clip(astronaut):
    clip, mats = jitter_clip(astronaut, num_frames=6, max_shift=3, max_scale=0.02, seed=7)
    with MediaPipeBackend(static_image_mode=False) as be:
        track = extract_landmarks(clip, be, smooth_sigma=0, progress=False)
        again = extract_landmarks(clip[:2], be, smooth_sigma=0, progress=False)  # reset between clips
    assert track.found.all() and again.found.all()
    for i in range(6):
        err = np.linalg.norm(track.points[i] - transform_points(track.points[0], mats[i]), axis=1)
        assert err[48:68].mean() < 3.0
