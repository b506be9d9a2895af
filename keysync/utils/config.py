"""Instantiate objects from reference-style (``target``/``params``) or Hydra (``_target_``) configs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf


def instantiate_from_config(config: Any) -> Any:
    """Build an object from a config.

    Accepts an already-built object (returned unchanged), a Hydra config with ``_target_``
    (built with :func:`hydra.utils.instantiate`, recursively) or a reference-style mapping
    ``{"target": "pkg.Class", "params": {...}}``.
    """
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping):
        return config
    if "_target_" in config:
        return instantiate(dict(config), _convert_="all")
    if "target" in config:
        return get_class(config["target"])(**dict(config.get("params", {}) or {}))
    raise ValueError(f"config has neither '_target_' nor 'target': {sorted(config)}")


def configs_dir() -> Path:
    """The project's ``configs/`` folder (next to the ``keysync`` package in a checkout)."""
    return Path(__file__).resolve().parents[2] / "configs"
