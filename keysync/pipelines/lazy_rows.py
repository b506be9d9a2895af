"""A per-frame conditioning stream computed on demand, holding only a window of rows.

Long dubbing jobs must not keep every frame's latent and mask in host memory (80 KB per model
frame at 512², 7 GB for an hour). :class:`LazyRows` looks like an ``(N, ...)`` tensor to
:class:`~keysync.pipelines.two_stage.ConditioningStreams` (``len``, ``shape``, indexing with a
LongTensor) but computes rows when they are first read and keeps them only until the sampling
loop moves on (:meth:`LazyRows.prefetch` with the next sampler call's frames): memory is one
window — a chunk's keyframe rows, one interpolation call's segments and frame 0, ≤ 56 frames with
the defaults — whatever the clip's length.

Rows are keyed by a *source* key (``key_of[m]``, e.g. the source video frame shown at model frame
m), so model frames that show the same source frame (ping-pong looping, 25 fps from 24 fps) share
one computed row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch


class LazyRows:
    """``N`` rows of shape ``row_shape``; row m is ``make([key_of[m]])[0]``.

    Args:
        key_of: (N,) int source key of each row.
        make: sorted unique keys (list of int) → tensor (len(keys), *row_shape); called once per
            window with every missing key, in increasing order (sequential video reads).
        row_shape: the shape of one row.
        keep: keys never evicted (the identity frame, read by every keyframe batch).
    """

    def __init__(self, key_of: Sequence[int] | np.ndarray, make: Callable[[list[int]], torch.Tensor],
                 row_shape: tuple[int, ...], keep: Iterable[int] = (), dtype: torch.dtype = torch.float32):
        self.key_of = np.asarray(key_of, dtype=np.int64)
        self.make = make
        self.row_shape = tuple(row_shape)
        self.dtype = dtype
        self.keep = {int(k) for k in keep}
        self.cache: dict[int, torch.Tensor] = {}
        self.max_held = 0  # the most rows held at once (tests / memory reports)
        self.computed = 0  # rows computed in all (a key computed twice counts twice)

    def __len__(self) -> int:
        return len(self.key_of)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self),) + self.row_shape

    def _keys(self, index) -> list[int]:
        idx = np.asarray(torch.as_tensor(index, dtype=torch.long).reshape(-1).numpy())
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        return [int(k) for k in self.key_of[idx]]

    def _fill(self, keys: Iterable[int]) -> None:
        missing = sorted({k for k in keys if k not in self.cache})
        if not missing:
            return
        rows = self.make(missing)
        if tuple(rows.shape) != (len(missing),) + self.row_shape:
            raise RuntimeError(f"made rows {tuple(rows.shape)} for {len(missing)} keys, expected "
                               f"{(len(missing),) + self.row_shape}")
        self.computed += len(missing)
        self.cache.update({k: r.to(self.dtype) for k, r in zip(missing, rows)})
        self.max_held = max(self.max_held, len(self.cache))

    def put(self, keys: Sequence[int], rows: torch.Tensor) -> None:
        """Store rows computed elsewhere (e.g. the identity frame's latent, computed up front)."""
        self.cache.update({int(k): r.to(self.dtype) for k, r in zip(keys, rows)})
        self.max_held = max(self.max_held, len(self.cache))

    def prefetch(self, index) -> None:
        """Make the window the rows ``index``: evict every other row (but ``keep``), compute the
        missing ones in one call."""
        wanted = set(self._keys(index)) | self.keep
        for k in [k for k in self.cache if k not in wanted]:
            del self.cache[k]
        self._fill(wanted)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self[torch.tensor([index])][0]
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        keys = self._keys(index)
        self._fill(keys)
        if not keys:
            return torch.empty((0,) + self.row_shape, dtype=self.dtype)
        return torch.stack([self.cache[k] for k in keys])
