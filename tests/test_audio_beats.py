"""BEATs (KeyFace extra audio encoder) and the torchaudio-free Kaldi fbank vs. the
reference vectors (README §10 trap 7, SPEC §11.26).

Largest errors recorded when written (atol 1e-4; one CPU thread):
  offline_f14_fbank 1.5e-5 · offline_f14_pre_resize_tokens 8.8e-6 ·
  offline_f5 4.8e-6 · offline_f7 6.3e-6 · offline_f14 8.8e-6 · offline_f25 1.1e-5 ·
  offline_f50 8.6e-6
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from keysync.audio.alignment import nearest_resize_index
from keysync.audio.beats import BEATsEncoder, fbank_features, load_beats
from keysync.audio.encoders import load_audio_encoder
from keysync.audio.fbank import kaldi_fbank

REF = Path(__file__).parent / "data" / "reference"
WEIGHTS = REF / "audio_beats_tiny_weights.safetensors"
ATOL = 1e-4


def maxabs(a, b):
    return (a.float() - b.float()).abs().max().item()


pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def original():
    with safe_open(str(WEIGHTS), "pt") as f:
        cfg = json.loads(f.metadata()["cfg_json"])
    return {"cfg": cfg, "model": load_file(str(WEIGHTS))}


@pytest.fixture(scope="module")
def model(original):
    return load_beats(original)


@pytest.fixture(scope="module")
def inputs():
    return load_file(str(REF / "audio_inputs.safetensors"))


@pytest.fixture(scope="module")
def io():
    return load_file(str(REF / "audio_beats_tiny_io.safetensors"))


def test_fbank_matches_kaldi_reference(inputs, io):
    fb = fbank_features(inputs["wave_f14"])
    assert fb.shape == (54, 128)  # 4F' - 2 frames
    assert maxabs(fb, io["offline_f14_fbank"]) < ATOL
    assert kaldi_fbank(torch.zeros(1000) + 1.0, num_mel_bins=23).shape == (4, 23)
    with pytest.raises(ValueError):
        kaldi_fbank(torch.zeros(399))


def test_beats_reference_vectors(model, inputs, io):
    manifest = json.loads((REF / "audio_manifest.json").read_text())["beats"]["cases"]
    enc = BEATsEncoder(model, mode="reference_offline")
    assert maxabs(enc.tokens(inputs["wave_f14"]), io["offline_f14_pre_resize_tokens"]) < ATOL
    for k in ("f5", "f7", "f14", "f25", "f50"):
        out = enc(inputs[f"wave_{k}"], keep_even_padding=True)
        assert out.shape == io[f"offline_{k}"].shape and maxabs(out, io[f"offline_{k}"]) < ATOL, k
        case = manifest[k]
        n_even = case["frames_after_even_padding"]
        assert nearest_resize_index(case["pre_resize_token_count"], 2 * n_even) == \
            case["nearest_resize_source_index"]
    for k in ("f1", "f3"):  # the reference crashes: fewer than 16 fbank frames
        with pytest.raises(ValueError, match="Kernel size"):
            enc(inputs[f"wave_{k}"])


def test_beats_default_mode(model, inputs, io):
    enc = BEATsEncoder(model)
    out = enc(inputs["wave_f7"])
    assert out.shape == (7, 2, 32) and maxabs(out, io["offline_f7"][:7]) < ATOL
    for f in (1, 2, 3, 4, 5):  # short clips do not crash by default
        assert enc(inputs["wave_f5"][: 640 * f]).shape == (f, 2, 32)


def test_beats_checkpoint_file_and_errors(original, tmp_path, inputs, io):
    path = tmp_path / "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
    torch.save(original, path)
    enc = load_audio_encoder("beats", path, mode="reference_offline")
    assert maxabs(enc(inputs["wave_f14"]), io["offline_f14"]) < ATOL
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_beats(tmp_path / "nowhere.pt")
    bad = dict(original["model"])
    bad["encoder.layers.1.self_attn.relative_attention_bias.weight"] = torch.zeros(320, 2)
    with pytest.raises(ValueError, match="shared"):
        load_beats({"cfg": original["cfg"], "model": bad})
    with pytest.raises(ValueError, match="empty audio"):
        enc(torch.zeros(0))
