"""Training a small VAE from scratch (keysync train-vae) and its exact latent-scale calibration."""

from __future__ import annotations

import torch

from keysync.cli.main import main
from keysync.data.synthetic_world import write_world
from keysync.models.vae import AutoencodingEngine
from keysync.models.vae_io import load_vae
from keysync.training.autoencoder import LATENT_SCALE, FrameWindows, calibrate_latent_scale, demo_vae_configs


def test_calibration_rescales_latents_exactly():
    torch.manual_seed(0)
    enc, dec = demo_vae_configs(resolution=32, ch=32, ch_mult=(1, 2))
    vae = AutoencodingEngine(encoder_config=enc, decoder_config=dec).eval()
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = vae.decode(vae.encode(x, mode="mode"), timesteps=6)
        k = calibrate_latent_scale(vae, x)
        z = vae.encode(x, mode="mode")
        after = vae.decode(z, timesteps=6)
    assert k > 0 and abs(z.std().item() * LATENT_SCALE - 1.0) < 1e-4  # diffusion sees unit-std latents
    assert torch.allclose(before, after, atol=1e-5)  # the same autoencoder, reparametrised


def test_train_vae_command(tmp_path, capsys):
    videos = write_world(tmp_path / "world", n_clips=2, seconds=1.0, size=64, seed=1, crop_size=32)
    windows = FrameWindows(videos, resolution=32, frames=4, samples=5, mouth_weight=4.0)
    item = windows[3]
    assert item["pixels"].shape == (4, 3, 32, 32) and -1 <= item["pixels"].min() and item["pixels"].max() <= 1
    assert item["weight"].max() == 4.0 and item["weight"].min() == 1.0  # the mouth is weighted
    out = tmp_path / "vae.safetensors"
    code = main(["train-vae", str(tmp_path / "world" / "video_crop"), "-o", str(out), "--resolution", "32",
                 "--steps", "3", "--ch_mult", "1,2", "--frames", "4"])
    assert code == 0 and "VAE trained 3 steps on 2 videos" in capsys.readouterr().out
    vae = load_vae(out)
    with torch.no_grad():
        z = vae.encode(windows[0]["pixels"], mode="mode")
    assert z.shape == (4, 4, 16, 16)
    assert main(["train-vae", str(tmp_path / "world" / "video_crop"), "-o", str(tmp_path / "x.pt")]) == 2
