"""The models of a KeyFace animation job, loaded once from local files (nothing is downloaded).

:func:`load_animation_models` builds the keyframe and interpolation engines from their configs,
loads the published checkpoints strictly (the training loss's ``loss_fn.*`` LPIPS weights that a
KeyFace training checkpoint may carry are ignored), gives the interpolation engine's
autoguidance denoiser its weak network (only ``model.diffusion_model.*`` and
``model.learned_mask`` of ``interpolation_bad.pt`` are read, as the reference does), and loads
the VAE encoder and the three audio encoders (WavLM, wav2vec2, BEATs). Paths not given are looked
up under ``pretrained_models/``; every missing file is named in one
:class:`~keysync.pipelines.weights.MissingWeightsError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from keysync.audio.combined import concat_features
from keysync.pipelines.weights import DEFAULT_ROOT, KEYFACE_FILES, resolve_weights

log = logging.getLogger(__name__)

FULL_KEYFACE_CONFIGS = ("keyface_keyframe_inference", "keyface_interpolation_inference",
                        "keyface_interpolation_bad_inference")
TINY_KEYFACE_CONFIGS = ("tiny/keyface_keyframe_inference", "tiny/keyface_interpolation_inference",
                        "tiny/keyface_interpolation_bad_inference")
#: checkpoint keys a KeyFace engine does not use: the training loss's LPIPS network.
IGNORED_PREFIXES = ("loss_fn.",)
#: what the reference reads from the weak model's checkpoint (keys containing these).
BAD_NETWORK_KEYS = ("diffusion_model", "learned_mask")


@dataclass
class AnimationModels:
    """Everything an animation job runs: the two diffusion engines (the interpolation one holding
    its weak network), the VAE (encoder for the identity image) and the audio encoders
    (``(audio, sr, n_frames) → (F, 2, D)``)."""

    keyframe: torch.nn.Module
    interpolation: torch.nn.Module
    vae: torch.nn.Module
    wavlm: object
    wav2vec2: object
    beats: object

    def audio_features(self, audio: np.ndarray, sr: int, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """16 kHz mono audio → (keyframe (F, 2, D_wavlm + D_beats), interpolation (F, 2, D_w2v + D_beats));
        BEATs runs once for both."""
        beats = self.beats(audio, sr, n_frames)
        return (concat_features(self.wavlm(audio, sr, n_frames), beats),
                concat_features(self.wav2vec2(audio, sr, n_frames), beats))


def _load_filtered(module: torch.nn.Module, state: dict, path: Path) -> None:
    from keysync.models.checkpoints import CheckpointError, match_state_dict

    usable, report = match_state_dict(module, state, str(path))
    if not report.ok:
        raise CheckpointError(f"checkpoint does not fit the model ({type(module).__name__}):\n{report.summary()}")
    module.load_state_dict(usable, strict=False)
    log.info(report.summary())


def load_keyface_engine(config: str | Path, checkpoint: str | Path, device="cpu", overrides=()):
    """A :class:`DiffusionEngine` from a config with ``checkpoint`` loaded strictly, ignoring
    :data:`IGNORED_PREFIXES` (and the known-unused keys of :mod:`keysync.models.checkpoints`)."""
    from keysync.models.checkpoints import read_state_dict
    from keysync.models.engine import build_engine

    engine = build_engine(config, overrides)
    state = {k: v for k, v in read_state_dict(checkpoint).items() if not k.startswith(IGNORED_PREFIXES)}
    _load_filtered(engine, state, Path(checkpoint))
    return engine.eval().requires_grad_(False).to(device)


def load_bad_network(config: str | Path, checkpoint: str | Path, device="cpu") -> torch.nn.Module:
    """The weak interpolation network (wrapper + VideoUNet) of ``config`` with the ``model.*`` keys
    of ``checkpoint`` that contain :data:`BAD_NETWORK_KEYS`, loaded strictly."""
    from keysync.models.checkpoints import read_state_dict
    from keysync.models.engine import load_model_config
    from keysync.utils.config import instantiate_from_config

    network = instantiate_from_config(load_model_config(config).network)
    state = {k[len("model."):]: v for k, v in read_state_dict(checkpoint).items()
             if k.startswith("model.") and any(s in k for s in BAD_NETWORK_KEYS)}
    _load_filtered(network, state, Path(checkpoint))
    return network.eval().requires_grad_(False).to(device)


def load_animation_models(weights: dict[str, str | Path | None] | None = None, root: str | Path = DEFAULT_ROOT,
                          keyframe_config: str | Path = FULL_KEYFACE_CONFIGS[0],
                          interpolation_config: str | Path = FULL_KEYFACE_CONFIGS[1],
                          bad_config: str | Path = FULL_KEYFACE_CONFIGS[2], device: str | torch.device = "cpu",
                          audio_mode: str = "aligned") -> AnimationModels:
    """Load every model of an animation job. ``weights``: explicit paths by name (keys of
    :data:`KEYFACE_FILES`), the rest from ``root``. ``audio_mode``: see :mod:`keysync.audio.encoders`
    (BEATs knows "aligned" and "reference_offline")."""
    from keysync.audio.beats import BEATsEncoder
    from keysync.audio.encoders import Wav2Vec2Encoder, WavLMEncoder
    from keysync.models.vae_io import load_vae

    paths = resolve_weights(KEYFACE_FILES, root, weights)
    keyframe = load_keyface_engine(keyframe_config, paths["keyframe"], device)
    interpolation = load_keyface_engine(interpolation_config, paths["interpolation"], device)
    if hasattr(interpolation.denoiser, "set_bad_network"):
        interpolation.denoiser.set_bad_network(load_bad_network(bad_config, paths["interpolation_bad"], device))
    else:
        log.warning("%s has no autoguidance denoiser: interpolation_bad is not used", interpolation_config)
    vae = load_vae(paths["vae"], device=device)
    beats_mode = "reference_offline" if audio_mode == "reference_offline" else "aligned"
    return AnimationModels(
        keyframe, interpolation, vae,
        wavlm=WavLMEncoder.from_path(paths["wavlm"], device=device, mode=audio_mode),
        wav2vec2=Wav2Vec2Encoder.from_path(paths["wav2vec2"], device=device, mode=audio_mode),
        beats=BEATsEncoder.from_path(paths["beats"], device=device, mode=beats_mode))
