"""Name-based freezing rules (SPEC §2.7, reference ``sgm/models/diffusion.py``).

KeySync trains with ``to_freeze=["time_"]`` and ``to_unfreeze=["time_embed"]`` applied to the
network wrapper (state-dict prefix ``model.``): every temporal layer (``time_stack``,
``time_mixer``, ``time_pos_embed``) is frozen, the timestep MLP ``time_embed`` stays trainable.
On the full-size keyframe model this leaves 868,873,924 trainable UNet parameters (+ 787,456
in the audio Linear of the conditioner) and freezes 656,076,838.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def apply_freeze_rules(module: nn.Module, to_freeze: Iterable[str] = (), to_unfreeze: Iterable[str] = ()) -> list[str]:
    """Freeze every parameter whose name contains a ``to_freeze`` substring, then re-enable
    those containing a ``to_unfreeze`` substring. Returns the names left frozen by the rules."""
    to_freeze, to_unfreeze = tuple(to_freeze), tuple(to_unfreeze)
    frozen = []
    for name, param in module.named_parameters():
        if any(key in name for key in to_freeze):
            param.requires_grad_(False)
            if any(key in name for key in to_unfreeze):
                param.requires_grad_(True)
            else:
                frozen.append(name)
    return frozen


def count_parameters(module: nn.Module, trainable: bool | None = None) -> int:
    """Number of parameter elements (all, only trainable, or only frozen); works on meta tensors."""
    return sum(p.numel() for p in module.parameters() if trainable is None or p.requires_grad == trainable)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
