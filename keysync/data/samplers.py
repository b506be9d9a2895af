"""Samplers of the training data: group-balanced draws, sharded across ranks.

The reference balances its data sets (SPEC §6.3, "balance_datasets") by *ignoring* the index
the loader asks for and drawing a fresh weighted index inside ``__getitem__`` (SPEC §11.21).
Here the balancing is a real :class:`~torch.utils.data.Sampler`: each dataset index gets the
weight 1/|its group|, one epoch is a seeded multinomial draw with replacement that is the same
on every rank, and rank r keeps draws r, r + world, r + 2·world, … So the ranks see different
samples, the run is reproducible, and the DataLoader's index is the one that is loaded.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

log = logging.getLogger(__name__)

#: the reference's groups: KeyFace's 60 fps sources, everything else is "other".
DEFAULT_GROUP_MARKERS = ("AA_processed", "1000actors_nsv")


def dataset_group(path: str, markers: Sequence[str] = DEFAULT_GROUP_MARKERS) -> str:
    """Group of a clip: the first marker contained in its path, else ``"other"``."""
    for marker in markers:
        if marker in str(path):
            return marker
    return "other"


def group_weights(groups: Sequence[str]) -> torch.Tensor:
    """Weight 1/|group| for each item: every group is drawn equally often. (N,) float64."""
    counts = Counter(groups)
    return torch.tensor([1.0 / counts[g] for g in groups], dtype=torch.float64)


class BalancedGroupSampler(Sampler[int]):
    """Weighted sampling with replacement (weights 1/|group|), split across ranks.

    Args:
        groups: group name of every dataset index (len = len(dataset)).
        num_samples: draws per epoch over all ranks (default len(groups)); rounded up to a
            multiple of ``num_replicas`` so every rank gets the same number.
        seed: base seed; epoch e uses ``seed + e`` (call :meth:`set_epoch`, Lightning does).
        rank, num_replicas: this process's rank and the world size.
    """

    def __init__(self, groups: Sequence[str], num_samples: int | None = None, seed: int = 0, rank: int = 0,
                 num_replicas: int = 1) -> None:
        if not groups:
            raise ValueError("BalancedGroupSampler needs at least one item")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.weights = group_weights(groups)
        self.rank, self.num_replicas, self.seed, self.epoch = rank, num_replicas, seed, 0
        total = len(groups) if num_samples is None else num_samples
        self.num_samples = math.ceil(total / num_replicas)
        self.total_size = self.num_samples * num_replicas
        log.info("balanced sampling over groups %s", dict(Counter(groups)))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.total_size, replacement=True, generator=gen)
        return iter(draws[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
