"""SyncNet LSE-C / LSE-D: architecture and weight format, MFCC features, offset search mechanics.

No trained SyncNet is available, so the mechanics are checked with a tiny constructed model
whose lip and audio embeddings are made to correlate (dark-mouth fraction vs MFCC log
energy) on generated clips whose loudness follows the mouth opening."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keysync.evaluation.sync_audio import mel_filterbank, mfcc, mfcc_for_syncnet
from keysync.evaluation.sync_scores import (SyncScorer, face_boxes_from_landmarks, sync_from_features,
                                            syncnet_face_crops)
from keysync.evaluation.syncnet import SyncNet, load_syncnet
from keysync.evaluation.synthetic import render_face_clip, shift_frames, speech_audio, syllable_signal
from keysync.models.checkpoints import CheckpointError

pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


class MouthEnergySync(torch.nn.Module):
    """A SyncNet stand-in: lip embedding = fraction of dark (open-mouth) pixels in the mouth area
    of each of the 5 frames, audio embedding = MFCC log energy of each 40 ms; both centred and
    normalised, so that they match when audio and video are aligned."""

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 5, H, W)
        h, w = x.shape[-2:]
        region = x[..., int(0.5 * h):int(0.7 * h), int(0.35 * w):int(0.65 * w)]
        return self._norm((region.mean(dim=1) < 90).float().mean(dim=(2, 3)))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 13, 20)
        return self._norm(x[:, 0, 0].reshape(x.shape[0], 5, 4).mean(-1))

    @staticmethod
    def _norm(v: torch.Tensor) -> torch.Tensor:
        v = v - v.mean(dim=1, keepdim=True)
        return v / (v.norm(dim=1, keepdim=True) + 1e-3)


@pytest.fixture(scope="module")
def clip():
    speech = syllable_signal(80, seed=4)
    frames, landmarks = render_face_clip(speech, size=96, seed=1)
    crops = syncnet_face_crops(frames, face_boxes_from_landmarks(landmarks), size=64)
    return crops, speech_audio(speech, seed=2), frames, landmarks


# ---------------------------------------------------------------------------- MFCC
def test_mfcc_layout_matches_python_speech_features_conventions():
    assert mfcc(np.ones(400)).shape == (1, 13)
    assert mfcc(np.random.default_rng(0).standard_normal(16000)).shape == (99, 13)  # 1 + ceil((16000-400)/160)
    assert mfcc_for_syncnet(np.zeros(640 * 10, np.float32)).shape == (13, 39)  # 4 per video frame
    fb = mel_filterbank()
    assert fb.shape == (26, 257) and fb.max() <= 1.0 and (fb.sum(axis=1) > 0).all()
    silent = mfcc(np.zeros(1600))
    assert np.allclose(silent[:, 0], np.log(np.finfo(float).eps))  # zero energy -> log(eps)
    tone = np.sin(np.arange(3200) * 0.3) + 0.1 * np.random.default_rng(2).standard_normal(3200)
    loud, quiet = mfcc(10 * tone).T, mfcc(tone).T
    # x10 amplitude: +log(100) on the energy (c0); c1.. are unchanged except through the
    # constant log(100) the DCT puts in no coefficient other than c0
    assert np.allclose(loud[0] - quiet[0], np.log(100))
    assert np.allclose(loud[1:], quiet[1:])
    ints = mfcc_for_syncnet(tone * 0.1)  # float [-1, 1] -> int16 sample values, as wavfile.read gives
    assert np.allclose(ints[0], mfcc(np.round(tone * 0.1 * 32768)).T[0])
    import scipy.fft as scipy_fft
    from keysync.evaluation.sync_audio import _dct2_ortho

    x = np.random.default_rng(1).random((4, 26))
    assert np.abs(_dct2_ortho(x) - scipy_fft.dct(x, type=2, axis=1, norm="ortho")).max() < 1e-12


# ---------------------------------------------------------------------------- model + weights format
def test_syncnet_weight_format_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = SyncNet().eval()
    keys = model.state_dict()
    assert tuple(keys["netcnnaud.0.weight"].shape) == (64, 1, 3, 3)
    assert tuple(keys["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(keys["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(keys["netcnnlip.18.weight"].shape) == (512, 256, 1, 6, 6)
    assert tuple(keys["netfcaud.3.weight"].shape) == (1024, 512) and "netfclip.1.running_var" in keys
    torch.save(model.state_dict(), tmp_path / "syncnet_v2.model")  # the published file layout
    loaded = load_syncnet(tmp_path / "syncnet_v2.model")
    lip, aud = torch.rand(2, 3, 5, 224, 224) * 255, torch.randn(2, 1, 13, 20)
    with torch.no_grad():
        assert loaded.forward_lip(lip).shape == (2, 1024)
        assert torch.equal(loaded.forward_aud(aud), model.forward_aud(aud))
    torch.save({"__S__." + k: v for k, v in model.state_dict().items()}, tmp_path / "prefixed.model")
    load_syncnet(tmp_path / "prefixed.model")
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("netfclip")}, tmp_path / "bad.model")
    with pytest.raises(CheckpointError, match="missing"):
        load_syncnet(tmp_path / "bad.model")
    with pytest.raises(FileNotFoundError):
        load_syncnet(tmp_path / "absent.model")


def test_real_architecture_runs_through_the_scorer(clip):
    _, _, frames, landmarks = clip
    torch.manual_seed(0)
    scorer = SyncScorer(SyncNet().eval(), vshift=15)
    audio = speech_audio(syllable_signal(12, seed=4))
    result = scorer.score_frames(frames[:12], landmarks[:12], audio)
    assert result.dists.shape == (7, 31) and result.mean_dists.shape == (31,)
    assert np.isfinite([result.lse_c, result.lse_d, result.lse_c0, result.lse_d0]).all()
    assert -15 <= result.offset <= 15
    with pytest.raises(ValueError, match="too short"):
        scorer.score_frames(frames[:5], landmarks[:5], audio)


# ---------------------------------------------------------------------------- mechanics
def test_offset_search_on_constructed_features():
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.standard_normal((60, 8))).float()
    for k in (0, 4, -6):
        video = torch.roll(audio, shifts=k, dims=0)  # video window i = audio window i - k
        res = sync_from_features(video, audio, vshift=15)
        assert res.offset == k
        assert res.lse_d < 0.5 * float(np.median(res.mean_dists)) and res.lse_c > 1.0


def test_aligned_clip_scores_offset_zero(clip):
    crops, audio, _, _ = clip
    res = SyncScorer(MouthEnergySync(), vshift=15).score(crops, audio)
    assert res.offset == 0
    assert res.lse_c > 0.5 and res.lse_d0 == pytest.approx(res.lse_d)


@pytest.mark.parametrize("shift", [3, -2, 7])
def test_shifted_copy_scores_worse_and_offset_recovers_shift(clip, shift):
    crops, audio, _, _ = clip
    scorer = SyncScorer(MouthEnergySync(), vshift=15)
    aligned = scorer.score(crops, audio)
    shifted = scorer.score(shift_frames(crops, shift), audio)
    assert shifted.offset == shift
    assert shifted.lse_d0 > aligned.lse_d0 + 0.2  # worse at offset 0
    assert shifted.lse_c0 < aligned.lse_c0 - 0.2


def test_frozen_mouth_under_speech_scores_low_sync(clip):
    crops, audio, _, _ = clip
    scorer = SyncScorer(MouthEnergySync(), vshift=15)
    aligned = scorer.score(crops, audio)
    frozen = scorer.score(np.repeat(crops[:1], len(crops), axis=0), audio)
    assert frozen.lse_c < 0.25 * aligned.lse_c
    assert frozen.lse_d0 > aligned.lse_d0 + 0.3


def test_face_crop_geometry(clip):
    _, _, frames, landmarks = clip
    boxes = face_boxes_from_landmarks(landmarks)
    assert boxes.shape == (len(frames), 4) and (boxes[:, 2] > boxes[:, 0]).all()
    crops = syncnet_face_crops(frames, boxes, size=224)
    assert crops.shape == (len(frames), 224, 224, 3) and crops.dtype == np.uint8
