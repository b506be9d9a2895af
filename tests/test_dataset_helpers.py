"""Dataset helpers against the reference vectors (reference README §9: dataset_helpers.*)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from conftest import load_reference, load_reference_json, max_abs_err
from keysync.data.helpers import (convert_indexes_25_to_60, crop_geometry, crop_landmarks, ensure_shape,
                                  get_frame_indices, min_video_frames, normalize_latents, scale_and_crop,
                                  trim_pad_audio, window_audio_features)

REF = load_reference_json("dataset_helpers.json")
TENSORS = load_reference("dataset_helpers.safetensors")

CASES = [(mode, case) for mode, cases in REF["get_frame_indices"]["results"].items() for case in cases]


@pytest.mark.parametrize("mode,case", CASES, ids=[f"{m.split('(')[0]}-{c['total_video_frames']}-{i}"
                                                  for i, (m, c) in enumerate(CASES)])
def test_get_frame_indices_matches_reference(mode, case):
    skip = 12 if mode.startswith("keyframe") else 0
    kwargs = dict(num_frames=REF["get_frame_indices"]["num_frames"], skip_frames=skip,
                  start_idx=case.get("start_idx", 0), select_randomly=case.get("select_randomly", False))
    if "python_random_seed" in case:
        random.seed(case["python_random_seed"])
    else:
        np.random.seed(case["np_random_seed"])
    if isinstance(case["indexes"], str):
        with pytest.raises(ValueError, match="Not enough frames"):
            get_frame_indices(case["total_video_frames"], **kwargs)
    else:
        assert get_frame_indices(case["total_video_frames"], **kwargs) == case["indexes"]


def test_get_frame_indices_with_own_generators():
    # a RandomState seeded like np.random.seed gives the same draw (what the dataset uses)
    case = REF["get_frame_indices"]["results"]["keyframe_train(skip_frames=12)"][2]
    rng = np.random.RandomState(case["np_random_seed"])
    assert get_frame_indices(case["total_video_frames"], 14, 12, rng=rng) == case["indexes"]
    sel = REF["get_frame_indices"]["results"]["keyframe_train(skip_frames=12)"][5]
    assert get_frame_indices(60, 14, 12, select_randomly=True, py_rng=random.Random(5)) == sel["indexes"]


def test_min_video_frames_is_the_reference_limit():
    assert min_video_frames(14, 12) == 171 and min_video_frames(14, 0) == 15
    np.random.seed(0)
    get_frame_indices(171, 14, 12)  # shortest accepted
    with pytest.raises(ValueError):
        get_frame_indices(170, 14, 12)
    with pytest.raises(ValueError):
        get_frame_indices(14, 14, 0)
    get_frame_indices(15, 14, 0)


def test_convert_indexes_25_to_60():
    ref = REF["convert_indexes_25_to_60"]
    assert convert_indexes_25_to_60(ref["input"]) == ref["output"]


def test_audio_window():
    idx = TENSORS["audio_emb_window_indexes"].tolist()
    out = window_audio_features(TENSORS["audio_emb_full_demo"], idx)
    assert torch.equal(out, TENSORS["audio_emb_window_demo"])
    with pytest.raises(IndexError):
        window_audio_features(TENSORS["audio_emb_full_demo"], [0, 200])


def test_ensure_shape_and_trim_pad():
    chunks = [TENSORS[f"ensure_shape_in_{n}"] for n in (637, 640, 644)]
    assert torch.equal(ensure_shape(chunks, 640), TENSORS["ensure_shape_out"])
    with pytest.raises(ValueError):
        ensure_shape([torch.zeros(1, 600)], 640)
    x = TENSORS["trim_pad_audio_in"]
    assert torch.equal(trim_pad_audio(x, 16000, max_len_raw=1200), TENSORS["trim_pad_audio_out_len1200"])
    assert torch.equal(trim_pad_audio(x, 16000, max_len_raw=800), TENSORS["trim_pad_audio_out_len800"])
    assert torch.equal(trim_pad_audio(x, 16000, max_len_sec=0.05), TENSORS["trim_pad_audio_out_len800"])


@pytest.mark.parametrize("name", ["", "_portrait"])
def test_scale_and_crop(name):
    out = scale_and_crop(TENSORS[f"scale_and_crop_in{name}"], 32)
    assert max_abs_err(out, TENSORS[f"scale_and_crop_out{name}_resize32"]) < 1e-5
    assert torch.equal(scale_and_crop(TENSORS["scale_and_crop_in"], None), TENSORS["scale_and_crop_in"])


def test_crop_landmarks_follow_the_pixel_crop():
    # a point drawn into a landscape frame lands where scale_and_crop puts its pixel
    h, w, r = 48, 64, 32
    img = torch.zeros(1, 1, h, w)
    img[..., 20:24, 40:44] = 1.0
    out = scale_and_crop(img, r)[0, 0]
    ys, xs = torch.nonzero(out > 0.5, as_tuple=True)
    pt = crop_landmarks(np.array([[42.0, 22.0]]), h, w, r)[0]
    assert abs(pt[0] - xs.float().mean().item() - 0.5) < 1.0 and abs(pt[1] - ys.float().mean().item() - 0.5) < 1.0
    assert crop_geometry(h, w, r) == (r / h, 32, 43, 0, 5)


def test_normalize_latents():
    lat = torch.randn(4, 14, 8, 8)
    assert normalize_latents(lat) is lat  # reference configs: data_mean null
    out = normalize_latents(lat, [1, 1, 1, 1], [2, 2, 2, 2])
    assert torch.allclose(out, (lat - 1) / 2 * 0.5)
    with pytest.raises(ValueError):
        normalize_latents(lat, [0, 0, 0, 0], None)
