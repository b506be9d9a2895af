"""`keysync precompute`: artefacts for a folder of generated clips, a bad clip reported, resume."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keysync.cli.main import main as cli_main
from keysync.data.filelist import find_files, speaker_id, split_by_speaker
from keysync.data.paths import ArtefactLayout, list_videos
from keysync.data.precompute import encode_video_latents, frames_to_model_input
from keysync.media import read_video
from keysync.models.vae import AutoencodingEngine
from keysync.models.vae_io import load_vae, save_vae

TINY_DD = dict(ch=32, ch_mult=[1, 2], num_res_blocks=1, z_channels=4, double_z=True, resolution=32, in_channels=3,
               out_ch=3, attn_resolutions=[], dropout=0.0, attn_type="vanilla")
FRAMES = {"spk1_a": 20, "spk1_b": 17, "spk2_a": 25, "spk3.v2_a": 14}


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True)


def make_clip(path: Path, frames: int, fps: int = 25, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}x{size}:rate={fps}", "-f", "lavfi", "-i",
           "sine=frequency=300:sample_rate=44100", "-frames:v", frames, "-t", frames / fps, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name, n in FRAMES.items():
        make_clip(root / "video_crop" / f"{name}.mp4", n)
    good = (root / "video_crop" / "spk1_a.mp4").read_bytes()
    (root / "video_crop" / "spk9_broken.mp4").write_bytes(good[: len(good) // 3])
    return root


@pytest.fixture(scope="module")
def tiny_vae_file(tmp_path_factory):
    torch.manual_seed(0)
    vae = AutoencodingEngine(encoder_config=TINY_DD, decoder_config={**TINY_DD, "video_kernel_size": [3, 1, 1]})
    return save_vae(vae, tmp_path_factory.mktemp("w") / "vae.safetensors", TINY_DD,
                    {**TINY_DD, "video_kernel_size": [3, 1, 1]})


@pytest.fixture(scope="module")
def tiny_hubert_dir(tmp_path_factory):
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    cfg = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    folder = tmp_path_factory.mktemp("hubert")
    HubertModel(cfg).save_pretrained(folder)
    return folder


def test_latents_for_a_folder_with_a_corrupt_clip_and_resume(dataset, tiny_vae_file, capsys):
    args = ["precompute", "latents", str(dataset / "video_crop"), "--vae", str(tiny_vae_file),
            "--resolution", "32", "--mode", "mode"]
    assert cli_main(args) == 1
    out = capsys.readouterr().out
    assert "4 written, 0 already present, 1 failed" in out and "spk9_broken.mp4" in out
    layout = ArtefactLayout(dataset)
    for name, n in FRAMES.items():
        latents = load_file(str(layout.latents(Path(name), resolution=32)))["latents"]
        assert latents.shape == (n, 4, 16, 16) and torch.isfinite(latents).all()
    assert not layout.latents(Path("spk9_broken"), resolution=32).exists()
    assert not list((dataset / "video_crop_emb").glob(".*tmp*"))  # no partial files
    stamps = {p: p.stat().st_mtime_ns for p in (dataset / "video_crop_emb").iterdir()}
    assert cli_main(args + ["--only-missing"]) == 1
    assert "0 written, 4 already present, 1 failed" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in (dataset / "video_crop_emb").iterdir()}


def test_latents_are_scaled_vae_latents_of_squashed_frames(dataset, tiny_vae_file):
    vae = load_vae(tiny_vae_file)
    frames, _ = read_video(dataset / "video_crop" / "spk2_a.mp4")
    x = frames_to_model_input(frames, 32)
    assert x.shape == (25, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    with torch.no_grad():
        want = vae.encode(x, mode="mode") * 0.18215
    got = encode_video_latents([frames[:9], frames[9:]], vae, resolution=32, chunk_size=4, mode="mode")
    assert torch.allclose(got, want, atol=1e-5)
    g = torch.Generator().manual_seed(3)
    a = encode_video_latents([frames], vae, 32, mode="sample", generator=g)
    b = encode_video_latents([frames], vae, 32, mode="sample", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.allclose(a, want, atol=1e-3)


def test_audio_features_match_video_length(dataset, tiny_hubert_dir, tmp_path, capsys):
    out_root = tmp_path / "mirror"
    args = ["precompute", "audio", str(dataset / "video_crop"), "--model", "hubert", "--weights",
            str(tiny_hubert_dir), "--output-root", str(out_root)]
    assert cli_main(args) == 1
    assert "4 written" in capsys.readouterr().out
    layout = ArtefactLayout(out_root)
    for name, n in FRAMES.items():
        feats = load_file(str(layout.audio_features(Path(name), "hubert")))["audio"]
        assert feats.shape == (n, 2, 32)
        assert torch.count_nonzero(feats[-1, 1]) == 0  # HuBERT's appended zero token


def test_wrong_fps_and_missing_weights_are_clear_errors(tmp_path, tiny_vae_file, capsys):
    make_clip(tmp_path / "video_crop" / "spk_30fps.mp4", 30, fps=30)
    assert cli_main(["precompute", "latents", str(tmp_path / "video_crop"), "--vae", str(tiny_vae_file),
                     "--resolution", "32"]) == 1
    assert "30 fps; the models need 25 fps" in capsys.readouterr().out
    assert cli_main(["precompute", "latents", str(tmp_path / "video_crop"), "--vae", str(tmp_path / "nope")]) == 2
    assert "VAE weights not found" in capsys.readouterr().err
    assert cli_main(["precompute", "audio", str(tmp_path / "video_crop"), "--model", "wavlm",
                     "--weights", str(tmp_path / "WavLM-Base+.pt")]) == 2
    assert "wavlm weights not found" in capsys.readouterr().err


def test_paths_are_safe_with_dots_and_repeated_folder_names(tmp_path):
    layout = ArtefactLayout(tmp_path / "audio_set.v1")
    rel = layout.relative(tmp_path / "audio_set.v1" / "video_crop" / "audio" / "clip.take2.mp4")
    assert rel == Path("audio/clip.take2")
    assert layout.audio(rel) == tmp_path / "audio_set.v1" / "audio" / "audio" / "clip.take2.wav"
    assert layout.audio_features(rel, "wavlm").name == "clip.take2_wavlm_emb.safetensors"
    with pytest.raises(ValueError, match="not under the video folder"):
        layout.relative(tmp_path / "elsewhere.mp4")


def test_filelists_and_speaker_split(dataset, tmp_path, capsys):
    files = find_files(dataset / "video_crop")
    assert len(files) == 5 and {speaker_id(f) for f in files} == {"spk1", "spk2", "spk3.v2", "spk9"}
    splits = split_by_speaker(files, (0.5, 0.25, 0.25), seed=1)
    seen = [speaker_id(f) for group in splits.values() for f in group]
    assert sorted(seen) == sorted(speaker_id(f) for f in files)
    for a in splits:
        for b in splits:
            if a != b:
                assert not {speaker_id(f) for f in splits[a]} & {speaker_id(f) for f in splits[b]}
    assert cli_main(["filelist", str(dataset / "video_crop"), "-o", str(tmp_path / "list.txt"),
                     "--split", "0.5,0.25,0.25"]) == 0
    train = list_videos(tmp_path / "list_train.txt")
    assert train and all(p.suffix == ".mp4" for p in train)
    assert len(list_videos(dataset / "video_crop")) == 5
    assert len(list_videos(str(dataset / "video_crop" / "spk1_*.mp4"))) == 2
