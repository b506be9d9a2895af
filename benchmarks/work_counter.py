"""Count the arithmetic a job does: FLOPs of every network and VAE call, by stage.

Forward hooks count the frames each module processes; the first call of each module is run once
more under ``torch.utils.flop_counter.FlopCounterMode`` to get its FLOPs per frame (matmuls,
convolutions, attention), so the totals hold for any model size, tiny or full. Achieved TFLOP/s
= counted FLOPs / wall seconds (the issue's yardstick: ~55 TFLOP per 512² output frame with the
default schedule).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode


class WorkCounter:
    """``WorkCounter({"keyframes": unet, "interpolation": unet, "encode": vae.encoder, "decode": vae.decoder})``;
    ``flops[stage]`` accumulates while attached; ``detach()`` removes the hooks."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.flops: dict[str, float] = defaultdict(float)
        self.per_frame: dict[str, float] = {}
        self._measuring = False
        self._handles = [m.register_forward_hook(self._hook(stage), with_kwargs=True) for stage, m in modules.items()]

    def _hook(self, stage: str):
        def hook(module, args, kwargs, output):
            if self._measuring:
                return
            frames = args[0].shape[0] if args and isinstance(args[0], torch.Tensor) else 1
            if stage not in self.per_frame:
                self._measuring = True
                try:
                    counter = FlopCounterMode(display=False)
                    with counter, torch.no_grad():
                        module(*args, **kwargs)
                finally:
                    self._measuring = False
                self.per_frame[stage] = counter.get_total_flops() / max(frames, 1)
            self.flops[stage] += self.per_frame[stage] * frames
        return hook

    def reset(self) -> None:
        self.flops.clear()

    def total(self) -> float:
        return float(sum(self.flops.values()))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
