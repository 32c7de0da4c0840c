"""A training sampler that makes runs resumable mid-epoch, exactly, on one or many processes.

Each epoch's order is a permutation drawn from ``(seed, epoch)`` only, so a resumed run can
rebuild the interrupted epoch's order and skip the batches it had already trained on. Under DDP
every process takes every ``world_size``-th item of that order, so the union of one step's
per-process batches is exactly the single-process batch of the same global size. It subclasses
``DistributedSampler`` so that Lightning keeps it (and calls ``set_epoch`` every epoch).

How a resumed run and Lightning share the work: Lightning restores its batch counter of the
interrupted epoch (say ``n`` of ``B`` batches done) and stops the epoch once its counter reaches
the loader's length. The loader must therefore keep the length of a *whole* epoch while the
sampler yields only the ``B - n`` batches not yet trained on: a sampler whose length shrank by
the skipped items would end the resumed epoch ``n`` batches early, and since Lightning measures
the epoch length once per loader, every later epoch too (the defect of issue 10, item 2).

Where a run stands is computed from the number of batches it trained on in all (Lightning's
``batch_progress.total.processed``, which counts the batch a checkpoint was written after) and
the batches of one epoch: epoch ``T // B``, batch ``T % B``. This holds for checkpoints written
after a batch, after a validation and at the end of an epoch alike, and for loaders rebuilt at
every epoch (``reload_dataloaders_every_n_epochs``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import DistributedSampler


class ResumableEpochSampler(DistributedSampler):
    """Shuffles ``num_items`` indices per epoch from ``(seed, epoch)``; can start mid-epoch.

    Args:
        num_items: dataset length.
        seed: base seed (the run's seed).
        shuffle: False keeps the dataset order (every epoch).
        start_epoch: the epoch of the first iteration (a resumed run's current epoch).
        skip: items of this process's share of ``start_epoch`` already trained on; the first
            iteration of ``start_epoch`` leaves them out. The length stays that of a whole
            epoch (see the module docstring).
        num_replicas: number of processes; the order is padded with its first items to a
            multiple of it (as ``DistributedSampler`` does), so every process gets as many.
        rank: this process.

    Example:
        >>> sampler = ResumableEpochSampler(6, seed=0)
        >>> first = list(sampler)
        >>> resumed = ResumableEpochSampler(6, seed=0, start_epoch=0, skip=4)
        >>> list(resumed) == first[4:], len(resumed)
        (True, 6)
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
        """This process's share of a whole epoch, also while resuming (see the module doc)."""
        return self._share()


def batches_per_epoch(
    num_items: int, batch_size: int, num_replicas: int = 1, limit: int | float | None = None
) -> int:
    """How many batches one process trains on per epoch (Lightning's ``num_training_batches``).

    The loader has ``ceil(share / batch_size)`` batches (``share``: this process's padded share
    of ``num_items``); Lightning's ``limit_train_batches`` keeps at most ``limit`` of them (an
    int) or ``int(batches * limit)`` (a float fraction), as ``_parse_num_batches`` of
    ``pytorch_lightning/trainer/connectors/data_connector.py`` does.

    Example:
        >>> batches_per_epoch(2880, 64), batches_per_epoch(2880, 32, num_replicas=2)
        (45, 45)
        >>> batches_per_epoch(2880, 64, limit=6), batches_per_epoch(2880, 64, limit=0.5)
        (6, 22)
    """
    length = math.ceil(math.ceil(num_items / num_replicas) / batch_size)
    if limit is None:
        return length
    if isinstance(limit, int):
        return min(length, limit)
    return int(length * limit)


def resume_position(batches_done: int, epoch_batches: int) -> tuple[int, int]:
    """The epoch a run continues in and the batches of it already trained on.

    Args:
        batches_done: batches trained on since the start of the run, all epochs together.
        epoch_batches: batches per epoch (:func:`batches_per_epoch`).

    Example:
        >>> resume_position(10, 45), resume_position(45, 45), resume_position(58, 45)
        ((0, 10), (1, 0), (1, 13))
    """
    if epoch_batches <= 0:
        return 0, 0
    return divmod(batches_done, epoch_batches)


def trainer_position(
    trainer: Any, num_items: int, batch_size: int, num_replicas: int = 1
) -> tuple[int, int]:
    """Where ``trainer`` stands in the training stream: ``(epoch, batches done in it)``.

    Reads the batches trained on so far from the fit loop's progress (restored from the
    checkpoint by ``trainer.fit(ckpt_path=...)`` before the loaders are built) and the trainer's
    ``limit_train_batches``. Without a trainer (plain use) the run starts at ``(0, 0)``.

    Args:
        trainer: a Lightning Trainer, or None.
        num_items: training-set length.
        batch_size: batch size of one process.
        num_replicas: number of processes.
    """
    fit_loop = getattr(trainer, "fit_loop", None)
    if fit_loop is None:
        return 0, 0
    done = int(fit_loop.epoch_loop.batch_progress.total.processed)
    limit = getattr(trainer, "limit_train_batches", None)
    return resume_position(done, batches_per_epoch(num_items, batch_size, num_replicas, limit))
