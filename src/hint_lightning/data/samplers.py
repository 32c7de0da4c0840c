"""A training sampler that makes runs resumable mid-epoch, exactly, on one or many processes.

Each epoch's order is a permutation drawn from ``(seed, epoch)`` only, so a resumed run can
rebuild the interrupted epoch's order and skip the batches it had already trained on. Under DDP
every process takes every ``world_size``-th item of that order, so the union of one step's
per-process batches is exactly the single-process batch of the same global size. It subclasses
``DistributedSampler`` so that Lightning keeps it (and calls ``set_epoch`` every epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import DistributedSampler


class ResumableEpochSampler(DistributedSampler):
    """Shuffles ``num_items`` indices per epoch from ``(seed, epoch)``; can start mid-epoch.

    Args:
        num_items: dataset length.
        seed: base seed (the run's seed).
        shuffle: False keeps the dataset order (every epoch).
        start_epoch: the epoch of the first iteration (a resumed run's current epoch).
        skip: items of this process's share of ``start_epoch`` already trained on.
        num_replicas: number of processes; the order is padded with its first items to a
            multiple of it (as ``DistributedSampler`` does), so every process gets as many.
        rank: this process.

    Example:
        >>> sampler = ResumableEpochSampler(6, seed=0)
        >>> first = list(sampler)
        >>> resumed = ResumableEpochSampler(6, seed=0, start_epoch=0, skip=4)
        >>> list(resumed) == first[4:]
        True
        >>> shard = [list(ResumableEpochSampler(6, 0, num_replicas=2, rank=r)) for r in (0, 1)]
        >>> sorted(shard[0] + shard[1]) == sorted(first)
        True
    """

    def __init__(
        self,
        num_items: int,
        seed: int = 0,
        shuffle: bool = True,
        start_epoch: int = 0,
        skip: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(
            range(num_items), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed
        )
        self.num_items = num_items
        self.epoch = start_epoch
        self.resume_epoch = start_epoch
        self.skip = skip

    def order(self, epoch: int) -> np.ndarray:
        """The full order of ``epoch`` over all processes ``[num_items]``."""
        if not self.shuffle:
            return np.arange(self.num_items)
        return np.random.default_rng((self.seed, epoch)).permutation(self.num_items)

    def _share(self) -> int:
        return math.ceil(self.num_items / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        total = self._share() * self.num_replicas
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        mine = order[self.rank :: self.num_replicas]
        if self.skip and self.epoch == self.resume_epoch:
            mine = mine[self.skip :]
        self.skip = 0
        self.epoch += 1  # in case nobody calls set_epoch (plain DataLoader use)
        return iter(mine.tolist())

    def __len__(self) -> int:
        pending = self.skip if self.epoch == self.resume_epoch else 0
        return self._share() - pending
