"""Lightning data module of the training clips: dataset, rank-aware sampler, loader.

The sampler is built here with the trainer's rank and world size (the Trainer is run with
``use_distributed_sampler=False``): :class:`~keysync.data.samplers.BalancedGroupSampler`
with ``balance_datasets`` (reference default), else a shuffling
:class:`~torch.utils.data.DistributedSampler`. Both give every rank different samples and
change with the epoch (Lightning calls ``set_epoch``). Batches are default-collated: tensors
gain a leading batch dim B, ``num_video_frames`` becomes (B,), ``sample_id`` a list of str.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, DistributedSampler

from keysync.data.dataset import LatentVideoDataset
from keysync.data.samplers import BalancedGroupSampler


class LatentVideoDataModule(pl.LightningDataModule):
    """Training data of KeySync.

    Args:
        dataset: keyword arguments of :class:`~keysync.data.dataset.LatentVideoDataset`.
        batch_size, num_workers, pin_memory, persistent_workers, drop_last: DataLoader options
            (reference: 1 per GPU, 6 workers, drop_last, pin_memory, persistent workers).
        balance_datasets: balanced group sampling (else uniform shuffling).
        num_samples: draws per epoch over all ranks (default: the dataset length).
        seed: sampler seed (same on all ranks; the rank selects its share).
    """

    def __init__(self, dataset: Mapping[str, Any], batch_size: int = 1, num_workers: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = False, drop_last: bool = True,
                 balance_datasets: bool = True, num_samples: int | None = None, seed: int = 0,
                 prefetch_factor: int | None = None) -> None:
        super().__init__()
        self.dataset_kwargs = dict(dataset)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers, self.drop_last = pin_memory, persistent_workers, drop_last
        self.balance_datasets, self.num_samples, self.seed = balance_datasets, num_samples, seed
        self.prefetch_factor = prefetch_factor
        self.train_dataset: LatentVideoDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is None:
            self.train_dataset = LatentVideoDataset(**self.dataset_kwargs)

    def _rank_world_step(self) -> tuple[int, int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1, 0
        return trainer.global_rank, trainer.world_size, trainer.global_step

    def build_sampler(self, rank: int, world_size: int):
        """The rank's sampler over :attr:`train_dataset`."""
        ds = self.train_dataset
        if self.balance_datasets:
            return BalancedGroupSampler(ds.groups, self.num_samples, seed=self.seed, rank=rank, num_replicas=world_size)
        return DistributedSampler(ds, num_replicas=world_size, rank=rank, shuffle=True, seed=self.seed)

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        rank, world, step = self._rank_world_step()
        self.train_dataset.rank, self.train_dataset.seed_offset = rank, step
        self.train_dataset._rng = None  # re-seeded from the new rank/step on first use
        extra = {"prefetch_factor": self.prefetch_factor} if self.num_workers > 0 and self.prefetch_factor else {}
        return DataLoader(self.train_dataset, batch_size=self.batch_size, sampler=self.build_sampler(rank, world),
                          num_workers=self.num_workers, pin_memory=self.pin_memory, drop_last=self.drop_last,
                          persistent_workers=self.persistent_workers and self.num_workers > 0,
                          **extra)
