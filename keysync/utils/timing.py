"""Wall-clock seconds per pipeline stage."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager


class StageTimer:
    """``with timer("stage"): ...`` adds the block's wall-clock seconds to ``totals["stage"]``
    (re-entered stages accumulate).

    Time is *exclusive*: a stage entered while another is open is taken out of the outer one, so
    the totals add up to the wall-clock time of the outermost blocks (the mux stage, which pulls
    frames through sampling, decode and paste-back, counts only the encoding and muxing itself).
    """

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # per open block: seconds spent in blocks nested in it

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._inner.pop()
            self.totals[stage] += elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed
