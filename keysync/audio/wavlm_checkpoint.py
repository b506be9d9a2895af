"""Microsoft's original WavLM checkpoints -> transformers ``WavLMModel``.

``WavLM-Base+.pt`` (what KeySync / KeyFace load through their copy of Microsoft's
``WavLM.py``) is a ``torch.save`` of ``{"cfg": dict, "model": state_dict}`` with the
original (fairseq-style) parameter names. The original module and transformers'
``WavLMModel`` correspond one to one (reference README §10, "WavLM: original keys vs
transformers"); this module converts the config and renames the keys, so the original
model code is not needed. Loading uses ``torch.load(weights_only=True)``.

Key correspondence (``N``: layer index):

=========================================================  ==========================================================
original                                                   transformers ``WavLMModel``
=========================================================  ==========================================================
``feature_extractor.conv_layers.N.0.{weight,bias}``        ``feature_extractor.conv_layers.N.conv.*``
``feature_extractor.conv_layers.0.2.*`` (GroupNorm)        ``feature_extractor.conv_layers.0.layer_norm.*``
``feature_extractor.conv_layers.N.2.1.*`` (layer_norm mode) ``feature_extractor.conv_layers.N.layer_norm.*``
``layer_norm.*`` (over conv features)                      ``feature_projection.layer_norm.*``
``post_extract_proj.*``                                    ``feature_projection.projection.*``
``mask_emb``                                               ``masked_spec_embed``
``encoder.pos_conv.0.{bias,weight_g,weight_v}``            ``encoder.pos_conv_embed.conv.{bias, weight-norm g, v}``
``encoder.layer_norm.*``                                   ``encoder.layer_norm.*``
``encoder.layers.N.self_attn.{q,k,v,out}_proj.*``          ``encoder.layers.N.attention.{q,k,v,out}_proj.*``
``encoder.layers.N.self_attn.grep_a``                      ``encoder.layers.N.attention.gru_rel_pos_const``
``encoder.layers.N.self_attn.grep_linear.*``               ``encoder.layers.N.attention.gru_rel_pos_linear.*``
``encoder.layers.0.self_attn.relative_attention_bias.*``   ``encoder.layers.0.attention.rel_attn_embed.*``
``encoder.layers.N.self_attn_layer_norm.*``                ``encoder.layers.N.layer_norm.*``
``encoder.layers.N.fc1.*`` / ``fc2.*``                     ``encoder.layers.N.feed_forward.{intermediate,output}_dense.*``
``encoder.layers.N.final_layer_norm.*``                    ``encoder.layers.N.final_layer_norm.*``
=========================================================  ==========================================================

``cfg["normalize"]`` (True for WavLM Large, False for Base+) is kept on the returned
config as ``normalize_waveform``: the reference wrapper then layer-normalises the
waveform before the model (``F.layer_norm(x, x.shape)``), which
:class:`keysync.audio.encoders.WavLMEncoder` reproduces.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

import torch

__all__ = [
    "parse_conv_feature_layers",
    "wavlm_config_from_original",
    "convert_original_wavlm_state_dict",
    "is_original_wavlm_checkpoint",
    "load_original_wavlm",
]

log = logging.getLogger(__name__)

# Defaults of the original ``WavLMConfig`` for entries a cfg dict may lack.
_ORIGINAL_DEFAULTS: Dict[str, Any] = {
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "normalize": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,
}
# Original keys with no counterpart in the encoder (pre-training heads).
_IGNORED = ("label_embs_concat", "final_proj.", "project_q.", "quantizer.")


def _safe_eval(node: ast.AST):
    """Evaluate list/tuple/int literals combined with ``+`` and ``*`` only."""
    if isinstance(node, ast.Expression):
        return _safe_eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_safe_eval(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        a, b = _safe_eval(node.left), _safe_eval(node.right)
        return a + b if isinstance(node.op, ast.Add) else a * b
    raise ValueError(f"unsupported expression in conv_feature_layers: {ast.dump(node)}")


def parse_conv_feature_layers(spec: Union[str, List]) -> List[Tuple[int, int, int]]:
    """``"[(512,10,5)] + [(512,3,2)] * 4 + ..."`` -> ``[(dim, kernel, stride), ...]``
    (evaluated safely, without ``eval``)."""
    layers = _safe_eval(ast.parse(spec, mode="eval")) if isinstance(spec, str) else spec
    out = [tuple(int(v) for v in layer) for layer in layers]
    if not out or any(len(layer) != 3 for layer in out):
        raise ValueError(f"conv_feature_layers must be a list of (dim, kernel, stride): {spec!r}")
    return out


def wavlm_config_from_original(cfg: Mapping[str, Any]):
    """Original WavLM cfg dict -> ``transformers.WavLMConfig`` (eager attention)."""
    from transformers import WavLMConfig

    c = dict(_ORIGINAL_DEFAULTS)
    c.update({k: v for k, v in cfg.items() if v is not None})
    if not c["relative_position_embedding"] or not c["gru_rel_pos"]:
        raise NotImplementedError(
            "transformers' WavLMModel always uses the gated relative position bias; this "
            "checkpoint has relative_position_embedding="
            f"{c['relative_position_embedding']}, gru_rel_pos={c['gru_rel_pos']}"
        )
    mode = c["extractor_mode"]
    if mode not in ("default", "layer_norm"):
        raise ValueError(f"unknown extractor_mode {mode!r}")
    conv = parse_conv_feature_layers(c["conv_feature_layers"])
    config = WavLMConfig(
        hidden_size=int(c["encoder_embed_dim"]),
        num_hidden_layers=int(c["encoder_layers"]),
        num_attention_heads=int(c["encoder_attention_heads"]),
        intermediate_size=int(c["encoder_ffn_embed_dim"]),
        hidden_act=c["activation_fn"],
        conv_dim=tuple(d for d, _, _ in conv),
        conv_kernel=tuple(k for _, k, _ in conv),
        conv_stride=tuple(s for _, _, s in conv),
        conv_bias=bool(c["conv_bias"]),
        feat_extract_norm="group" if mode == "default" else "layer",
        feat_extract_activation="gelu",
        do_stable_layer_norm=bool(c["layer_norm_first"]),
        num_conv_pos_embeddings=int(c["conv_pos"]),
        num_conv_pos_embedding_groups=int(c["conv_pos_groups"]),
        num_buckets=int(c["num_buckets"]),
        max_bucket_distance=int(c["max_distance"]),
        layer_norm_eps=1e-5,
        attn_implementation="eager",
    )
    config.normalize_waveform = bool(c["normalize"])
    return config


_RULES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"mask_emb", r"masked_spec_embed"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv_embed.conv.bias"),
    (r"encoder\.pos_conv\.0\.weight_g", r"encoder.pos_conv_embed.conv.{G}"),
    (r"encoder\.pos_conv\.0\.weight_v", r"encoder.pos_conv_embed.conv.{V}"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"encoder.layers.\1.attention.\2.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn\.grep_a", r"encoder.layers.\1.attention.gru_rel_pos_const"),
    (r"encoder\.layers\.(\d+)\.self_attn\.grep_linear\.(weight|bias)",
     r"encoder.layers.\1.attention.gru_rel_pos_linear.\2"),
    (r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight",
     r"encoder.layers.\1.attention.rel_attn_embed.weight"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
]
_COMPILED = [(re.compile(p + r"$"), r) for p, r in _RULES]


def convert_original_wavlm_state_dict(
    state: Mapping[str, torch.Tensor], model_keys: Mapping[str, torch.Tensor]
) -> Dict[str, torch.Tensor]:
    """Rename original WavLM keys to ``WavLMModel`` keys (``model_keys``: the target
    model's ``state_dict()``, used for the weight-norm naming and for checking).

    Raises ``KeyError`` for an original key with no counterpart and for model keys left
    unfilled (except ``masked_spec_embed``, unused at inference).
    """
    if "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in model_keys:
        g, v = "parametrizations.weight.original0", "parametrizations.weight.original1"
    else:
        g, v = "weight_g", "weight_v"
    out: Dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith(_IGNORED):
            continue
        for pattern, repl in _COMPILED:
            if pattern.match(key):
                new = pattern.sub(repl, key).replace("{G}", g).replace("{V}", v)
                break
        else:
            unknown.append(key)
            continue
        if new not in model_keys:
            # Some exports store layer 0's shared relative-position table under every layer.
            if new.endswith("rel_attn_embed.weight"):
                continue
            unknown.append(key)
            continue
        if tuple(model_keys[new].shape) != tuple(value.shape):
            raise ValueError(
                f"{key} -> {new}: shape {tuple(value.shape)} vs model {tuple(model_keys[new].shape)}"
            )
        out[new] = value
    if unknown:
        raise KeyError(f"original WavLM keys without a counterpart: {unknown[:8]}")
    if "feature_projection.projection.weight" not in out:
        w = model_keys["feature_projection.projection.weight"]
        if w.shape[0] != w.shape[1]:
            raise KeyError("checkpoint lacks post_extract_proj although dims differ")
        out["feature_projection.projection.weight"] = torch.eye(w.shape[0], dtype=w.dtype)
        out["feature_projection.projection.bias"] = torch.zeros(w.shape[0], dtype=w.dtype)
    missing = [k for k in model_keys if k not in out and k != "masked_spec_embed"]
    if missing:
        raise KeyError(f"WavLMModel keys not filled by the checkpoint: {missing[:8]}")
    return out


def is_original_wavlm_checkpoint(obj: Any) -> bool:
    """True for a loaded ``{"cfg": dict, "model": state_dict}`` object."""
    return isinstance(obj, Mapping) and isinstance(obj.get("cfg"), Mapping) \
        and isinstance(obj.get("model"), Mapping)


def load_original_wavlm(
    checkpoint: Union[str, Path, Mapping[str, Any]],
    *,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """Microsoft WavLM checkpoint (path or loaded dict) -> ``WavLMModel`` in eval mode.

    The returned model's ``config.normalize_waveform`` is the checkpoint's
    ``cfg["normalize"]``.
    """
    from transformers import WavLMModel

    if isinstance(checkpoint, (str, Path)):
        path = Path(checkpoint).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"WavLM checkpoint not found at '{path}'")
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle with non-allowlisted objects
            raise ValueError(
                f"'{path}' could not be loaded with torch.load(weights_only=True): {exc}"
            ) from exc
    else:
        obj, path = checkpoint, None
    if not is_original_wavlm_checkpoint(obj):
        raise ValueError(f"{path or 'object'} is not a {{'cfg', 'model'}} WavLM checkpoint")
    config = wavlm_config_from_original(obj["cfg"])
    model = WavLMModel(config)
    state = convert_original_wavlm_state_dict(obj["model"], model.state_dict())
    model.load_state_dict(state, strict=False)
    return model.to(device=device, dtype=dtype).eval()
