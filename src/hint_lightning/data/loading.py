"""What every VQA DataModule shares: per-process batch sizes and the DataLoaders.

Evaluation under DDP counts each question exactly once: Lightning's default distributed sampler
pads the last batches with repeated questions so that every process gets as many, which would
count those questions twice in the metrics. Evaluation loaders therefore shard with
:class:`UnpaddedDistributedSampler` (processes may get one question more or less).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from hint_lightning.data.collate import VQACollate
from hint_lightning.data.samplers import ResumableEpochSampler, trainer_position


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank ``r`` of ``W`` takes items ``r, r + W, r + 2W, ...``: every item exactly once.

    Example:
        >>> [list(UnpaddedDistributedSampler(range(5), num_replicas=2, rank=r)) for r in (0, 1)]
        [[0, 2, 4], [1, 3]]
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


class VQADataModuleBase(pl.LightningDataModule):
    """Batch-size bookkeeping and DataLoaders shared by the DataModules (VQA and captioning).

    Subclasses set ``batch_size`` (global), ``eval_batch_size`` (global), ``num_workers``,
    ``pin_memory`` and ``info``, call :meth:`_set_batch_sizes` in ``setup`` and implement
    :meth:`_split_dataset`.
    """

    batch_size: int
    eval_batch_size: int
    num_workers: int
    pin_memory: bool
    shuffle: bool = True
    """Shuffle the training split (False: store order, e.g. for exactness tests)."""
    test_split: str = "test"
    """The split ``test_dataloader`` serves (``evaluate split=val`` sets it to ``val``)."""

    def _split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (train, val or test)."""
        raise NotImplementedError

    def _collate_fn(self) -> Callable[[list[Any]], Any]:
        """How items become a batch (VQA: :class:`VQACollate`; captioning overrides it)."""
        return VQACollate(self.info.num_answers)

    def _world_size(self) -> int:
        """The trainer's world size, or 1 without a trainer."""
        trainer = getattr(self, "trainer", None)
        return int(trainer.world_size) if trainer is not None else 1

    def _set_batch_sizes(self) -> None:
        """Per-process batch sizes from the global ones.

        Raises:
            ValueError: If the global batch size is not divisible by the world size.
        """
        world_size = self._world_size()
        if self.batch_size % world_size:
            raise ValueError(
                f"batch_size={self.batch_size} is the global batch size and must be divisible "
                f"by the world size ({world_size} processes); choose e.g. "
                f"{world_size * max(1, round(self.batch_size / world_size))}"
            )
        self._device_batch_size = self.batch_size // world_size
        self._device_eval_batch_size = math.ceil(self.eval_batch_size / world_size)

    def _training_sampler(self, dataset: Dataset) -> Sampler[int]:
        """A :class:`ResumableEpochSampler` positioned where the trainer is.

        After ``trainer.fit(ckpt_path=...)`` restored a checkpoint written mid-epoch, the
        trainer's batch progress says which batches of the interrupted epoch were already
        trained on (:func:`trainer_position`); the sampler rebuilds that epoch's order and skips
        them. Under DDP each process takes its interleaved share of the same order.
        """
        trainer = getattr(self, "trainer", None)
        world_size = self._world_size()
        epoch, done = trainer_position(trainer, len(dataset), self._device_batch_size, world_size)
        return ResumableEpochSampler(
            len(dataset),
            seed=int(torch.initial_seed() % 2**32),  # the run's seed after seed_everything
            shuffle=self.shuffle,
            start_epoch=epoch,
            skip=done * self._device_batch_size,
            num_replicas=world_size,
            rank=int(getattr(trainer, "global_rank", 0)),
        )

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        """A DataLoader over ``split``; evaluation shards without repeats under DDP."""
        dataset = self._split_dataset(split)
        sampler: Sampler[int] | None = None
        if split == "train":
            sampler = self._training_sampler(dataset)
        elif self._world_size() > 1 and dist.is_available() and dist.is_initialized():
            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self._collate_fn(),
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0 and split != "test",
            # A private generator: creating an iterator must not draw from the global RNG, or a
            # resumed run (which creates its iterators at another point) would drift.
            generator=torch.Generator().manual_seed(torch.initial_seed() % 2**63),
        )

    def train_dataloader(self) -> DataLoader:
        """Batches of the training split, shuffled unless ``shuffle`` is False."""
        return self._loader("train", self._device_batch_size, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        """Batches of the validation split (carved from the training split), in order."""
        return self._loader("val", self._device_eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of ``test_split``, in order; each question exactly once, also under DDP."""
        return self._loader(self.test_split, self._device_eval_batch_size, shuffle=False)
