"""DiffusionEngine: the container whose state-dict layout is the published checkpoints'.

Submodules (and checkpoint prefixes): ``model`` (input wrapper holding
``diffusion_model``, the VideoUNet; ``model.learned_mask`` for interpolation),
``conditioner`` (``conditioner.embedders.N``) and ``first_stage_model`` (the VAE; its
encoder is dropped when ``input_key == "latents"``, as in the reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from keysync.models.vae import decode_latents
from keysync.utils.config import configs_dir, instantiate_from_config, isolated_global_hydra


class DiffusionEngine(nn.Module):
    """Network wrapper + conditioner + first stage, with the reference's module names.

    Args:
        network: the input wrapper (DubbingWrapper / InterpolationWrapper / OpenAIWrapper).
        conditioner: a :class:`~keysync.models.conditioning.GeneralConditioner`.
        first_stage_model: the VAE (:class:`~keysync.models.vae.AutoencodingEngine`).
        scale_factor: latent scale s (latents used by the diffusion model = VAE latents · s).
        input_key: ``"latents"`` when the data are precomputed latents (drops the VAE encoder).
        en_and_decode_n_samples_a_time: frames per VAE decode call (the scripts use 1).
        denoiser, sampler, loss_fn: optional diffusion components (configs or objects).
    """

    def __init__(
        self,
        network: nn.Module,
        conditioner: nn.Module,
        first_stage_model: nn.Module,
        scale_factor: float = 0.18215,
        input_key: str = "latents",
        disable_first_stage_autocast: bool = True,
        en_and_decode_n_samples_a_time: int | None = 1,
        denoiser: Any = None,
        sampler: Any = None,
        loss_fn: Any = None,
    ) -> None:
        super().__init__()
        self.model = network
        self.conditioner = conditioner
        self.first_stage_model = first_stage_model
        if input_key == "latents" and getattr(first_stage_model, "encoder", None) is not None:
            first_stage_model.encoder = None
        self.first_stage_model.requires_grad_(False)
        self.scale_factor = scale_factor
        self.input_key = input_key
        self.disable_first_stage_autocast = disable_first_stage_autocast
        self.en_and_decode_n_samples_a_time = en_and_decode_n_samples_a_time
        self.denoiser = instantiate_from_config(denoiser)
        self.sampler = instantiate_from_config(sampler)
        self.loss_fn = instantiate_from_config(loss_fn)

    @property
    def diffusion_model(self) -> nn.Module:
        return self.model.diffusion_model

    def _require(self, name: str) -> Any:
        part = getattr(self, name)
        if part is None:
            raise RuntimeError(f"this engine was built without a {name} (add `{name}:` to its config)")
        return part

    def decode_frame(self, latents_raw: torch.Tensor) -> torch.Tensor:
        """Raw (unscaled) latents (N, 4, h, w) → pixels, each frame decoded alone (T = 1).

        Gradients flow (the keyframe pixel loss trains through the frozen decoder).
        """
        with torch.autocast(latents_raw.device.type, enabled=not self.disable_first_stage_autocast):
            return torch.cat([self.first_stage_model.decode(z[None], timesteps=1) for z in latents_raw])

    def forward(self, batch: Mapping[str, Any], **loss_kwargs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss of one batch: ``batch[input_key]`` are scaled latents (B, 4, T, h, w).

        Returns (mean loss, logged parts averaged over frames). ``loss_kwargs`` go to the
        loss (``noise``, ``sigma_rand``, ``pixel_frames``, ``generator`` for determinism).
        """
        loss_fn = self._require("loss_fn")
        cond = self.conditioner(batch, generator=loss_kwargs.get("generator"))
        per_frame, logs = loss_fn(self.model, self._require("denoiser"), cond, batch[self.input_key], batch,
                                  self.decode_frame, **loss_kwargs)
        return per_frame.mean(), {k: v.mean() for k, v in logs.items()}

    def denoise_fn(self, num_video_frames: int, **denoiser_kwargs):
        """A ``(x, σ, cond) -> D`` closure for the sampler (x: (N, 4, h, w), N = clips·T).

        ``image_only_indicator`` is zeros with one row per clip of the (guidance-stacked)
        batch; ``denoiser_kwargs`` (``chunk_size``, ...) go to the denoiser.
        """
        denoiser = self._require("denoiser")

        def fn(x: torch.Tensor, sigma: torch.Tensor, cond: Mapping[str, torch.Tensor]) -> torch.Tensor:
            indicator = torch.zeros(x.shape[0] // num_video_frames, num_video_frames, device=x.device, dtype=x.dtype)
            return denoiser(self.model, x, sigma, cond, num_video_frames=num_video_frames,
                            image_only_indicator=indicator, **denoiser_kwargs)

        return fn

    @torch.no_grad()
    def sample(self, cond: Mapping[str, torch.Tensor], uc: Mapping[str, torch.Tensor] | None, noise: torch.Tensor,
               num_video_frames: int = 14, return_intermediates: bool = False, **denoiser_kwargs):
        """Run the configured sampler from unit noise (N, 4, h, w) → scaled latents (N, 4, h, w)."""
        sampler = self._require("sampler")
        return sampler(self.denoise_fn(num_video_frames, **denoiser_kwargs), noise, cond=cond, uc=uc,
                       return_intermediates=return_intermediates)

    @torch.no_grad()
    def decode_first_stage(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, 4, h, w) → pixels (N, 3, H, W), roughly in [-1, 1] (not clamped)."""
        return decode_latents(self.first_stage_model, latents, self.en_and_decode_n_samples_a_time, self.scale_factor)

    @torch.no_grad()
    def encode_first_stage(self, pixels: torch.Tensor, mode: str = "sample",
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixels (N, 3, H, W) in [-1, 1] → scaled latents (N, 4, H/8, W/8)."""
        if getattr(self.first_stage_model, "encoder", None) is None:
            raise RuntimeError("this engine was built with input_key='latents': it has no VAE encoder")
        return self.first_stage_model.encode(pixels, mode=mode, generator=generator) * self.scale_factor


def load_model_config(name: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose a model config.

    ``name`` is a config under ``configs/model`` (e.g. ``"keysync_keyframe"``,
    ``"tiny/keysync_interpolation"``) or a path to a YAML file. ``overrides`` are Hydra
    override strings (``"network.diffusion_model.use_checkpoint=false"``).
    """
    from hydra import compose, initialize_config_dir

    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        config_dir, config_name = path.resolve().parent, path.stem
    else:
        config_dir, config_name = configs_dir() / "model", str(name)
        if not (config_dir / f"{config_name}.yaml").is_file():
            available = sorted(str(p.relative_to(config_dir).with_suffix("")) for p in config_dir.rglob("*.yaml"))
            raise FileNotFoundError(f"no model config {name!r}; available: {', '.join(available)}")
    with isolated_global_hydra(), initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def build_engine(config: str | Path | Mapping | DictConfig, overrides: Sequence[str] = (),
                 device: str | torch.device | None = None) -> DiffusionEngine:
    """Instantiate a :class:`DiffusionEngine` from a config name, file or mapping.

    With ``device="meta"`` nothing is allocated (key/shape listings of full-size models).
    """
    if isinstance(config, (str, Path)):
        config = load_model_config(config, overrides)
    elif overrides:
        raise ValueError("overrides are only supported with a config name or file")
    if not isinstance(config, DictConfig):
        config = OmegaConf.create(dict(config))
    with torch.device(device) if device is not None else _nullcontext():
        return instantiate_from_config(config)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
