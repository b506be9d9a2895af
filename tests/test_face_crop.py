"""Face crop and paste-back at the original resolution (geometry tested without models; the
astronaut round trips use the offline MediaPipe landmarks)."""

from __future__ import annotations

import numpy as np
import pytest

import cv2

from keysync.face.crop import (crop_faces, crop_masks, crop_matrix, face_boxes, invert_affine,  # noqa: E402
                               plan_crops, smooth_boxes, transform_points, warp_affine)
from keysync.face.masks import build_masks  # noqa: E402
from keysync.face.paste import feather_alpha, paste_back, paste_back_clip  # noqa: E402
from keysync.face.synthetic import jitter_clip, place_on_canvas  # noqa: E402


def synthetic_face(cx=100.0, cy=80.0, width=60.0):
    """68 points with plausible iBUG geometry around (cx, cy)."""
    pts = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    pts[0:17] = np.stack([cx + width / 2 * np.cos(t), cy + 0.7 * width * np.sin(np.pi - t) * 0.9], 1)
    pts[17:27] = np.stack([np.linspace(cx - 0.4 * width, cx + 0.4 * width, 10), np.full(10, cy - 0.35 * width)], 1)
    pts[27:36] = np.stack([np.full(9, cx), np.linspace(cy - 0.25 * width, cy + 0.1 * width, 9)], 1)
    eye = np.stack([np.cos(np.linspace(0, 2 * np.pi, 6, endpoint=False)), np.sin(np.linspace(0, 2 * np.pi, 6, endpoint=False))], 1)
    pts[36:42] = [cx - 0.2 * width, cy - 0.2 * width] + 5 * eye
    pts[42:48] = [cx + 0.2 * width, cy - 0.2 * width] + 5 * eye
    mouth = np.stack([np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)), np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False))], 1)
    pts[48:68] = [cx, cy + 0.3 * width] + [0.2 * width, 0.05 * width] * mouth
    return pts


def test_crop_matrix_geometry():
    # a box equal to the whole (square) frame is the identity
    m = crop_matrix(((512 - 1) / 2, (512 - 1) / 2, 512), 512)
    assert np.allclose(m, [[1, 0, 0], [0, 1, 0]])
    m = crop_matrix((200.0, 150.0, 256.0), 512)
    assert np.allclose(transform_points(np.array([200.0, 150.0]), m), [255.5, 255.5])
    assert np.allclose(transform_points(np.array([72.0, 22.0]), m), [-0.5, -0.5])  # box corner
    back = transform_points(transform_points(np.array([[10.0, 20.0]]), m), invert_affine(m))
    assert np.allclose(back, [[10, 20]])


def test_boxes_do_not_zoom_when_the_mouth_opens():
    closed = synthetic_face()
    opened = closed.copy()
    opened[48:68, 1] += np.where(np.arange(20) % 2 == 0, 0.0, 6.0)  # lips apart
    opened[5:12, 1] += 8.0  # jaw drops
    b = face_boxes(np.stack([closed, opened]))
    assert np.allclose(b[0], b[1])
    moved = face_boxes(closed + [30.0, -10.0])[0]
    assert np.allclose(moved - b[0], [30, -10, 0])


def test_smooth_boxes_reduce_jitter():
    rng = np.random.default_rng(0)
    boxes = np.array([100.0, 100.0, 200.0]) + rng.normal(0, 2, (50, 3))
    assert smooth_boxes(boxes, 3.0).std(0).max() < 0.5 * boxes.std(0).min()


def test_warp_affine_strong_downscale_has_no_aliasing():
    stripes = np.zeros((400, 400), np.float32)
    stripes[:, ::2] = 255.0  # one-pixel stripes: mean 127.5
    m = crop_matrix((199.5, 199.5, 400.0), 64)  # shrink 6.25×
    small = warp_affine(stripes, m, (64, 64))
    assert abs(small[8:-8, 8:-8].mean() - 127.5) < 3 and small[8:-8, 8:-8].std() < 5


def test_crop_pads_faces_at_the_border_and_non_square_frames():
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, :, 0] = np.arange(160, dtype=np.uint8)[None, :]
    frame[:, :, 1] = np.arange(90, dtype=np.uint8)[:, None]
    box = np.array([[5.0, 5.0, 60.0]])  # centre near the top-left corner
    crop = crop_faces(frame[None], box, 64)
    assert crop.shape == (1, 64, 64, 3) and crop.dtype == np.uint8
    assert crop[0, :20, :20, 0].max() == 0 and crop[0, :20, :20, 1].max() == 0  # replicated corner
    black = crop_faces(frame[None], box, 64, border="constant")
    assert black[0, 0, 0].tolist() == [0, 0, 0]
    occ = np.zeros((1, 90, 160), np.uint8)
    occ[0, 10:30, 10:30] = 7
    cm = crop_masks(occ, box, 64)
    assert set(np.unique(cm)) == {0, 1} and cm.shape == (1, 64, 64)


def test_feather_alpha():
    region = np.zeros((60, 60), np.uint8)
    region[10:50, 20:60] = 1  # touches the right edge
    a = feather_alpha(region, 8.0, open_sides=(False, False, False, True))
    assert np.all(a[region == 0] == 0) and np.all(a[region == 1] > 0)
    assert a[30, 59] == 1.0  # open side: no ramp
    assert a[30, 21] < 0.3 and a[11, 40] < 0.3 and a[30, 40] == 1.0
    assert np.array_equal(feather_alpha(region, 0.5), region.astype(np.float32))


@pytest.fixture(scope="module")
def astronaut_clip():
    import skimage.data as skdata
    from keysync.face.landmarks import create_backend, extract_landmarks

    clip, _ = jitter_clip(skdata.astronaut(), num_frames=6, max_shift=6, max_scale=0.05, seed=5)
    with create_backend("mediapipe") as be:
        track = extract_landmarks(clip, be, progress=False)
    return clip, track


def _round_trip(frames, points, **kwargs):
    plan = plan_crops(points, frames.shape[1:3], **kwargs)
    crops = plan.crop(frames)
    masks = build_masks(plan.to_crop(points), (512, 512), "box")
    out = np.stack(list(paste_back_clip(frames, crops, plan.boxes, masks)))
    return plan, crops, masks, out


def _region_in_frame(plan, masks, i, shape):
    """The mask's pixels in frame coordinates (where paste-back is allowed to write)."""
    m = invert_affine(plan.matrix(i))
    return warp_affine(masks[i].astype(np.float32), m, (shape[1], shape[0]), "linear", "constant", antialias=0) > 0.5


def test_round_trip_of_an_unmodified_crop(astronaut_clip):
    frames, track = astronaut_clip
    plan, crops, masks, out = _round_trip(frames, track.points)
    assert crops.shape == (6, 512, 512, 3)
    for i in range(len(frames)):
        inside = _region_in_frame(plan, masks, i, frames.shape[1:3])
        diff = np.abs(out[i].astype(int) - frames[i].astype(int))
        assert inside.sum() > 5000
        assert diff[inside].max() <= 1
        assert np.array_equal(out[i][~inside], frames[i][~inside])


def test_paste_changes_only_the_mask(astronaut_clip):
    frames, track = astronaut_clip
    plan = plan_crops(track.points, frames.shape[1:3])
    crops = plan.crop(frames[:1])
    masks = build_masks(plan.to_crop(track.points[:1]), (512, 512), "box")
    edited = crops[0].copy()
    edited[:, :, 1] = 255  # paint the whole crop green
    for mode in ("delta", "replace"):
        out = paste_back(frames[0], edited, plan.boxes[0], masks[0], mode=mode)
        inside = _region_in_frame(plan, masks, 0, frames.shape[1:3])
        assert np.array_equal(out[~inside], frames[0][~inside])
        deep = cv2.erode(inside.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
        assert out[deep][:, 1].min() >= 250  # fully replaced well inside the mask
    # "replace" of an unmodified crop differs only by resampling
    out = paste_back(frames[0], crops[0], plan.boxes[0], masks[0], mode="replace")
    assert np.abs(out.astype(int) - frames[0]).mean() < 1.0


@pytest.mark.parametrize("canvas,top_left", [((360, 640), (300, -60)), ((640, 360), (-200, 250)), ((400, 720), (-150, 0))])
def test_round_trip_near_the_border_of_non_square_frames(astronaut_clip, canvas, top_left):
    """The face sits at an edge (the box leaves the frame and is padded); size and bytes outside
    the mask are kept."""
    frames, track = astronaut_clip
    moved = np.stack([place_on_canvas(f, canvas, top_left) for f in frames[:3]])
    points = track.points[:3] + np.array(top_left, dtype=np.float32)
    plan, crops, masks, out = _round_trip(moved, points)
    assert out.shape == moved.shape
    b = plan.boxes
    leaves = (b[:, 0] - b[:, 2] / 2 < 0) | (b[:, 1] - b[:, 2] / 2 < 0) | \
             (b[:, 0] + b[:, 2] / 2 > canvas[1]) | (b[:, 1] + b[:, 2] / 2 > canvas[0])
    assert leaves.all()
    for i in range(3):
        inside = _region_in_frame(plan, masks, i, canvas)
        assert np.abs(out[i].astype(int) - moved[i])[inside].max() <= 1
        assert np.array_equal(out[i][~inside], moved[i][~inside])


def test_crop_landmarks_round_trip(astronaut_clip):
    frames, track = astronaut_clip
    plan = plan_crops(track.points, frames.shape[1:3])
    in_crop = plan.to_crop(track.points)
    assert np.allclose(plan.to_frame(in_crop), track.points, atol=1e-3)
    # the face fills a sensible part of the 512 crop
    width = in_crop[:, 16, 0] - in_crop[:, 0, 0]
    assert np.all((width > 150) & (width < 350))
