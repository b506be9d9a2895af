"""The weight-free log-mel speech feature: alignment to video frames, silence, registration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keysync.audio.encoders import load_audio_encoder
from keysync.audio.logmel import LogMelEncoder, mel_filterbank


def test_shape_alignment_and_silence():
    enc = LogMelEncoder(n_mels=32)
    sr = 16000
    wave = np.zeros(sr * 2, np.float32)
    wave[12800:16000] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3200) / sr)  # frames 20-24 sound
    feats = enc(wave)
    assert feats.shape == (50, 2, 32) and feats.dtype == torch.float32
    level = feats.amax(-1)  # (F, 2): the loudest band
    assert torch.allclose(level[:19], torch.full_like(level[:19], -1.0), atol=1e-3)  # digital silence
    assert (level[21:24] > 0).all() and torch.allclose(level[27:], torch.full_like(level[27:], -1.0), atol=1e-3)
    # 440 Hz lands in the band whose filter peaks nearest to it
    band = int(feats[22, 0].argmax())
    assert int(mel_filterbank(32)[:, round(440 / (sr / 512))].argmax()) == band
    # n_frames pads with silence or cuts, and matches the unpadded features where they overlap
    longer = enc(wave, n_frames=60)
    assert longer.shape == (60, 2, 32) and torch.equal(longer[:49], feats[:49])
    assert torch.allclose(longer[51:], torch.full_like(longer[51:], -1.0), atol=1e-3)
    # other sample rates are resampled to 16 kHz first
    assert enc(np.zeros(44100, np.float32), sr=44100).shape == (25, 2, 32)


def test_half_frames_are_20ms_apart():
    """A click in the second half of frame 10 shows in half (10, 1) more than in (10, 0)."""
    enc = LogMelEncoder()
    wave = np.zeros(16000, np.float32)
    wave[640 * 10 + 480] = 1.0
    level = enc(wave).amax(-1)
    assert level[10, 1] > level[10, 0] + 0.3 and level[10, 1] > level[11, 0]


def test_registered_beside_the_learned_encoders():
    enc = load_audio_encoder("logmel", None)
    assert isinstance(enc, LogMelEncoder) and enc.feature_dim == 32
    with pytest.raises(ValueError, match="logmel"):
        load_audio_encoder("mfcc", None)
