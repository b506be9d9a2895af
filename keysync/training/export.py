"""Turn a training checkpoint into a plain weights file with the published keys.

Lightning ``.ckpt`` files (``{"state_dict": ...}``) and DeepSpeed checkpoint folders already
load with :func:`keysync.models.checkpoints.load_checkpoint`; this writes the same weights as
a small ``.safetensors`` (no optimizer state), optionally with the EMA weights swapped in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from keysync.models.checkpoints import read_state_dict
from keysync.training.ema import _buffer_name

EMA_PREFIX = "model_ema."


def export_weights(checkpoint: str | Path, output: str | Path, use_ema: bool = False,
                   dtype: torch.dtype | None = None, exclude: tuple[str, ...] = ()) -> Path:
    """Write ``checkpoint``'s weights (``model_ema.*`` dropped) to ``output`` (.safetensors).

    ``use_ema``: replace every ``model.<name>`` that has an EMA shadow by that shadow.
    ``dtype``: store floating-point tensors in this type (e.g. float16 for a small file; loading
    copies them into the model's own dtype). ``exclude``: drop keys with these prefixes (e.g.
    ``first_stage_model.`` when the VAE ships separately).
    """
    state = read_state_dict(checkpoint)
    ema = {k[len(EMA_PREFIX):]: v for k, v in state.items() if k.startswith(EMA_PREFIX)}
    weights = {k: v for k, v in state.items() if not k.startswith(EMA_PREFIX)}
    if use_ema:
        if not ema:
            raise ValueError(f"{checkpoint} has no EMA weights (train with module.use_ema=true)")
        for key in list(weights):
            name = key[len("model."):] if key.startswith("model.") else None
            if name is not None and _buffer_name(name) in ema:
                weights[key] = ema[_buffer_name(name)].to(weights[key].dtype)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v for k, v in weights.items() if not k.startswith(tuple(exclude))}
    if dtype is not None:
        weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    save_file({k: v.contiguous() for k, v in weights.items()}, str(output))
    return output
