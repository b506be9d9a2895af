"""Tiny random-weight dubbing (KeySync) and animation (KeyFace) models in the published file formats.

For tests, benchmarks and the install check on machines without the published weights: every
stage of the real pipeline runs (same classes, same loading code), only smaller. The engines are
written as DeepSpeed model states (``{"module": {"_forward_module.<key>": tensor}}``, as the
published ``keyframe_dub.pt``), HuBERT as a transformers folder, WavLM as a safetensors file with
its config, the VAE as a keysync VAE file. The tiny VAE downsamples by 2 (not 8), so a tiny job
runs at ``resolution`` 32 with 16×16 latents. KeyFace adds wav2vec2 (a ``Wav2Vec2ForCTC`` folder, as
``facebook/wav2vec2-base-960h``) and BEATs (an original ``{"cfg", "model"}`` checkpoint, as
``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``), both 32-d, so the tiny KeyFace models take
64-d concatenated audio features.
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


#: a tiny BEATs configuration (original cfg names): 2 layers, 32-d, 2 heads, patch embedding 16-d.
TINY_BEATS = dict(input_patch_size=16, embed_dim=16, conv_bias=False, encoder_layers=2, encoder_embed_dim=32,
                  encoder_ffn_embed_dim=64, encoder_attention_heads=2, activation_fn="gelu", layer_norm_first=False,
                  deep_norm=True, conv_pos=128, conv_pos_groups=16, relative_position_embedding=True, num_buckets=320,
                  max_distance=800, gru_rel_pos=True, finetuned_model=True, predictor_class=5, dropout=0.0,
                  attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0, dropout_input=0.0)


def _tiny_vae(root: Path) -> tuple[Path, dict]:
    from keysync.models.vae import AutoencodingEngine
    from keysync.models.vae_io import save_vae

    decoder_cfg = {**TINY_VAE, "video_kernel_size": [3, 1, 1]}
    vae = AutoencodingEngine(encoder_config=TINY_VAE, decoder_config=decoder_cfg)
    path = save_vae(vae, root / "tiny_vae.safetensors", TINY_VAE, decoder_cfg)
    return path, {k: v for k, v in vae.state_dict().items() if k.startswith("decoder.")}


def write_tiny_beats(path: str | Path, seed: int = 0) -> Path:
    """A random tiny BEATs in the published checkpoint format: ``torch.save({"cfg", "model"})``
    with the original key names (each layer carrying a copy of layer 0's relative-position table,
    as the original module does)."""
    from keysync.audio.beats import BEATsModel

    torch.manual_seed(seed)
    model = BEATsModel(TINY_BEATS)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    table = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    for i in range(1, TINY_BEATS["encoder_layers"]):
        state[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = table.clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"cfg": dict(TINY_BEATS), "model": state}, path)
    return path


def write_tiny_keyface_weights(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write a complete tiny KeyFace weight set under ``root``; returns the paths by
    :data:`~keysync.pipelines.weights.KEYFACE_FILES` name (keyframe, interpolation,
    interpolation_bad, vae, wavlm, wav2vec2, beats). The weak network gets its own random weights."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from keysync.pipelines.animation_models import TINY_KEYFACE_CONFIGS
    from keysync.pipelines.weights import KEYFACE_FILES

    root = Path(root)
    torch.manual_seed(seed)
    paths = {}
    paths["vae"], decoder_state = _tiny_vae(root)
    for name, config in zip(("keyframe", "interpolation", "interpolation_bad"), TINY_KEYFACE_CONFIGS):
        paths[name] = _engine_file(config, decoder_state, root / KEYFACE_FILES[name].local)
    paths["wav2vec2"] = root / "wav2vec2-tiny"
    Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=32, **TINY_SPEECH)).save_pretrained(paths["wav2vec2"])
    paths["wavlm"] = _tiny_wavlm(root / "checkpoints" / "wavlm-tiny.safetensors")
    paths["beats"] = write_tiny_beats(root / KEYFACE_FILES["beats"].local, seed)
    return paths


def _tiny_wavlm(path: Path) -> Path:
    from transformers import WavLMConfig, WavLMModel

    wavlm_cfg = WavLMConfig(**TINY_SPEECH)
    wavlm = WavLMModel(wavlm_cfg)
    meta = {"config_json": json.dumps({k: v for k, v in wavlm_cfg.to_dict().items()
                                       if k not in ("transformers_version", "architectures")})}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in wavlm.state_dict().items()}, str(path), metadata=meta)
    return path


def write_tiny_dubbing_weights(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write a complete tiny weight set under ``root``; returns the paths by
    :data:`~keysync.pipelines.weights.DUBBING_FILES` name (keyframe, interpolation, vae, hubert, wavlm)."""
    from transformers import HubertConfig, HubertModel

    root = Path(root)
    torch.manual_seed(seed)
    paths = {}
    paths["vae"], decoder_state = _tiny_vae(root)
    paths["keyframe"] = _engine_file(TINY_CONFIGS[0], decoder_state, root / "checkpoints" / "keyframe_dub.pt")
    paths["interpolation"] = _engine_file(TINY_CONFIGS[1], decoder_state,
                                          root / "checkpoints" / "interpolation_dub.pt")
    HubertModel(HubertConfig(**TINY_SPEECH)).save_pretrained(root / "hubert-tiny")
    paths["hubert"] = root / "hubert-tiny"
    paths["wavlm"] = _tiny_wavlm(root / "checkpoints" / "wavlm-tiny.safetensors")
    return paths
