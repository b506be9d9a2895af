"""Load the transformers speech models the audio encoders run, from local paths only.

The reference uses ``HubertModel.from_pretrained("facebook/hubert-base-ls960")``,
``Wav2Vec2ForCTC.from_pretrained("facebook/wav2vec2-base-960h").wav2vec2`` and
Microsoft's ``WavLM-Base+.pt``. We never resolve hub names: every loader takes a
local path and fails with :class:`FileNotFoundError` naming it when it is missing.

Accepted paths:

* a directory in ``save_pretrained`` layout (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``), e.g. a downloaded hub snapshot folder;
* a single weights file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``) with its config
  given as ``config=`` (dict, JSON path or config object), found as ``config.json`` next
  to it, or stored in the safetensors metadata entry ``config_json``;
* for WavLM additionally Microsoft's original ``{"cfg", "model"}`` checkpoint
  (see :mod:`keysync.audio.wavlm_checkpoint`).

Models are returned in eval mode (no spec-augment masking, no dropout) with
``attn_implementation="eager"``, which the reference vectors were produced with (sdpa
differs by ~1e-6).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

__all__ = ["load_hubert", "load_wav2vec2", "load_wavlm", "load_speech_model", "load_state_dict_file"]

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
# Keys that belong to task heads / pre-training modules, never to the base encoder.
_HEAD_PREFIXES = ("lm_head.", "project_q.", "project_hid.", "quantizer.", "projector.",
                  "classifier.", "dropout_features.", "final_proj.", "label_embs_concat")
# Parameters the base model has but which only matter for training-time masking.
_OPTIONAL_KEYS = ("masked_spec_embed",)


def _classes(kind: str):
    import transformers  # local import: transformers is an optional dependency

    table = {
        "hubert": (transformers.HubertModel, transformers.HubertConfig),
        "wav2vec2": (transformers.Wav2Vec2Model, transformers.Wav2Vec2Config),
        "wavlm": (transformers.WavLMModel, transformers.WavLMConfig),
    }
    if kind not in table:
        raise ValueError(f"unknown speech model kind {kind!r}; expected one of {sorted(table)}")
    return table[kind]


def _check_exists(path: PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"{what} weights not found at '{p}'. Pass a local directory (config.json + "
            "model.safetensors / pytorch_model.bin) or a weights file; hub names are never "
            "downloaded."
        )
    return p


def _load_file(p: Path) -> Any:
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # e.g. pickled classes outside torch's allow-list
        raise ValueError(f"'{p}' could not be loaded with torch.load(weights_only=True): {exc}") from exc


def _as_state_dict(obj: Any, p: Path) -> dict:
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"'{p}' does not hold a state dict")
    return dict(obj)


def load_state_dict_file(path: PathLike) -> dict:
    """Tensors of a ``.safetensors`` file or a ``torch.save`` file (``weights_only``)."""
    p = _check_exists(path, "state dict")
    return _as_state_dict(_load_file(p), p)


def _safetensors_config(path: Path) -> Optional[dict]:
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta["config_json"]) if "config_json" in meta else None


def _resolve_config(kind: str, weights: Path, config: Any):
    _, config_cls = _classes(kind)
    if config is None:
        sibling = weights.parent / "config.json"
        if sibling.exists():
            config = sibling
        else:
            config = _safetensors_config(weights)
    if config is None:
        raise FileNotFoundError(
            f"no config for '{weights}': pass config=..., or put config.json next to it"
        )
    if isinstance(config, (str, Path)):
        cpath = _check_exists(config, f"{kind} config")
        config = json.loads(cpath.read_text())
    if isinstance(config, Mapping):
        cfg = dict(config)
        for k in ("model_type", "transformers_version", "architectures", "_name_or_path"):
            cfg.pop(k, None)
        config = config_cls(**cfg)
    config._attn_implementation = "eager"
    return config


def _strip_to_base(state: Mapping[str, torch.Tensor], model) -> dict:
    """Drop head keys and the ``<base_model_prefix>.`` of task-model checkpoints.

    Unknown keys that are not task heads are kept, so that the strict check reports them.
    """
    prefix = getattr(model, "base_model_prefix", "") + "."
    own = set(model.state_dict().keys())
    out, dropped = {}, []
    for k, v in state.items():
        name = k[len(prefix):] if k.startswith(prefix) and k[len(prefix):] in own else k
        if name not in own and name.startswith(_HEAD_PREFIXES):
            dropped.append(k)
            continue
        out[name] = v
    if dropped:
        log.info("ignoring %d task-head keys (e.g. %s)", len(dropped), dropped[0])
    return out


def load_speech_model(
    kind: str,
    path: PathLike,
    *,
    config: Any = None,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """Build a transformers ``HubertModel`` / ``Wav2Vec2Model`` / ``WavLMModel`` from a
    local directory or weights file (see module docstring), eval mode, eager attention."""
    model_cls, _ = _classes(kind)
    p = _check_exists(path, kind)
    if p.is_dir():
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"'{p}' is a directory without config.json")
        model = model_cls.from_pretrained(
            str(p), local_files_only=True, attn_implementation="eager", dtype=dtype
        )
        prep = p / "preprocessor_config.json"
        if kind == "wavlm" and prep.exists():
            # WavLM Large checkpoints normalise the waveform (original cfg.normalize)
            do_norm = json.loads(prep.read_text()).get("do_normalize")
            if do_norm is not None:
                model.config.normalize_waveform = bool(do_norm)
    else:
        if p.suffix not in _WEIGHT_SUFFIXES:
            raise ValueError(f"'{p}': unsupported weights file type {p.suffix!r}")
        raw = _load_file(p)
        if kind == "wavlm":
            from .wavlm_checkpoint import is_original_wavlm_checkpoint, load_original_wavlm

            if is_original_wavlm_checkpoint(raw):
                return load_original_wavlm(raw, device=device, dtype=dtype)
        model = model_cls(_resolve_config(kind, p, config))
        state = _strip_to_base(_as_state_dict(raw, p), model)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k not in _OPTIONAL_KEYS]
        if missing or unexpected:
            raise RuntimeError(
                f"weights in '{p}' do not fit {model_cls.__name__}: missing {missing[:5]}"
                f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                f"{'...' if len(unexpected) > 5 else ''}"
            )
    return model.to(device=device, dtype=dtype).eval()


def load_hubert(path: PathLike, **kwargs):
    """``HubertModel`` (the reference's ``facebook/hubert-base-ls960``) from a local path."""
    return load_speech_model("hubert", path, **kwargs)


def load_wav2vec2(path: PathLike, **kwargs):
    """``Wav2Vec2Model`` from a local path. A ``Wav2Vec2ForCTC`` checkpoint (the
    reference's ``facebook/wav2vec2-base-960h``) is accepted: its ``wav2vec2.*`` encoder
    is what the reference runs (``model.wav2vec2(x)[0]``); ``lm_head.*`` is ignored."""
    return load_speech_model("wav2vec2", path, **kwargs)


def load_wavlm(path: PathLike, **kwargs):
    """``WavLMModel`` from a transformers folder / file or Microsoft's original
    ``WavLM-Base+.pt`` (``{"cfg", "model"}``; converted by key mapping)."""
    return load_speech_model("wavlm", path, **kwargs)
