"""LipScore: auto_avsr VSR encoder, mouth-crop preprocessing and the metric, against the
reference vectors of reference/README.md §11 (avsr_tiny*.safetensors), plus sanity checks on
generated clips."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import load_reference, load_reference_json, max_abs_err, reference_path
from keysync.evaluation import mouth_crop as mc
from keysync.evaluation.avsr_encoder import AUTO_AVSR_BASE, VSREncoder, load_vsr_encoder
from keysync.evaluation.lipscore import LipScore
from keysync.evaluation.synthetic import render_face_clip, syllable_signal
from keysync.models.checkpoints import CheckpointError

ATOL_ENC = 1e-4

pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def io():
    return load_reference("avsr_tiny_io.safetensors")


@pytest.fixture(scope="module")
def encoder():
    return load_vsr_encoder(reference_path("avsr_tiny.safetensors"))


def _video(io, key):  # the reference's input convention: (T, 3, H, W) float in [0, 1]
    return io[key].permute(0, 3, 1, 2).float() / 255


# ---------------------------------------------------------------------------- encoder
def test_full_size_keys_match_published_checkpoint():
    full = load_reference_json("avsr_full_keys.json")
    with torch.device("meta"):
        model = VSREncoder(AUTO_AVSR_BASE)
    ours = {f"encoder.{k}": list(v.shape) for k, v in model.state_dict().items()}
    expected = {k: v["shape"] for k, v in full["state_dict"].items() if k.startswith("encoder.")}
    assert ours == expected
    counts = full["param_counts"]
    assert sum(p.numel() for p in model.frontend.parameters()) == counts["encoder.frontend"]
    assert sum(p.numel() for p in model.encoders.parameters()) == counts["encoder.encoders"]


def test_encoder_reproduces_reference(io, encoder):
    assert encoder.config.adim == 32 and encoder.config.elayers == 2 and encoder.config.cnn_module_kernel == 31
    x = io["prep_v1_video_transform_out"]
    with torch.no_grad():
        stem = encoder.frontend.stem(x.unsqueeze(0))
        assert max_abs_err(stem[:, :, :2], io["enc_frontend3d_out_frames0_1"]) < ATOL_ENC
        y = stem.transpose(1, 2).reshape(-1, *stem.shape[1:2], *stem.shape[3:])[:1]
        trunk = encoder.frontend.trunk
        for i, layer in enumerate([trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4], 1):
            y = layer(y)
            assert max_abs_err(y[0], io[f"enc_trunk_layer{i}_out_frame0"]) < ATOL_ENC, i
        front = encoder.frontend(x.unsqueeze(0))
        assert max_abs_err(front, io["enc_frontend_out"]) < ATOL_ENC
        h, pos = encoder.embed(front)
        assert max_abs_err(h, io["enc_embed_x"]) < ATOL_ENC
        assert max_abs_err(pos, io["enc_embed_pos_emb"]) < 1e-6
        for i, layer in enumerate(encoder.encoders):
            h = layer(h, pos)
            assert max_abs_err(h, io[f"enc_layer{i}_out"]) < ATOL_ENC, i
    assert max_abs_err(encoder.forward_no_beam(x), io["enc_output"]) < ATOL_ENC
    assert max_abs_err(encoder.forward_no_beam(x[:6]), io["enc_output_first6frames_input"]) < ATOL_ENC


def test_loads_full_e2e_checkpoint_and_rejects_bad_ones(tmp_path):
    state = load_reference("avsr_tiny.safetensors")
    full = dict(state)
    full["decoder.embed.0.weight"] = torch.zeros(3, 32)
    full["ctc.ctc_lo.weight"] = torch.zeros(3, 32)
    torch.save(full, tmp_path / "vsr.pth")  # the published format: a plain E2E state dict
    model = load_vsr_encoder(tmp_path / "vsr.pth")
    assert torch.equal(model.embed[0].weight, state["encoder.embed.0.weight"].float())

    broken = {k: v for k, v in state.items() if "after_norm" not in k}
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        load_vsr_encoder(tmp_path / "broken.safetensors")
    with pytest.raises(FileNotFoundError):
        load_vsr_encoder(tmp_path / "absent.pth")


# ---------------------------------------------------------------------------- preprocessing
def test_mouth_crop_reproduces_reference(io):
    frames = mc.as_float255(io["video1_uint8_thwc"].numpy())
    assert np.array_equal(frames, (_video(io, "video1_uint8_thwc").permute(0, 2, 3, 1).numpy() * 255))
    details = {}
    crops = mc.crop_mouths(frames, io["video1_detector_landmarks"].numpy(), details=details)
    np64 = lambda k: io[k].numpy()  # noqa: E731
    for ours, key in [("interpolated", "prep_v1_interpolated_landmarks"), ("smoothed", "prep_v1_smoothed_landmarks"),
                      ("transforms", "prep_v1_transform"), ("transformed", "prep_v1_transformed_landmarks"),
                      ("centers", "prep_v1_cut_center")]:
        assert np.abs(details[ours] - np64(key)).max() < 1e-9, key
    assert np.abs(mc.stable_reference() - np64("prep_v1_stable_reference")).max() < 1e-9
    assert np.array_equal(details["boxes"], np64("prep_v1_cut_box"))
    warped, _ = mc.apply_transform(frames[7], details["smoothed"][7], details["transforms"][7])
    assert np.abs(warped - np64("prep_v1_warped_frame7")).max() < 1e-3
    assert np.abs(crops - np64("prep_v1_crops_float")).max() < 1e-3
    assert max_abs_err(mc.video_transform(crops), io["prep_v1_video_transform_out"]) < 1e-4


def test_interpolation_and_smoothing_rules():
    one, four = np.full((68, 2), 1.0), np.full((68, 2), 4.0)
    out = mc.interpolate_landmarks([None, one, None, None, four, None])  # None = no face
    assert out[:, 0, 0].tolist() == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    nan_rows = np.stack([np.full((68, 2), np.nan), one, one * np.nan, one * np.nan, four, four * np.nan])
    assert np.array_equal(mc.interpolate_landmarks(nan_rows), out)
    assert mc.interpolate_landmarks(np.full((3, 68, 2), np.nan)) is None
    pts = np.zeros((5, 68, 2))
    pts[:, :, 0] = np.arange(5)[:, None] ** 2  # window shrinks at the ends, centroid kept
    sm = mc.smooth_landmarks(pts)
    assert np.allclose(sm.mean(axis=1), pts.mean(axis=1))
    with pytest.raises(mc.MouthCropError):
        mc.cut_box(np.array([128.0, 200.0]), (256, 256))


# ---------------------------------------------------------------------------- metric
def test_lipscore_metric_reproduces_reference(io, encoder):
    manifest = load_reference_json("avsr_manifest.json")["lipscore"]
    v1, v2 = _video(io, "video1_uint8_thwc"), _video(io, "video2_uint8_thwc")
    l1, l2 = io["video1_detector_landmarks"].numpy(), io["video2_detector_landmarks"].numpy()
    metric = LipScore(encoder)
    assert metric.higher_is_better
    results = metric.update([v1, v2], [v1, v1], [l1, l2], [l1, l1])
    assert max_abs_err(results[0].per_frame, io["metric_cos_pair0"]) < 1e-5
    assert max_abs_err(results[1].per_frame, io["metric_cos_pair1"]) < 1e-5
    assert np.allclose(metric.per_video, manifest["per_video_mean_cos"], atol=1e-5)
    assert metric.compute() == pytest.approx(manifest["compute_result"]["cosine_sim"], abs=1e-5)
    assert abs(metric._sum.item() - io["metric_state_cosine_similarities"].item()) < 1e-5
    feats = metric.features(v2, l2)
    assert max_abs_err(feats, io["metric_feat_pair1_pred"]) < ATOL_ENC
    # uint8 frames give the same features as the reference's float convention
    assert max_abs_err(metric.features(io["video2_uint8_thwc"].numpy(), l2), feats) < 1e-6
    # correct by default: reset clears the divisor
    metric.reset()
    metric.update([v2], [v1], [l2], [l1])
    assert metric.compute() == pytest.approx(manifest["after_reset_then_update_pair1_only"]["expected_if_counter_were_reset"], abs=1e-5)


def test_lipscore_reference_quirks(io, encoder):
    manifest = load_reference_json("avsr_manifest.json")["lipscore"]
    v1, v2 = _video(io, "video1_uint8_thwc"), _video(io, "video2_uint8_thwc")
    l1, l2 = io["video1_detector_landmarks"].numpy(), io["video2_detector_landmarks"].numpy()
    metric = LipScore(encoder, reference_quirks=True)
    metric.update([v1, v2], [v1, v1], [l1, l2], [l1, l1])
    assert metric.compute_dict()["cosine_sim"] == pytest.approx(manifest["compute_result"]["cosine_sim"], abs=1e-5)
    metric.reset()
    metric.update([v2], [v1], [l2], [l1])
    assert metric.counter == 3
    assert metric.compute() == pytest.approx(manifest["after_reset_then_update_pair1_only"]["compute_result"]["cosine_sim"], abs=1e-5)
    with pytest.raises(mc.MouthCropError, match="at least 12"):
        metric.score_pair(v1[:8], v1[:8], l1[:8], l1[:8])
    # default mode scores short clips
    assert LipScore(encoder).score_pair(v1[:8], v1[:8], l1[:8], l1[:8]).score == pytest.approx(1.0, abs=1e-6)


def test_lipscore_sanity_on_generated_clips(encoder):
    speech = syllable_signal(20, seed=3)
    frames, lms = render_face_clip(speech, seed=1)
    other, lmo = render_face_clip(syllable_signal(20, seed=9)[::-1], seed=1)
    metric = LipScore(encoder)
    same = metric.score_pair(frames, frames.copy(), lms, lms)
    assert same.score == pytest.approx(1.0, abs=1e-6) and same.num_frames == 20
    assert metric.score_pair(other, frames, lmo, lms).score < same.score - 1e-3
    with pytest.raises(ValueError, match="frame by frame"):
        metric.score_pair(frames[:15], frames, lms[:15], lms)
    trunc = LipScore(encoder, length_mismatch="truncate").score_pair(frames[:15], frames, lms[:15], lms)
    assert trunc.truncated and trunc.num_frames == 15 and trunc.score == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="no landmarks"):
        metric.features(frames)
    with pytest.raises(mc.MouthCropError, match="no face"):
        metric.features(frames, np.full((20, 68, 2), np.nan))


def test_lipscore_entry_point_writes_csv_and_json(tmp_path, encoder):
    from keysync.media import write_video
    import importlib.util
    from pathlib import Path

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    a, la = render_face_clip(syllable_signal(14, seed=1), seed=2)
    b, lb = render_face_clip(syllable_signal(14, seed=5), seed=2)
    write_video(gt / "clip1.mp4", a, fps=25)
    shutil.copy(gt / "clip1.mp4", pred / "clip1.mp4")
    write_video(gt / "clip2.mp4", a, fps=25)
    write_video(pred / "clip2.mp4", b, fps=25)
    for d in (pred, gt):
        np.save(d / "clip1.npy", la)
    np.save(gt / "clip2.npy", la), np.save(pred / "clip2.npy", lb)
    script = Path(__file__).resolve().parents[1] / "evaluation" / "lipscore.py"
    spec = importlib.util.spec_from_file_location("lipscore_entry", script)
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    out = tmp_path / "out"
    rc = entry.main(["--pred", str(pred), "--gt", str(gt), "--model", str(reference_path("avsr_tiny.safetensors")),
                     "--out", str(out), "--landmarks-backend", "none", "--no-progress"])
    assert rc == 0
    data = json.loads((out / "lipscore.json").read_text())
    per_video = {r["video"]: r["lipscore"] for r in data["per_video"]}
    assert per_video["clip1"] == pytest.approx(1.0, abs=1e-6)
    assert per_video["clip2"] < 0.999
    assert data["summary"][0]["value"] == pytest.approx((per_video["clip1"] + per_video["clip2"]) / 2)
    assert data["summary"][0]["better"] == "higher"
    assert (out / "lipscore.csv").read_text().startswith("metric,column,value")
    assert "clip2" in (out / "lipscore_per_video.csv").read_text()
    # without the model file: an explicit 'unavailable' row naming the file
    rc = entry.main(["--pred", str(pred), "--gt", str(gt), "--model", str(tmp_path / "vsr.pth"), "--out", str(out),
                     "--landmarks-backend", "none", "--no-progress"])
    assert rc == 0
    row = json.loads((out / "lipscore.json").read_text())["summary"][0]
    assert row["value"] is None and row["status"].startswith(f"unavailable: needs {tmp_path / 'vsr.pth'}")
