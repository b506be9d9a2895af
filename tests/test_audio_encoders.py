"""HuBERT / wav2vec2 encoders vs. the reference vectors, shapes and alignment, errors.

Largest errors recorded when written (atol 1e-4; one CPU thread):
  hubert offline_f1..f14, n5000, n900 <= 2.4e-6 · offline_long_f1025 2.6e-6 ·
  offline_f7_raw_tokens 0.0 · rawpipe_n5000/n900 1.2e-6 · rawpipe_long_f1025 2.1e-6 ·
  wav2vec2 offline_f7/f14/long_f1025 <= 2.4e-6, raw tokens 0.0 ·
  loading *_hubert_out: stereo44k, stereo16k, video10 0.0 · video6 6.0e-7 · video201 3.9e-6
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import transformers  # noqa: E402

from keysync.audio.encoders import HubertEncoder, Wav2Vec2Encoder, WavLMEncoder, load_audio_encoder  # noqa: E402
from keysync.audio.loading import ReferenceSkippedFileError, prepare_waveform  # noqa: E402
from keysync.audio.models import load_hubert, load_wav2vec2  # noqa: E402

REF = Path(__file__).parent / "data" / "reference"
ATOL = 1e-4


def maxabs(a, b):
    return (a.float() - b.float()).abs().max().item()


pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def inputs():
    return load_file(str(REF / "audio_inputs.safetensors"))


@pytest.fixture(scope="module")
def hubert():
    # config read from the weights file's metadata ("config_json")
    return load_hubert(REF / "audio_hubert_tiny_weights.safetensors")


@pytest.fixture(scope="module")
def wav2vec2():
    # Wav2Vec2ForCTC state dict: "wav2vec2." stripped, "lm_head.*" ignored
    return load_wav2vec2(REF / "audio_wav2vec2_tiny_weights.safetensors")


# -- reference vectors -------------------------------------------------------------------

def test_hubert_offline_vectors(hubert, inputs):
    io = load_file(str(REF / "audio_hubert_tiny_io.safetensors"))
    for mode in ("reference_offline", "aligned"):  # identical below 40 s
        enc = HubertEncoder(hubert, mode=mode)
        for k in ("f1", "f2", "f7", "f13", "f14", "n5000", "n900"):
            out = enc(inputs[f"wave_{k}"])
            assert out.shape == io[f"offline_{k}"].shape
            assert maxabs(out, io[f"offline_{k}"]) < ATOL, (mode, k)
            assert torch.all(out[-1, 1] == 0)  # appended zero token
    x = prepare_waveform(inputs["wave_f7"], normalize=True)
    assert maxabs(enc.model_tokens(x), io["offline_f7_raw_tokens"]) < ATOL
    out = HubertEncoder(hubert, mode="reference_offline")(inputs["wave_long_f1025"])
    assert out.shape == (1025, 2, 32) and maxabs(out, io["offline_long_f1025"]) < ATOL


def test_hubert_rawpipe_vectors(hubert, inputs):
    io = load_file(str(REF / "audio_hubert_tiny_io.safetensors"))
    enc = HubertEncoder(hubert, mode="reference_rawpipe", show_progress=False)
    for k in ("n5000", "n900"):
        assert maxabs(enc(inputs[f"wave_{k}"]), io[f"rawpipe_{k}"]) < ATOL
    out = enc(inputs["wave_long_f1025"])  # chunks [168000, 488000] -> 524 + 1524 tokens
    assert out.shape == (1024, 2, 32) and maxabs(out, io["rawpipe_long_f1025"]) < ATOL
    # the default (aligned) chunking keeps every frame and the zero last token
    out = HubertEncoder(hubert, show_progress=False)(inputs["wave_long_f1025"])
    assert out.shape == (1025, 2, 32) and torch.all(out[-1, 1] == 0)


def test_wav2vec2_vectors(wav2vec2, inputs):
    io = load_file(str(REF / "audio_wav2vec2_tiny_io.safetensors"))
    enc = Wav2Vec2Encoder(wav2vec2, mode="reference_offline")
    for k in ("f7", "f14", "long_f1025"):
        out = enc(inputs[f"wave_{k}"])
        assert out.shape == io[f"offline_{k}"].shape and maxabs(out, io[f"offline_{k}"]) < ATOL
    x = prepare_waveform(inputs["wave_f7"], normalize=True)
    assert maxabs(enc.model_tokens(x), io["offline_f7_raw_tokens"]) < ATOL


def test_loading_vectors_through_hubert(hubert):
    d = load_file(str(REF / "audio_loading.safetensors"))
    ref = HubertEncoder(hubert, mode="reference_offline")
    assert maxabs(ref(d["in_stereo44k"], 44100), d["stereo44k_hubert_out"]) < ATOL
    assert maxabs(ref(d["in_stereo16k"], 16000), d["stereo16k_hubert_out"]) < ATOL
    for n in (6, 10):
        out = ref(d["in_stereo16k"], 16000, n_frames=n)
        assert out.shape == (n, 2, 32) and maxabs(out, d[f"stereo16k_video{n}_hubert_out"]) < ATOL
    mono = d["in_mono16k_201f_int16"].numpy()
    assert maxabs(ref(mono, 16000, n_frames=201), d["mono16k_video201_hubert_out"]) < ATOL
    with pytest.raises(ReferenceSkippedFileError):
        ref(d["in_stereo44k"], 44100, n_frames=8)
    # default mode: channel mean, no crash, full-length video
    default = HubertEncoder(hubert)
    assert default(d["in_stereo44k"], 44100, n_frames=8).shape == (8, 2, 32)
    # the fixed trim length changes only the last (padded) sample, not the features' shape
    out = default(mono, 16000, n_frames=201)
    assert out.shape == (201, 2, 32) and maxabs(out, d["mono16k_video201_hubert_out"]) < 1e-2


# -- shapes and alignment with tiny random models ------------------------------------------

def _tiny(kind, **over):
    kw = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
              conv_dim=(8,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, attn_implementation="eager")
    kw.update(over)
    cls, cfg = {"hubert": (transformers.HubertModel, transformers.HubertConfig),
                "wavlm": (transformers.WavLMModel, transformers.WavLMConfig)}[kind]
    torch.manual_seed(0)
    return cls(cfg(**kw)).eval()


@pytest.fixture(scope="module")
def tiny_models():
    return {"hubert": _tiny("hubert"), "wavlm": _tiny("wavlm")}


def test_shapes_for_every_frame_count(tiny_models):
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(40 * 640 + 333).astype(np.float32)
    hub = HubertEncoder(tiny_models["hubert"])
    wlm = WavLMEncoder(tiny_models["wavlm"])
    for f in range(1, 41):
        h = hub(wave[: 640 * f])
        assert h.shape == (f, 2, 16) and torch.all(h[-1, 1] == 0) and torch.all(h[:, 0].abs().sum(-1) > 0)
        assert hub(wave, n_frames=f).shape == (f, 2, 16)  # trimmed to the video
        w = wlm(wave[: 640 * f])
        assert w.shape == (f, 2, 16) and torch.equal(w[0, 0], w[0, 1])  # token 0 duplicated
        assert wlm(wave[: 640 * f], keep_even_padding=True).shape == (f + f % 2, 2, 16)
        assert wlm(wave, n_frames=f).shape == (f, 2, 16)
    # frames not a multiple of 640 round up; a video longer than the audio pads
    assert hub(wave[:700]).shape == (2, 2, 16) and hub(wave[:700], n_frames=5).shape == (5, 2, 16)


def test_wavlm_token_shift_hand_checked(tiny_models):
    enc = WavLMEncoder(tiny_models["wavlm"])
    wave = torch.randn(6 * 640, generator=torch.Generator().manual_seed(1))
    raw = enc.model_tokens(wave)  # 11 raw tokens for F' = 6
    out = enc(wave)
    assert raw.shape[0] == 11 and out.shape == (6, 2, 16)
    for i in range(6):  # frame i holds raw tokens (2i-1, 2i), frame 0 holds (0, 0)
        assert torch.equal(out[i, 0], raw[max(2 * i - 1, 0)]) and torch.equal(out[i, 1], raw[2 * i])


def _local(kind):
    """No transformer layers, no positional conv, per-step LayerNorm in the conv stack:
    every token is a function of its own 400 samples, so chunking must not change it."""
    model = _tiny(kind, num_hidden_layers=0, feat_extract_norm="layer", conv_bias=True)
    with torch.no_grad():
        for name, p in model.encoder.pos_conv_embed.named_parameters():
            if "original1" not in name and "weight_v" not in name:
                p.zero_()
    return model


@pytest.mark.parametrize("kind,cls", [("hubert", HubertEncoder), ("wavlm", WavLMEncoder)])
def test_aligned_chunking_loses_no_token(kind, cls):
    model = _local(kind)
    wave = torch.randn(23 * 640 + 100, generator=torch.Generator().manual_seed(2))
    for n in (22, 23, 24):
        x = wave[: 640 * n]
        whole = cls(model, chunk_size=10**9)(x)
        chunked = cls(model, chunk_size=640 * 4, show_progress=False)(x)  # 5 chunks
        assert chunked.shape == whole.shape == (n, 2, 16)
        assert maxabs(chunked, whole) < 1e-5


@pytest.mark.parametrize("cls", [HubertEncoder, WavLMEncoder])
def test_blocks_and_file_backed_features_equal_encode(tiny_models, cls):
    """``iter_encode`` yields one block per chunk whose concatenation is ``encode``'s output, for
    even and odd frame counts and a video longer than the audio; ``encode_to_file`` stores exactly
    those values in a file-backed tensor."""
    from keysync.audio.feature_file import encode_to_file
    from keysync.utils.memory import file_backed_ranges

    enc = cls(tiny_models["hubert" if cls is HubertEncoder else "wavlm"], chunk_size=640 * 4, show_progress=False)
    wave = np.random.default_rng(3).standard_normal(23 * 640 + 100).astype(np.float32)
    for n in (21, 22, 24, 30):
        blocks = list(enc.iter_encode(wave, 16000, n))
        assert len(blocks) > 2
        whole = enc(wave, 16000, n)
        assert torch.equal(torch.cat(blocks), whole)
        stored = encode_to_file(enc, wave, 16000, n)
        assert torch.equal(stored, whole)
        assert any(a <= stored.data_ptr() < b for a, b in file_backed_ranges())  # in a file, not on the heap


# -- errors --------------------------------------------------------------------------------

def test_missing_weights_path_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "hubert-base-ls960"
    for kind in ("hubert", "wav2vec2", "wavlm"):
        with pytest.raises(FileNotFoundError, match="nowhere"):
            load_audio_encoder(kind, missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hubert(tmp_path / "empty")


def test_empty_and_bad_audio(tiny_models):
    enc = HubertEncoder(tiny_models["hubert"])
    with pytest.raises(ValueError, match="empty audio"):
        enc(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="empty audio"):
        WavLMEncoder(tiny_models["wavlm"])(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="mode"):
        HubertEncoder(tiny_models["hubert"], mode="fast")


def test_directory_loading_roundtrip(tmp_path, hubert, inputs):
    hubert.save_pretrained(tmp_path / "hubert")
    enc = load_audio_encoder("hubert", tmp_path / "hubert")
    assert enc.model.config._attn_implementation == "eager" and not enc.model.training
    assert maxabs(enc(inputs["wave_f7"]), HubertEncoder(hubert)(inputs["wave_f7"])) < 1e-6
