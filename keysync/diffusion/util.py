"""Small helpers shared by the diffusion modules."""

from __future__ import annotations

import importlib
from typing import Any

import torch

_MODULES = ("scaling", "schedules", "guidance", "losses", "denoiser", "samplers")


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """Append trailing singleton dims to `x` until it has `target_dims` dims."""
    n = target_dims - x.ndim
    if n < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}")
    return x[(...,) + (None,) * n]


def build(spec: Any) -> Any:
    """Instantiate a component from an object or a reference-style config dict.

    Objects are returned as they are. A dict with `target` (reference style,
    e.g. ``sgm.modules.diffusionmodules.discretizer.AYSDiscretization``) or
    `_target_` plus `params` (or inline kwargs) is built; reference `sgm.*`
    paths resolve to the class of the same name in `keysync.diffusion`.
    """
    if spec is None or not hasattr(spec, "keys"):
        return spec
    spec = dict(spec)
    target = spec.pop("_target_", None) or spec.pop("target", None)
    if target is None:
        return spec
    params = dict(spec.pop("params", None) or {})
    params.update({k: v for k, v in spec.items() if not k.startswith("_")})
    module_path, _, name = str(target).rpartition(".")
    cls = None
    if not module_path.startswith("sgm"):
        try:
            cls = getattr(importlib.import_module(module_path), name)
        except (ImportError, AttributeError, ValueError):
            cls = None
    if cls is None:
        for mod in _MODULES:
            m = importlib.import_module(f"keysync.diffusion.{mod}")
            if hasattr(m, name):
                cls = getattr(m, name)
                break
    if cls is None:
        raise ValueError(f"cannot resolve target {target!r}")
    return cls(**{k: build(v) if hasattr(v, "keys") else v for k, v in params.items()})
