"""Masks from landmarks: bit-exact against the reference vectors (reference README §8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_reference, load_reference_json
from keysync.face.masks import (MASK_KINDS, box_masks, build_masks, downsample_masks, face_contour_masks,
                                full_masks, heart_masks, mouth_masks, scale_landmarks)

import cv2

REF = "masks.safetensors"
SIZE = (512, 512)


@pytest.fixture(scope="module")
def ref():
    return load_reference(REF)


@pytest.fixture(scope="module")
def landmarks(ref):
    return ref["landmarks"].numpy()


def test_manifest_matches_file(ref):
    manifest = load_reference_json("masks_manifest.json")
    assert manifest["frame_size"] == [512, 512]
    for key, meta in manifest["tensors"].items():
        assert list(ref[key].shape) == meta["shape"], key


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_full_resolution_masks_bit_exact(ref, landmarks, kind):
    got = build_masks(landmarks, SIZE, kind)
    expected = ref[f"du_{kind}"].numpy()
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert np.array_equal(got, expected), f"{kind}: {(got != expected).sum()} pixels differ"


@pytest.mark.parametrize("source", ["ds_load_landmarks", "pipeline_load_landmarks"])
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_latent_masks_bit_exact(ref, landmarks, kind, source):
    expected = ref[f"{source}_{kind}_64"]
    lm = landmarks if source.startswith("ds") else scale_landmarks(landmarks, SIZE, SIZE, to_int=True)
    got = build_masks(lm, SIZE, kind, latent_size=(64, 64))
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got, expected)


def test_box_bbox(ref, landmarks):
    m = box_masks(landmarks, SIZE)
    boxes = [[xs.min(), ys.min(), xs.max(), ys.max()] for ys, xs in (np.nonzero(f) for f in m)]
    assert np.array_equal(np.array(boxes), ref["du_box_bbox_from_mask_xyxy"].numpy())


def _cv2_quad(size, xl, xr, top, bottom):
    """The reference's rasterisation: a filled int32 quadrilateral drawn with OpenCV."""
    out = np.zeros(size, np.uint8)
    c = np.array([[[xl, top], [xl, bottom], [xr, bottom], [xr, top]]]).astype(np.int32)
    cv2.drawContours(out, [c], -1, color=1, thickness=cv2.FILLED)
    return out


@pytest.mark.parametrize("size", [(360, 640), (640, 360), (97, 131)])
def test_box_and_mouth_any_frame_size(size):
    """Rectangles equal OpenCV's filled contour at other sizes, including boxes past the edges."""
    rng = np.random.default_rng(1)
    h, w = size
    for _ in range(200):
        lm = rng.uniform(-0.2, 1.2, (68, 2)) * [w, h]
        xl, xr = lm[:, 0].min(), lm[:, 0].max()
        assert np.array_equal(box_masks(lm, size)[0], _cv2_quad(size, xl, xr, lm[28, 1], h))
        e = int(0.01 * w)
        low = min(h, lm[:, 1].max() + e)
        assert np.array_equal(mouth_masks(lm, size)[0], _cv2_quad(size, xl, xr, lm[28, 1] - e, low))


def test_heart_matches_reference_rasterisation_inside_frame():
    """Heart = box from y(29) down minus the nose rectangle, as OpenCV draws it in the reference."""
    rng = np.random.default_rng(2)
    h, w = 300, 420
    for _ in range(100):
        lm = rng.uniform(0.05, 0.95, (68, 2)) * [w, h]
        cut = int(lm[29, 1])
        xl, xr = lm[:, 0].min(), lm[:, 0].max()
        keep = np.ones((h, w), np.uint8)
        pts = np.int32([[xl, cut], [xl, h], [xr, cut], [xr, h], [xl, cut], [xr, cut], [xl, h], [xr, h]])
        cv2.drawContours(keep, [pts], -1, color=0, thickness=cv2.FILLED)
        d = abs(lm[2, 0] - lm[29, 0]) * 0.1
        nose = np.zeros((h, w), np.uint8)
        cv2.rectangle(nose, (int(lm[31, 0] - d), cut), (int(lm[35, 0] + d), int(lm[33, 1])), 1, cv2.FILLED)
        expected = ((1 - keep) & (1 - nose)).astype(np.uint8)
        assert np.array_equal(heart_masks(lm, (h, w))[0], expected)


def test_heart_nose_outside_box_is_kept_not_255():
    """The reference wraps 1 - 2 to 255 (uint8) where the nose box leaves the face box; we keep 0."""
    lm = np.tile(np.array([[200.0, 200.0]]), (68, 1))
    lm[0, 0], lm[16, 0] = 100, 300
    lm[29] = [200, 150]
    lm[31, 0], lm[35, 0] = 20, 380  # nose rectangle wider than the face box
    lm[33, 1] = 180
    m = heart_masks(lm, (256, 400))[0]
    assert set(np.unique(m)) <= {0, 1}


def test_full_mask_offsets():
    lm = np.zeros((1, 68, 2))
    lm[0, 28, 1] = 100.2
    m = full_masks(lm, (200, 50))
    assert m[0, :101].sum() == 0 and m[0, 101:].all()
    m = full_masks(lm, (200, 50), offset=-0.01)  # -int(0.01*200) = -2 rows
    assert m[0, :99].sum() == 0 and m[0, 99:].all()


def test_face_contour_expands_outwards():
    rng = np.random.default_rng(3)
    t = np.linspace(0.1, np.pi - 0.1, 13)
    lm = np.zeros((68, 2))
    lm[2:15] = np.stack([150 + 80 * np.cos(t), 120 + 90 * np.sin(t)], 1) + rng.normal(0, 1, (13, 2))
    small = face_contour_masks(lm, (256, 300), mask_expand=0)[0]
    big = face_contour_masks(lm, (256, 300))[0]
    assert small.sum() > 1000 and big.sum() > small.sum()
    assert np.all(big[small == 1] == 1)


def test_downsample_is_top_left_nearest():
    rng = np.random.default_rng(4)
    m = (rng.random((2, 512, 512)) > 0.5).astype(np.uint8)
    d = downsample_masks(m, (64, 64))
    assert d.shape == (2, 1, 64, 64) and d.dtype == torch.float32
    assert np.array_equal(d[:, 0].numpy(), m[:, ::8, ::8].astype(np.float32))
    # any size, including non-square frames
    assert downsample_masks(m[:, :360], (45, 64)).shape == (2, 1, 45, 64)


def test_scale_landmarks_and_errors():
    lm = np.array([[[100.7, 50.2]] * 68])
    s = scale_landmarks(lm, (360, 640), (512, 512), to_int=True)
    assert s[0, 0].tolist() == [int(100.7 * 512 / 640), int(50.2 * 512 / 360)]
    with pytest.raises(ValueError):
        build_masks(lm, (64, 64), "ellipse")
    with pytest.raises(ValueError):
        box_masks(np.zeros((5, 2)), (64, 64))


@pytest.mark.parametrize("key,kind,kwargs", [
    ("mask_face_mask_box_pose_big", "box", {"nose_index": 33}),
    ("mask_face_mask_box_pose_big_cover_nose", "box", {"nose_index": 29}),
    ("mask_face_mask_cheeks", "heart", {}),
])
def test_unused_mask_helpers_are_inverted_kinds(ref, landmarks, key, kind, kwargs):
    """Some sgm/data/mask.py helpers (0 = regenerate, landmark set 0 only) are our kinds inverted."""
    expected = 1 - ref[key].numpy()
    assert np.array_equal(build_masks(landmarks[:1], SIZE, kind, **kwargs), expected)
