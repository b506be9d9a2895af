"""Audio loading rules and the torchaudio-compatible resampler vs. the reference vectors
(`audio_loading.safetensors`, reference README §10 trap 8; SPEC §11.23, §11.27).

Largest errors recorded when written (atol 1e-6 for waveforms):
  stereo44k_loaded_16k 0.0 · stereo16k_loaded 0.0 · stereo16k_video{6,10}_model_input 0.0 ·
  mono16k_video201_model_input_last8 6.0e-8 · stereo44k_get_raw_audio 4.5e-8 ·
  hubert offline/rawpipe n5000/n900 model inputs 0.0
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from keysync.audio.loading import (
    ReferenceSkippedFileError,
    as_float_channels_first,
    prepare_waveform,
    raw_audio_frames,
    reference_offline_waveform,
    to_mono_16k,
    trim_or_pad,
    video_num_samples,
    zscore_normalize,
)
from keysync.audio.resample import resample, sinc_resample_kernel

REF = Path(__file__).parent / "data" / "reference"
WAVE_ATOL = 1e-6


@pytest.fixture(scope="module")
def loading():
    return load_file(str(REF / "audio_loading.safetensors"))


@pytest.fixture(scope="module")
def hubert_io():
    return load_file(str(REF / "audio_hubert_tiny_io.safetensors"))


@pytest.fixture(scope="module")
def inputs():
    return load_file(str(REF / "audio_inputs.safetensors"))


def maxabs(a, b):
    return (a.reshape(-1).float() - b.reshape(-1).float()).abs().max().item()


# -- resampler ------------------------------------------------------------------------

def test_resample_matches_torchaudio_reference(loading):
    # get_audio_embeddings.py: resample(audio, 44100, 16000)[0]
    out = resample(loading["in_stereo44k"], 44100, 16000)
    assert out.shape == (2, 4826)  # ceil(13300 * 160 / 441)
    assert maxabs(out[0], loading["stereo44k_loaded_16k"]) <= WAVE_ATOL


def test_resample_numpy_and_identity():
    x = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    y = resample(x, 48000, 16000)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (2, 334)
    assert resample(x, 16000, 16000) is x
    with pytest.raises(TypeError):
        resample(np.zeros(10, np.int16), 8000, 16000)
    with pytest.raises(ValueError):
        resample(x, 0, 16000)


def test_resample_kernel_shape_and_sine_fidelity():
    kernel, width = sinc_resample_kernel(44100, 16000)
    assert width == 17 and kernel.shape == (160, 1, 2 * 17 + 441)
    # A 440 Hz sine survives 44.1k -> 16k -> 44.1k far from the edges.
    t = np.arange(44100 * 2) / 44100
    x = np.sin(2 * np.pi * 440 * t).astype(np.float64)
    y = resample(resample(x, 44100, 16000), 16000, 44100)
    assert y.shape == x.shape
    assert np.abs(y[2000:-2000] - x[2000:-2000]).max() < 2e-3
    # Upsampling keeps length ratios: ceil(new * n / orig)
    assert resample(torch.zeros(101), 8000, 16000).shape == (202,)


# -- channels, rates ------------------------------------------------------------------

def test_channel_handling(loading):
    st16 = loading["in_stereo16k"]
    assert maxabs(to_mono_16k(st16, 16000), loading["stereo16k_loaded"]) <= WAVE_ATOL
    assert maxabs(to_mono_16k(st16, 16000, reference_channels=True), loading["stereo16k_loaded"]) == 0
    st44 = loading["in_stereo44k"]
    ref0 = to_mono_16k(st44, 44100, reference_channels=True)  # quirk: channel 0 only
    assert maxabs(ref0, loading["stereo44k_loaded_16k"]) <= WAVE_ATOL
    default = to_mono_16k(st44, 44100)  # correct: channel mean
    assert maxabs(default, resample(st44, 44100, 16000).mean(0)) < 1e-6
    assert maxabs(default, ref0) > 0.1
    # (N, C) layout and int16 PCM give the same result
    pcm = loading["in_stereo44k_int16"].numpy()
    assert maxabs(to_mono_16k(pcm.T, 44100, channel_axis=-1), default) <= WAVE_ATOL


def test_get_raw_audio(loading):
    frames = raw_audio_frames(loading["in_stereo44k"], 44100)
    assert frames.shape == (8, 640)
    assert maxabs(frames, loading["stereo44k_get_raw_audio"]) <= WAVE_ATOL


def test_int_pcm_scaling_and_layout_errors():
    x = as_float_channels_first(np.array([-32768, 0, 16384], np.int16))
    assert x.shape == (1, 3) and x.tolist() == [[-1.0, 0.0, 0.5]]
    with pytest.raises(ValueError, match="channel_axis=-1"):
        as_float_channels_first(np.zeros((1000, 2), np.float32))
    with pytest.raises(ValueError, match="empty audio"):
        to_mono_16k(np.zeros((2, 0), np.float32), 16000)
    with pytest.raises(ValueError, match="empty audio"):
        prepare_waveform(np.zeros(0, np.float32))


# -- video length, normalisation, padding -----------------------------------------------

def test_video_num_samples_reference_rounding():
    assert video_num_samples(201) == 128640
    assert video_num_samples(201, reference_rounding=True) == 128639
    assert video_num_samples(6) == 3840 and video_num_samples(0) == 0
    assert video_num_samples(30, fps=29.97) == 16016
    lost = [n for n in range(1, 100000) if video_num_samples(n, reference_rounding=True) != 640 * n]
    assert len(lost) == 590 and lost[:12] == [201, 203, 402, 406, 803, 804, 811, 812, 819, 1606, 1608, 1613]
    assert all(video_num_samples(n) == 640 * n for n in lost)


def test_offline_model_inputs_with_video(loading):
    st16 = loading["in_stereo16k"]
    for n, key in ((6, "stereo16k_video6_model_input"), (10, "stereo16k_video10_model_input")):
        x = reference_offline_waveform(st16, 16000, n_video_frames=n)
        assert x.shape == (640 * n,)
        assert maxabs(x, loading[key]) <= WAVE_ATOL
        # the default path agrees for these lengths
        assert maxabs(prepare_waveform(to_mono_16k(st16, 16000), n_video_frames=n, normalize=True),
                      loading[key]) <= WAVE_ATOL
    # 201 frames: trimmed to 128639 then re-padded -> last model-input sample is 0
    mono = loading["in_mono16k_201f_int16"].numpy()
    ref = reference_offline_waveform(mono, 16000, n_video_frames=201)
    assert ref.shape == (128640,) and ref[-1] == 0
    assert maxabs(ref[-8:], loading["mono16k_video201_model_input_last8"]) <= WAVE_ATOL
    fixed = prepare_waveform(mono, n_video_frames=201, normalize=True)
    assert fixed.shape == (128640,) and fixed[-1] != 0
    assert maxabs(fixed[:-1], ref[:-1]) == 0


def test_reference_skips_resampled_audio_with_video(loading):
    st44 = loading["in_stereo44k"]
    with pytest.raises(ReferenceSkippedFileError, match="tuple index out of range"):
        reference_offline_waveform(st44, 44100, n_video_frames=8)
    with pytest.raises(ReferenceSkippedFileError, match="too many indices"):
        reference_offline_waveform(st44, 44100, n_video_frames=4)
    # the default path handles it
    x = prepare_waveform(to_mono_16k(st44, 44100), n_video_frames=8, normalize=True)
    assert x.shape == (5120,) and torch.all(x[4826:] == 0)


def test_normalisation_order(inputs, hubert_io):
    for k in ("n5000", "n900"):
        off = prepare_waveform(inputs[f"wave_{k}"], normalize=True)
        raw = prepare_waveform(inputs[f"wave_{k}"], normalize=True, normalize_after_padding=True)
        assert maxabs(off, hubert_io[f"offline_{k}_model_input"]) <= WAVE_ATOL
        assert maxabs(raw, hubert_io[f"rawpipe_{k}_model_input"]) <= WAVE_ATOL
    x = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(zscore_normalize(x), (x - 2) / np.sqrt(1 + 1e-7))  # unbiased var = 1
    assert trim_or_pad(x, 5).tolist() == [1, 2, 3, 0, 0] and trim_or_pad(x, 2).tolist() == [1, 2]
