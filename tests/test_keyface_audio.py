"""KeyFace audio: BEATs checkpoints in the published format, (F, 2, D) alignment, encoder
concatenation (WavLM ⊕ BEATs, wav2vec2 ⊕ BEATs) and ``keysync precompute audio --model beats``.

The reference vectors of BEATs and WavLM themselves are checked in test_audio_beats.py and
test_audio_encoders.py (max errors there: BEATs 1.5e-5, WavLM below 1e-4).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from keysync.audio.beats import BEATsEncoder, BEATsModel, load_beats
from keysync.audio.combined import ConcatEncoder, concat_features
from keysync.audio.encoders import Wav2Vec2Encoder, WavLMEncoder, load_audio_encoder
from keysync.cli.main import main as cli_main
from keysync.data.paths import ArtefactLayout
from keysync.pipelines.tiny import TINY_SPEECH, write_tiny_beats


@pytest.fixture(scope="module")
def beats_file(tmp_path_factory) -> Path:
    return write_tiny_beats(tmp_path_factory.mktemp("beats") / "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt")


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    rs = np.random.RandomState(0)
    t = np.arange(25 * 640) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rs.randn(t.size)).astype(np.float32)


def test_tiny_beats_checkpoint_round_trip(beats_file, wave):
    raw = torch.load(beats_file, map_location="cpu", weights_only=True)
    assert set(raw) == {"cfg", "model"} and raw["cfg"]["encoder_embed_dim"] == 32
    assert "encoder.layers.1.self_attn.relative_attention_bias.weight" in raw["model"]  # as the original stores it
    model = load_beats(beats_file)
    for key, value in model.state_dict().items():
        assert torch.equal(value, raw["model"][key]), key
    enc = load_audio_encoder("beats", beats_file)
    feats = enc(wave, 16000, 25)
    assert feats.shape == (25, 2, 32) and torch.isfinite(feats).all()
    # the aligned tokens are the model's patch tokens nearest-resized to 2F' (F' = 26, even padding)
    assert enc(wave, 16000, 25, keep_even_padding=True).shape == (26, 2, 32)
    direct = BEATsEncoder(model)(torch.from_numpy(wave), 16000, 25)
    assert torch.equal(feats, direct)
    resaved = beats_file.parent / "resaved.pt"
    torch.save({"cfg": raw["cfg"], "model": model.state_dict()}, resaved)  # layer-0 table only: also accepted
    assert torch.equal(load_audio_encoder("beats", resaved)(wave, 16000, 25), feats)


def test_published_beats_size_gives_768_features(wave):
    torch.manual_seed(0)
    model = BEATsModel({"finetuned_model": True, "predictor_class": 527, "deep_norm": True,
                        "relative_position_embedding": True, "gru_rel_pos": True}).eval()
    # 12 layers, 768-d, 527-class head; the original file also stores 11 copies of layer 0's 320×12
    # relative-position table (11·3840 more values), which loading checks and drops
    assert sum(p.numel() for p in model.parameters()) == 90_717_055
    feats = BEATsEncoder(model)(wave[: 14 * 640], 16000, 14)
    assert feats.shape == (14, 2, 768)


def test_concatenated_encoders(beats_file, wave, tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

    torch.manual_seed(0)
    wavlm = WavLMEncoder(WavLMModel(WavLMConfig(**TINY_SPEECH)).eval())
    w2v = Wav2Vec2Encoder(Wav2Vec2Model(Wav2Vec2Config(**TINY_SPEECH)).eval())
    beats = load_audio_encoder("beats", beats_file)
    key = ConcatEncoder(wavlm, beats)(wave, 16000, 25)
    interp = ConcatEncoder(w2v, beats)(wave, 16000, 25)
    assert key.shape == interp.shape == (25, 2, 64)
    b = beats(wave, 16000, 25)
    assert torch.equal(key[..., :32], wavlm(wave, 16000, 25)) and torch.equal(key[..., 32:], b)
    assert torch.equal(interp[..., :32], w2v(wave, 16000, 25)) and torch.equal(interp[..., 32:], b)
    # different lengths: cut to the shorter, as the reference does with precomputed files
    out = concat_features(torch.ones(10, 2, 3), torch.zeros(8, 2, 5))
    assert out.shape == (8, 2, 8) and out[..., :3].eq(1).all() and out[..., 3:].eq(0).all()
    with pytest.raises(ValueError, match=r"\(F, 2, D\)"):
        concat_features(torch.ones(10, 3))


def test_precompute_beats_features(beats_file, tmp_path, capsys):
    root = tmp_path / "data"
    for name, n in (("a", 20), ("b", 7)):
        path = root / "video_crop" / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=32x32:rate=25", "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000",
                        "-frames:v", str(n), "-t", str(n / 25), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a",
                        "aac", "-shortest", str(path)], check=True)
    args = ["precompute", "audio", str(root / "video_crop"), "--model", "beats", "--weights", str(beats_file)]
    assert cli_main(args) == 0
    assert "2 written" in capsys.readouterr().out
    layout = ArtefactLayout(root)
    for name, n in (("a", 20), ("b", 7)):
        feats = load_file(str(layout.audio_features(Path(name), "beats")))["audio"]
        assert feats.shape == (n, 2, 32) and torch.isfinite(feats).all()
    assert cli_main(args[:-1] + [str(tmp_path / "missing.pt")]) == 2
