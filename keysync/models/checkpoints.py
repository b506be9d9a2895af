"""Safe loading of published and reference checkpoints into a DiffusionEngine.

Accepted files (SPEC §2.8, §10): ``.pt`` (DeepSpeed/Lightning model states
``{"module": {"_forward_module.<key>": tensor}}``), ``.ckpt`` (``{"state_dict": ...}``),
``.bin`` (a raw dict, ``_forward_module.`` stripped), ``.safetensors`` (raw), and a
Lightning-DeepSpeed checkpoint *folder* (``<dir>/checkpoint/mp_rank_00_model_states.pt``).
Pickle files are read with ``torch.load(weights_only=True)``: nothing but tensors and plain
containers is ever unpickled.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

log = logging.getLogger(__name__)

DEEPSPEED_PREFIX = "_forward_module."
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
#: keys a published checkpoint may carry that our models do not use (SPEC §2.8).
KNOWN_UNUSED_PREFIXES = ("conditioner.embedders.0.encoder.", "first_stage_model.encoder.", "model_ema.")
#: keys removed when initialising from SVD weights for fine-tuning (SPEC §6.1).
FINETUNE_REMOVE_KEYS = {
    "keyframe": ("model.diffusion_model.label_emb.0.0.weight",),
    "interpolation": ("model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.label_emb.0.0.weight"),
}


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read, or does not fit the model."""


@dataclass
class LoadReport:
    """What happened when a state dict was loaded (key names, not just counts)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unused_known: list[str] = field(default_factory=list)
    shape_mismatch: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def summary(self, max_names: int = 10) -> str:
        def names(keys: Iterable[str], limit: int = max_names) -> str:
            keys = list(keys)
            shown = ", ".join(keys[:limit])
            return shown + (f", … (+{len(keys) - limit} more)" if len(keys) > limit else "")

        lines = [f"{self.path}: {len(self.loaded)} tensors loaded"]
        if self.missing:
            lines.append(f"  missing ({len(self.missing)}): {names(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected ({len(self.unexpected)}): {names(self.unexpected)}")
        if self.shape_mismatch:
            items = [f"{k} checkpoint {list(a)} vs model {list(b)}" for k, (a, b) in self.shape_mismatch.items()]
            lines.append(f"  shape mismatch ({len(items)}): {names(items)}")
        if self.unused_known:
            lines.append(f"  unused, known to be unneeded ({len(self.unused_known)}): {names(self.unused_known, 3)}")
        if self.removed:
            lines.append(f"  removed before loading: {names(self.removed)}")
        return "\n".join(lines)


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refusing to load: the file contains pickled Python objects other than tensors and "
            f"plain containers (loaded with weights_only=True for safety). Convert it to .safetensors in a "
            f"trusted environment. Detail: {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {err}") from err


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for container in ("state_dict", "module"):
            if container in obj and isinstance(obj[container], Mapping):
                obj = obj[container]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: state-dict key {key!r} is not a string")
        if not torch.is_tensor(value):
            continue  # e.g. DeepSpeed bookkeeping entries next to the weights
        state[key[len(DEEPSPEED_PREFIX):] if key.startswith(DEEPSPEED_PREFIX) else key] = value
    if not state:
        raise CheckpointError(f"{path}: no tensors found (keys: {list(obj)[:10]})")
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (or DeepSpeed folder) into a flat ``{key: tensor}`` dict."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoint" / "mp_rank_00_model_states.pt"
        if not candidate.is_file():
            raise CheckpointError(f"{path}: a folder, but not a DeepSpeed checkpoint (no {candidate.relative_to(path)})")
        path = candidate
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {err}") from err
    if path.suffix in PICKLE_SUFFIXES:
        return _unwrap(_torch_load(path), path)
    raise CheckpointError(f"{path}: unknown checkpoint type {path.suffix!r}; expected .safetensors or one of {PICKLE_SUFFIXES}")


def match_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], path: str = "<state dict>",
                     remove_keys: Iterable[str] = ()) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Compare a state dict with a model's: which keys load, which are missing/unexpected/mis-shaped."""
    report = LoadReport(path=str(path))
    removed = set(remove_keys)
    report.removed = sorted(k for k in removed if k in state)
    expected = model.state_dict()
    usable = {}
    for key, value in state.items():
        if key in removed:
            continue
        if key not in expected:
            (report.unused_known if key.startswith(KNOWN_UNUSED_PREFIXES) else report.unexpected).append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            report.shape_mismatch[key] = (tuple(value.shape), tuple(expected[key].shape))
        else:
            usable[key] = value
    report.loaded = sorted(usable)
    report.missing = sorted(k for k in expected if k not in usable and k not in report.shape_mismatch)
    return usable, report


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True,
                    remove_keys: Iterable[str] = ()) -> LoadReport:
    """Load a checkpoint into ``model`` (a DiffusionEngine or any module with matching keys).

    ``strict``: raise :class:`CheckpointError` naming the missing, unexpected and mis-shaped
    keys instead of loading partially (known-unused keys such as the interpolation
    checkpoint's ``conditioner.embedders.0.encoder.*`` never count against strictness).
    ``remove_keys``: keys dropped before loading, e.g. :data:`FINETUNE_REMOVE_KEYS` for
    fine-tuning from SVD weights (those then stay at their fresh initialisation).
    """
    state = read_state_dict(path)
    usable, report = match_state_dict(model, state, str(path), remove_keys)
    removed = set(report.removed)
    if strict and (report.unexpected or report.shape_mismatch or set(report.missing) - removed):
        raise CheckpointError(f"checkpoint does not fit the model ({type(model).__name__}):\n{report.summary()}")
    model.load_state_dict(usable, strict=False)
    log.info(report.summary())
    return report
