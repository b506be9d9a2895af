"""Training callbacks: sample videos at low cost, a per-rank record of the samples seen, and
a checkpoint callback whose ``last.ckpt`` always holds the final step.

:class:`SampleVideoLogger` (the reference's VideoLogger, every 1000 batches) denoises the
first clip(s) of the current batch with a short Euler schedule, decodes them frame by frame
and writes ``<log_dir>/samples/step_XXXXXXX.mp4`` (ground truth | sample, side by side) and
``.png`` (the same frames as a 2-row strip). Only rank 0 samples; EMA weights are used if on.

:class:`SampleIdRecorder` writes ``<log_dir>/sample_ids_rank<R>.txt`` (one ``sample_id`` per
line, in training order): a cheap audit of what each rank trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from einops import rearrange
from lightning.pytorch.callbacks import ModelCheckpoint

from keysync.diffusion.guidance import IdentityGuider
from keysync.diffusion.samplers import EulerEDMSampler
from keysync.diffusion.schedules import EDMDiscretization
from keysync.utils.config import instantiate_from_config

log = logging.getLogger(__name__)


def log_dir(trainer: pl.Trainer) -> Path:
    """The run's logging folder (the logger's, else the trainer's root)."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def _first_clips(batch: Mapping[str, Any], n: int) -> dict[str, Any]:
    return {k: (v[:n] if torch.is_tensor(v) and v.ndim > 0 else v[:n] if isinstance(v, list) else v)
            for k, v in batch.items()}


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Pixels (N, 3, H, W) in [-1, 1] → uint8 (N, H, W, 3)."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rearrange(x, "n c h w -> n h w c").cpu().numpy()


class SampleVideoLogger(pl.Callback):
    """Sample the current batch every ``every_n_steps`` optimizer steps.

    Args:
        every_n_steps: sampling period in global steps (0 disables).
        num_steps: Euler steps of the EDM (Karras) schedule from ``sigma_max`` (cheap, not the
            inference AYS schedule).
        guider: guider config (``_target_``); default none (one pass per step).
        max_clips: clips of the batch to sample.
        write_mp4, write_png: outputs; the mp4 needs ffmpeg.
        log_first_step: also sample before the first optimizer step.
    """

    def __init__(self, every_n_steps: int = 1000, num_steps: int = 4, sigma_max: float = 700.0,
                 sigma_min: float = 0.002, guider: Mapping[str, Any] | None = None, max_clips: int = 1,
                 write_mp4: bool = True, write_png: bool = True, log_first_step: bool = False, fps: int = 25,
                 seed: int = 0, force_uc_zero_embeddings: Sequence[str] = ("cond_frames", "audio_emb")) -> None:
        super().__init__()
        self.every_n_steps, self.max_clips, self.fps, self.seed = every_n_steps, max_clips, fps, seed
        self.write_mp4, self.write_png, self.log_first_step = write_mp4, write_png, log_first_step
        self.force_uc_zero_embeddings = list(force_uc_zero_embeddings)
        self.sampler = EulerEDMSampler(discretization=EDMDiscretization(sigma_min, sigma_max),
                                       guider=instantiate_from_config(guider) if guider else IdentityGuider(),
                                       num_steps=num_steps)
        self.written: list[Path] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Mapping[str, Any], batch_idx: int) -> None:
        step = trainer.global_step
        if self.every_n_steps <= 0 or step % self.every_n_steps or not trainer.is_global_zero:
            return
        if step == 0 and not self.log_first_step:
            return
        self.written += self.log_samples(pl_module, batch, log_dir(trainer) / "samples" / f"step_{step:07d}")

    @torch.no_grad()
    def sample(self, pl_module: pl.LightningModule, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(samples, ground truth) pixels of the first clips, each (n·T, 3, H, W) in [-1, 1]."""
        engine = pl_module.engine
        sub = _first_clips(batch, self.max_clips)
        latents = sub[engine.input_key]
        n, _, t, h, w = latents.shape
        was_training = pl_module.training
        pl_module.eval()
        try:
            with pl_module.ema_scope():
                cond, uc = engine.conditioner.get_unconditional_conditioning(
                    sub, force_uc_zero_embeddings=self.force_uc_zero_embeddings)
                self.sampler.device = latents.device
                gen = torch.Generator(device="cpu").manual_seed(self.seed)
                noise = torch.randn(n * t, 4, h, w, generator=gen).to(latents)
                out = self.sampler(engine.denoise_fn(t), noise, cond=cond, uc=uc)
                pixels = engine.decode_first_stage(out).clamp(-1, 1)
            if "original_frames" in sub:
                truth = rearrange(sub["original_frames"], "b c t h w -> (b t) c h w")
            else:
                truth = engine.decode_first_stage(rearrange(latents, "b c t h w -> (b t) c h w")).clamp(-1, 1)
        finally:
            pl_module.train(was_training)
        return pixels, truth.to(pixels)

    def log_samples(self, pl_module: pl.LightningModule, batch: Mapping[str, Any], stem: Path) -> list[Path]:
        pixels, truth = self.sample(pl_module, batch)
        frames = np.concatenate([to_uint8(truth), to_uint8(pixels)], axis=2)  # (N, H, 2W, 3)
        stem.parent.mkdir(parents=True, exist_ok=True)
        written = []
        if self.write_png:
            from PIL import Image

            strip = np.concatenate([np.concatenate(list(to_uint8(x)), axis=1) for x in (truth, pixels)], axis=0)
            Image.fromarray(strip).save(stem.with_suffix(".png"))
            written.append(stem.with_suffix(".png"))
        if self.write_mp4:
            from keysync.media import MediaError, write_video

            try:
                write_video(stem.with_suffix(".mp4"), frames, fps=self.fps)
                written.append(stem.with_suffix(".mp4"))
            except (MediaError, OSError) as err:
                log.warning("sample video not written (%s); the png is", err)
        log.info("logged samples: %s", ", ".join(map(str, written)))
        return written


class FinalStateCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` whose ``last`` checkpoint also holds the final step of a run.

    Lightning only writes ``last.ckpt`` when a periodic save happens (or never did); a run
    that stops at ``max_steps`` between two periods would leave an older ``last.ckpt``. Files
    are overwritten (no ``-v1`` versions: a run folder holds one run), and the state key does
    not depend on the save period, so a resumed run with another period restores its state.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(*args, **kwargs)

    @property
    def state_key(self) -> str:
        return type(self).__qualname__

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_last and getattr(self, "_last_global_step_saved", -1) != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)


class SampleIdRecorder(pl.Callback):
    """Record ``batch["sample_id"]`` of every training batch; written per rank at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Mapping[str, Any], batch_idx: int) -> None:
        self.ids += list(batch.get("sample_id", []))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = log_dir(trainer) / f"sample_ids_rank{trainer.global_rank}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{i}\n" for i in self.ids))
