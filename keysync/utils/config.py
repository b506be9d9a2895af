"""Instantiate objects from reference-style (``target``/``params``) or Hydra (``_target_``) configs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


@contextmanager
def isolated_global_hydra() -> Iterator[None]:
    """Run Hydra's compose API while another library holds the global Hydra state.

    Some packages initialise Hydra globally when imported (``import sam2`` does), after which
    ``hydra.initialize_config_dir`` raises "GlobalHydra is already initialized". Inside this
    context the global state is set aside and restored afterwards, so our compose calls and
    the other library both keep working.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    if not GlobalHydra.instance().is_initialized():
        yield
        return
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        restore_gh_from_backup(backup)
