"""Occlusion: M · (1 − M_occluder) on synthetic masks, and the SAM 2 video predictor (a small
random-weight model from the sam2 package's own config) on a non-square clip."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from keysync.face.occlusion import apply_occlusion, resize_masks_nearest


def test_apply_occlusion_keeps_occluded_pixels():
    m = np.zeros((2, 8, 8), np.uint8)
    m[:, 4:, 1:7] = 1
    occ = np.zeros((2, 8, 8), bool)
    occ[0, 5:7, 2:4] = True
    out = apply_occlusion(m, occ)
    assert out.dtype == np.uint8
    assert out[0, 5:7, 2:4].sum() == 0 and out[0].sum() == m[0].sum() - 4
    assert np.array_equal(out[1], m[1])
    # never adds pixels to the mask
    assert np.all(out <= m)


def test_apply_occlusion_latent_tensor_and_resize():
    latent = torch.zeros(3, 1, 64, 64)
    latent[:, :, 32:, 10:54] = 1
    occ = np.zeros((3, 512, 512), np.uint8)
    occ[1, 300:400, 100:200] = 255  # any non-zero value is an occluder
    with pytest.raises(ValueError, match="resize=True"):
        apply_occlusion(latent, occ)
    out = apply_occlusion(latent, occ, resize=True)
    assert out.shape == latent.shape and out.dtype == torch.float32
    assert torch.equal(out[0], latent[0]) and torch.equal(out[2], latent[2])
    small = resize_masks_nearest(occ, (64, 64))
    assert small.dtype == np.uint8 and np.array_equal(small, occ[:, ::8, ::8])  # top-left nearest, as the reference
    assert out[1, 0][small[1] != 0].sum() == 0
    assert out[1].sum() == latent[1].sum() - (small[1][32:, 10:54] != 0).sum()


# ---- SAM 2 --------------------------------------------------------------------------------
from keysync.face.occlusion import SAM2Occluder, build_sam2_video_predictor  # noqa: E402

TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_sam2_video_predictor(TINY, None, image_size=128, allow_random_weights=True)


def test_refuses_random_weights_by_default(tmp_path):
    with pytest.raises(ValueError, match="checkpoint is required"):
        build_sam2_video_predictor(TINY, None)
    with pytest.raises(FileNotFoundError):
        build_sam2_video_predictor(tmp_path / "nope.yaml", None, allow_random_weights=True)
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"not_a_key": torch.zeros(1)}}, bad)
    with pytest.raises(RuntimeError, match="does not match"):
        build_sam2_video_predictor(TINY, bad, image_size=128)


def test_loads_a_local_checkpoint(tmp_path, predictor):
    ckpt = tmp_path / "sam2_tiny_random.pt"
    torch.save({"model": predictor.state_dict()}, ckpt)
    again = build_sam2_video_predictor(TINY, ckpt, image_size=128)
    k = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    assert torch.equal(again.state_dict()[k], predictor.state_dict()[k])


def test_sam2_occlusion_on_a_non_square_clip(predictor):
    import skimage.data as skdata
    import cv2

    img = skdata.astronaut()
    frames = np.stack([cv2.resize(np.roll(img, 4 * i, axis=1), (320, 200)) for i in range(3)])
    occ = SAM2Occluder(predictor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing _C extension only skips hole filling
        res = occ.segment(frames, [(150, 120), (170, 130)], prompt_frame=1, progress=False)
    assert res.masks.shape == (3, 200, 320) and res.masks.dtype == np.uint8
    assert res.covered.all(), "frames before the prompt frame must be propagated too"
    assert set(np.unique(res.masks)) <= {0, 1}
    # combined with a lower-face box mask at frame resolution and at latent resolution
    box = np.zeros((3, 200, 320), np.uint8)
    box[:, 100:, 80:240] = 1
    combined = apply_occlusion(box, res.masks)
    assert np.array_equal(combined, box * (1 - res.masks))
    assert apply_occlusion(torch.from_numpy(box[:, None]).float(), res.masks).shape == (3, 1, 200, 320)

    # masks can be mapped into the face crops on the fly (no full-resolution clip kept)
    from keysync.face.crop import crop_masks

    boxes = np.array([[160.0, 100.0, 180.0]] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cropped = occ.segment(frames, [(150, 120)], prompt_frame=2, progress=False,
                              postprocess=lambda i, m: crop_masks(m[None], boxes[i:i + 1], 64)[0])
    assert cropped.masks.shape == (3, 64, 64) and cropped.covered.all()


def test_sam2_prompt_validation(predictor):
    occ = SAM2Occluder(predictor)
    frames = np.zeros((2, 40, 60, 3), np.uint8)
    with pytest.raises(ValueError, match="prompt_frame"):
        occ.segment(frames, [(1, 1)], prompt_frame=2)
    with pytest.raises(ValueError, match="point"):
        occ.segment(frames, [], prompt_frame=0)
    with pytest.raises(ValueError, match="labels"):
        occ.segment(frames, [(1, 1)], labels=[1, 0])
