"""The models of a dubbing job, loaded once from local files (nothing is downloaded).

:func:`load_dubbing_models` builds both diffusion engines from their configs and loads the
published checkpoints strictly (a wrong or truncated file is a clear :class:`CheckpointError`),
the VAE encoder, HuBERT (keyframe audio) and WavLM (interpolation audio), a landmark backend and,
when asked, SAM 2. Paths not given are looked up under ``pretrained_models/``; every missing file
is named in one :class:`~keysync.pipelines.weights.MissingWeightsError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from keysync.pipelines.weights import DEFAULT_ROOT, DUBBING_FILES, resolve_weights

log = logging.getLogger(__name__)

FULL_CONFIGS = ("keysync_keyframe_inference", "keysync_interpolation_inference")
TINY_CONFIGS = ("tiny/keysync_keyframe_inference", "tiny/keysync_interpolation_inference")


@dataclass
class DubbingModels:
    """Everything a dubbing job runs: the two diffusion engines, the VAE encoder, the two speech
    encoders (``(audio, sr, n_frames) → (F, 2, D)``), a landmark backend and, optionally, a SAM 2
    occluder (:class:`keysync.face.occlusion.SAM2Occluder`)."""

    keyframe: torch.nn.Module
    interpolation: torch.nn.Module
    vae: torch.nn.Module
    keyframe_audio: object
    interpolation_audio: object
    landmarks: object
    occluder: object | None = None

    def set_guidance(self, audio_scale: float | None = None, ref_scale: float | None = None) -> None:
        """Audio / reference guidance scales of both samplers (defaults 5 and 2, SPEC §4.6)."""
        for engine in (self.keyframe, self.interpolation):
            guider = engine.sampler.guider
            if audio_scale is not None:
                guider.audio_ratio = float(audio_scale)
            if ref_scale is not None:
                guider.ref_ratio = float(ref_scale)

    def use_fast_sampler(self, num_steps: int = 5) -> None:
        """Fast mode: DPM-Solver++(2M) with ``num_steps`` steps in both stages (same denoiser,
        same guidance) instead of the reference's 11 Euler steps."""
        from keysync.diffusion.samplers import fast_sampler

        for engine in (self.keyframe, self.interpolation):
            engine.sampler = fast_sampler(engine.sampler, num_steps)

    def compile(self, mode: str | None = None) -> None:
        """``torch.compile`` the two VideoUNets and the VAE decoder in place (after the weights are
        loaded: compiled modules rename their state-dict keys). The first call of every new shape
        compiles (minutes at full size); ``mode`` as torch.compile's (e.g. "max-autotune")."""
        for engine in (self.keyframe, self.interpolation):
            engine.model.diffusion_model = torch.compile(engine.model.diffusion_model, mode=mode)
        vae = self.interpolation.first_stage_model
        vae.decoder = torch.compile(vae.decoder, mode=mode)

    def close(self) -> None:
        close = getattr(self.landmarks, "close", None)
        if close is not None:
            close()


def load_engine(config: str | Path, checkpoint: str | Path, device="cpu", overrides=()):
    """A :class:`DiffusionEngine` from a config name/file with ``checkpoint`` loaded strictly."""
    from keysync.models.checkpoints import load_checkpoint
    from keysync.models.engine import build_engine

    engine = build_engine(config, overrides)
    load_checkpoint(engine, checkpoint, strict=True)
    return engine.eval().requires_grad_(False).to(device)


def load_dubbing_models(weights: dict[str, str | Path | None] | None = None, root: str | Path = DEFAULT_ROOT,
                        keyframe_config: str | Path = FULL_CONFIGS[0],
                        interpolation_config: str | Path = FULL_CONFIGS[1], device: str | torch.device = "cpu",
                        landmark_backend: str = "mediapipe", fan_weights: str | Path | None = None,
                        detector_weights: str | Path | None = None, sam2_checkpoint: str | Path | None = None,
                        sam2_config: str | None = None, audio_mode: str = "aligned") -> DubbingModels:
    """Load every model of a dubbing job. ``weights``: explicit paths by name (keys of
    :data:`DUBBING_FILES`: keyframe, interpolation, wavlm, hubert, vae), the rest from ``root``."""
    from keysync.audio.encoders import HubertEncoder, WavLMEncoder
    from keysync.face.landmarks import create_backend
    from keysync.models.vae_io import load_vae

    paths = resolve_weights(DUBBING_FILES, root, weights)
    keyframe = load_engine(keyframe_config, paths["keyframe"], device)
    interpolation = load_engine(interpolation_config, paths["interpolation"], device)
    vae = load_vae(paths["vae"], device=device)
    hubert = HubertEncoder.from_path(paths["hubert"], device=device, mode=audio_mode)
    wavlm = WavLMEncoder.from_path(paths["wavlm"], device=device, mode=audio_mode)
    if landmark_backend == "fan":
        if fan_weights is None or detector_weights is None:
            raise ValueError("the 'fan' landmark backend needs --fan_weights and --detector_weights files")
        backend = create_backend("fan", fan_weights=fan_weights, detector_weights=detector_weights, device=str(device))
    else:
        backend = create_backend(landmark_backend)
    occluder = None
    if sam2_checkpoint is not None:
        from keysync.face.occlusion import DEFAULT_CONFIG, SAM2Occluder

        occluder = SAM2Occluder.from_files(sam2_config or DEFAULT_CONFIG, sam2_checkpoint, device=str(device))
    return DubbingModels(keyframe, interpolation, vae, hubert, wavlm, backend, occluder)
