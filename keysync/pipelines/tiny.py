"""Tiny random-weight dubbing models written in the published file formats.

For tests, benchmarks and the install check on machines without the published weights: every
stage of the real pipeline runs (same classes, same loading code), only smaller. The engines are
written as DeepSpeed model states (``{"module": {"_forward_module.<key>": tensor}}``, as the
published ``keyframe_dub.pt``), HuBERT as a transformers folder, WavLM as a safetensors file with
its config, the VAE as a keysync VAE file. The tiny VAE downsamples by 2 (not 8), so a tiny job
runs at ``resolution`` 32 with 16×16 latents.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from keysync.pipelines.dubbing_models import TINY_CONFIGS

TINY_RESOLUTION = 32
TINY_VAE = dict(ch=32, ch_mult=[1, 2], num_res_blocks=1, z_channels=4, double_z=True, resolution=32, in_channels=3,
                out_ch=3, attn_resolutions=[], dropout=0.0, attn_type="vanilla")
TINY_SPEECH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def _engine_file(config: str, decoder_state: dict, path: Path) -> Path:
    from keysync.models.engine import build_engine

    engine = build_engine(config)
    state = engine.state_dict()
    for k, v in decoder_state.items():
        if f"first_stage_model.{k}" in state:
            state[f"first_stage_model.{k}"] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module": {f"_forward_module.{k}": v.contiguous() for k, v in state.items()}}, path)
    return path


def write_tiny_dubbing_weights(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write a complete tiny weight set under ``root``; returns the paths by
    :data:`~keysync.pipelines.weights.DUBBING_FILES` name (keyframe, interpolation, vae, hubert, wavlm)."""
    from transformers import HubertConfig, HubertModel, WavLMConfig, WavLMModel

    from keysync.models.vae import AutoencodingEngine
    from keysync.models.vae_io import save_vae

    root = Path(root)
    torch.manual_seed(seed)
    decoder_cfg = {**TINY_VAE, "video_kernel_size": [3, 1, 1]}
    vae = AutoencodingEngine(encoder_config=TINY_VAE, decoder_config=decoder_cfg)
    paths = {"vae": save_vae(vae, root / "tiny_vae.safetensors", TINY_VAE, decoder_cfg)}
    decoder_state = {k: v for k, v in vae.state_dict().items() if k.startswith("decoder.")}
    paths["keyframe"] = _engine_file(TINY_CONFIGS[0], decoder_state, root / "checkpoints" / "keyframe_dub.pt")
    paths["interpolation"] = _engine_file(TINY_CONFIGS[1], decoder_state,
                                          root / "checkpoints" / "interpolation_dub.pt")
    HubertModel(HubertConfig(**TINY_SPEECH)).save_pretrained(root / "hubert-tiny")
    paths["hubert"] = root / "hubert-tiny"
    wavlm_cfg = WavLMConfig(**TINY_SPEECH)
    wavlm = WavLMModel(wavlm_cfg)
    meta = {"config_json": json.dumps({k: v for k, v in wavlm_cfg.to_dict().items()
                                       if k not in ("transformers_version", "architectures")})}
    paths["wavlm"] = root / "checkpoints" / "wavlm-tiny.safetensors"
    save_file({k: v.contiguous() for k, v in wavlm.state_dict().items()}, str(paths["wavlm"]), metadata=meta)
    return paths
