"""Load and save first-stage VAEs from local files (no hub access).

Accepted by :func:`load_vae`:

* a diffusers folder of the SVD VAE (``config.json`` + ``diffusion_pytorch_model[.fp16].safetensors``
  of ``AutoencoderKLTemporalDecoder``), converted to our keys without importing diffusers;
* a ``.safetensors`` file written by :func:`save_vae` (our keys; encoder/decoder configs in
  the file's metadata);
* a DiffusionEngine checkpoint (``first_stage_model.*`` keys) with ``ddconfig`` given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from keysync.media import atomic_output
from keysync.models.checkpoints import CheckpointError, read_state_dict
from keysync.models.vae import AutoencodingEngine
from keysync.models.vae_diffusers import convert_diffusers_vae_state_dict, ddconfig_from_diffusers_config

METADATA_KEY = "keysync_vae_config"


def save_vae(vae: AutoencodingEngine, path: str | Path, encoder_config: Mapping, decoder_config: Mapping) -> Path:
    """Write ``vae``'s weights and configs to one ``.safetensors`` file, atomically."""
    meta = {METADATA_KEY: json.dumps({"encoder_config": dict(encoder_config), "decoder_config": dict(decoder_config)})}
    state = {k: v.detach().contiguous() for k, v in vae.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(state, tmp, metadata=meta)
    return Path(path)


def _diffusers_folder(folder: Path) -> AutoencodingEngine:
    config = json.loads((folder / "config.json").read_text())
    weights = next((folder / n for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
                    if (folder / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{folder}: no diffusion_pytorch_model[.fp16].safetensors next to config.json")
    ddconfig = ddconfig_from_diffusers_config(config)
    vae = AutoencodingEngine(encoder_config=ddconfig, decoder_config={**ddconfig, "video_kernel_size": [3, 1, 1]})
    state = {k: v.float() for k, v in convert_diffusers_vae_state_dict(load_file(str(weights))).items()}
    vae.load_state_dict(state, strict=True)
    return vae


def load_vae(path: str | Path, ddconfig: Mapping[str, Any] | None = None, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> AutoencodingEngine:
    """Build an :class:`AutoencodingEngine` (encoder + temporal decoder) from a local path, in eval mode."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"VAE weights not found: {path}. Give a diffusers SVD VAE folder (config.json + safetensors), "
            "a file written by keysync.models.vae_io.save_vae, or a checkpoint with first_stage_model.* keys"
        )
    if path.is_dir() and (path / "config.json").is_file():
        vae = _diffusers_folder(path)
    else:
        meta = {}
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
        state = read_state_dict(path)
        if METADATA_KEY in meta:
            cfg = json.loads(meta[METADATA_KEY])
        elif ddconfig is not None:
            cfg = {"encoder_config": dict(ddconfig), "decoder_config": {**ddconfig, "video_kernel_size": [3, 1, 1]}}
        else:
            raise CheckpointError(f"{path}: no VAE config in the file; pass ddconfig")
        if any(k.startswith("first_stage_model.") for k in state):
            state = {k.removeprefix("first_stage_model."): v for k, v in state.items() if k.startswith("first_stage_model.")}
        vae = AutoencodingEngine(**cfg)
        missing, unexpected = vae.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path}: VAE keys do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return vae.to(device=device, dtype=dtype).eval()
