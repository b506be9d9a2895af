"""Training a small VAE (SD-style encoder + SVD-style temporal decoder) from scratch.

Used for the bundled demo model, whose synthetic world has nothing in common with the SVD VAE's
training images; the architecture is the one every pipeline loads (:mod:`keysync.models.vae`),
only smaller, and the result is written with :func:`keysync.models.vae_io.save_vae`.

Batches are windows of ``frames`` consecutive frames (the decoder mixes over time), pixels in
[-1, 1]. Loss per window: L1 + L2 of the reconstruction, with the pixels around the mouth
(landmarks 48-67, when ``landmarks_crop`` files exist) weighted ``mouth_weight`` times, plus
``kl_weight`` · KL of the posterior.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["FrameWindows", "AutoencoderModule", "train_vae", "demo_vae_configs", "calibrate_latent_scale"]

#: the diffusion models see latents × 0.18215 (the SD/SVD constant, built into the pipelines);
#: a demo VAE is rescaled so that those scaled latents have unit standard deviation.
LATENT_SCALE = 0.18215


def demo_vae_configs(resolution: int = 64, ch: int = 32, ch_mult: Sequence[int] = (1, 2, 2)) -> tuple[dict, dict]:
    """(encoder_config, decoder_config) of a small VAE with downsampling 2^(len(ch_mult) - 1)."""
    enc = dict(ch=ch, ch_mult=list(ch_mult), num_res_blocks=1, z_channels=4, double_z=True, resolution=resolution,
               in_channels=3, out_ch=3, attn_resolutions=[], dropout=0.0, attn_type="vanilla")
    return enc, {**enc, "video_kernel_size": [3, 1, 1]}


class FrameWindows(Dataset):
    """Random windows of ``frames`` consecutive frames of the given videos, resized to
    ``resolution``: ``{"pixels": (T, 3, R, R) in [-1, 1], "weight": (T, 1, R, R)}``. Videos are
    decoded once and kept in memory (small datasets only)."""

    def __init__(self, videos: Sequence[Path], resolution: int = 64, frames: int = 5, samples: int = 10_000,
                 mouth_weight: float = 4.0, seed: int = 0):
        from keysync.data.paths import ArtefactLayout
        from keysync.media import read_video

        self.clips, self.weights = [], []
        for video in videos:
            pixels, _ = read_video(video)
            h, w = pixels.shape[1:3]
            x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            if (h, w) != (resolution, resolution):
                x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
            weight = torch.ones(len(x), 1, resolution, resolution)
            layout = ArtefactLayout.from_video(video)
            lm_path = layout.landmarks(layout.relative(video))
            if lm_path.is_file() and mouth_weight != 1.0:
                lms = np.load(lm_path) * np.array([resolution / w, resolution / h])
                for i, lm in enumerate(lms[: len(x)]):
                    (x0, y0), (x1, y1) = lm[48:68].min(0), lm[48:68].max(0)
                    pad = 0.5 * (y1 - y0) + 2
                    weight[i, :, max(int(y0 - pad), 0):int(y1 + pad) + 1, max(int(x0 - 2), 0):int(x1 + 2) + 1] = mouth_weight
            if len(x) >= frames:
                self.clips.append(x)
                self.weights.append(weight)
        if not self.clips:
            raise ValueError(f"no video with at least {frames} frames among {len(videos)}")
        self.frames, self.samples, self.seed = frames, samples, seed

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        c = int(rng.integers(len(self.clips)))
        s = int(rng.integers(len(self.clips[c]) - self.frames + 1))
        return {"pixels": self.clips[c][s: s + self.frames], "weight": self.weights[c][s: s + self.frames]}


def _lightning():
    import lightning.pytorch as pl

    return pl


class AutoencoderModule(_lightning().LightningModule):
    """Lightning module around :class:`keysync.models.vae.AutoencodingEngine`."""

    def __init__(self, encoder_config: dict, decoder_config: dict, learning_rate: float = 1e-3,
                 kl_weight: float = 1e-6):
        super().__init__()
        from keysync.models.vae import AutoencodingEngine

        self.save_hyperparameters()
        self.vae = AutoencodingEngine(encoder_config=encoder_config, decoder_config=decoder_config)

    def training_step(self, batch, batch_idx):
        x, weight = batch["pixels"], batch["weight"]
        b, t = x.shape[:2]
        z, reg = self.vae.encode(x.flatten(0, 1), return_reg_log=True)
        out = self.vae.decode(z, timesteps=t)
        err = (out - x.flatten(0, 1)) * weight.flatten(0, 1)
        rec = err.abs().mean() + err.pow(2).mean()
        loss = rec + self.hparams.kl_weight * reg["kl_loss"]
        self.log_dict({"train/rec": rec.detach(), "train/kl": reg["kl_loss"].detach()}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.vae.parameters(), lr=self.hparams.learning_rate, weight_decay=0.0)
        steps = max(int(self.trainer.max_steps), 1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.learning_rate, total_steps=steps,
                                                    pct_start=0.05)
        return [opt], [{"scheduler": sched, "interval": "step"}]


@torch.no_grad()
def calibrate_latent_scale(vae, pixels: torch.Tensor, target_std: float = 1.0 / LATENT_SCALE) -> float:
    """Rescale ``vae``'s latent space in place (exactly: the encoder's mean and log-variance
    outputs and the decoder's input convolution) so that the posterior means of ``pixels``
    ((N, 3, H, W) in [-1, 1]) have standard deviation ``target_std``. Returns the factor."""
    z = vae.encode(pixels, mode="mode")
    k = float(target_std / z.std().clamp_min(1e-8))
    zc = vae.encoder.conv_out.out_channels // 2
    vae.encoder.conv_out.weight[:zc] *= k
    vae.encoder.conv_out.bias[:zc] *= k
    vae.encoder.conv_out.bias[zc:] += 2.0 * float(np.log(k))
    vae.decoder.conv_in.weight /= k
    return k


def train_vae(videos: Sequence[Path], output: str | Path, resolution: int = 64, steps: int = 1500,
              batch_size: int = 2, frames: int = 5, learning_rate: float = 1e-3, ch: int = 32,
              ch_mult: Sequence[int] = (1, 2, 2), seed: int = 0, log_dir: str | Path | None = None) -> Path:
    """Train a VAE on ``videos`` for ``steps`` optimiser steps and save it to ``output``
    (``.safetensors`` with its configs; loadable with :func:`keysync.models.vae_io.load_vae`)."""
    from torch.utils.data import DataLoader

    from keysync.models.vae_io import save_vae

    pl = _lightning()
    pl.seed_everything(seed, workers=True)
    enc, dec = demo_vae_configs(resolution, ch, ch_mult)
    data = FrameWindows([Path(v) for v in videos], resolution, frames, samples=steps * batch_size, seed=seed)
    module = AutoencoderModule(enc, dec, learning_rate)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, log_every_n_steps=50, default_root_dir=log_dir)
    trainer.fit(module, DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0))
    vae = module.vae.eval()
    sample = torch.cat([clip[:: max(len(clip) // 8, 1)] for clip in data.clips])
    calibrate_latent_scale(vae, sample)
    return save_vae(vae, output, enc, dec)
