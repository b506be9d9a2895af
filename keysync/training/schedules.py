"""Learning-rate multipliers for ``torch.optim.lr_scheduler.LambdaLR`` (reference ``sgm/lr_scheduler.py``).

:class:`LambdaLinearScheduler` (KeySync: one cycle, warm-up 1000 steps from f = 1e-6 to 1.0,
then f_min = f_max = 1, i.e. constant) is a callable object, so ``LambdaLR.state_dict()``
saves its attributes and a resumed run continues the same schedule at the restored step.
"""

from __future__ import annotations

from collections.abc import Sequence


def _as_list(value, n: int | None = None) -> list[float]:
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    return [float(v) for v in values] if n is None else [float(v) for v in (values * n if len(values) == 1 else values)]


class LambdaLinearScheduler:
    """f(step): per cycle, linear warm-up f_start → f_max over ``warm_up_steps``, then linear
    from f_max (cycle start) to f_min (cycle end). Steps past the last cycle keep the last one.

    Args (one value per cycle, or a single value for all):
        warm_up_steps, f_start, f_max, f_min, cycle_lengths.
    """

    def __init__(self, warm_up_steps: Sequence[int] | int = 1000, f_start: Sequence[float] | float = 1e-6,
                 f_max: Sequence[float] | float = 1.0, f_min: Sequence[float] | float = 1.0,
                 cycle_lengths: Sequence[float] | float = 1e13) -> None:
        self.cycle_lengths = _as_list(cycle_lengths)
        n = len(self.cycle_lengths)
        self.warm_up_steps = _as_list(warm_up_steps, n)
        self.f_start, self.f_max, self.f_min = _as_list(f_start, n), _as_list(f_max, n), _as_list(f_min, n)
        if not all(len(v) == n for v in (self.warm_up_steps, self.f_start, self.f_max, self.f_min)):
            raise ValueError("warm_up_steps, f_start, f_max, f_min need one value per cycle")
        self.last_f = self.f_start[0]

    def _cycle(self, step: int) -> tuple[int, float]:
        start = 0.0
        for i, length in enumerate(self.cycle_lengths):
            if step < start + length or i == len(self.cycle_lengths) - 1:
                return i, step - start
            start += length
        raise AssertionError("unreachable")

    def __call__(self, step: int) -> float:
        c, n = self._cycle(step)
        warm = self.warm_up_steps[c]
        if n < warm:
            f = (self.f_max[c] - self.f_start[c]) / warm * n + self.f_start[c]
        else:
            length = self.cycle_lengths[c]
            f = self.f_min[c] + (self.f_max[c] - self.f_min[c]) * max(length - n, 0.0) / length
        self.last_f = f
        return f
