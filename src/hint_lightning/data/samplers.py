"""A training sampler that makes runs resumable mid-epoch, exactly.

Each epoch's order is a permutation drawn from ``(seed, epoch)`` only, so a resumed run can
rebuild the interrupted epoch's order and skip the batches it had already trained on. The
DataModule reads the trainer's restored progress when it builds the training loader.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableEpochSampler(Sampler[int]):
    """Shuffles ``num_items`` indices per epoch from ``(seed, epoch)``; can start mid-epoch.

    Args:
        num_items: dataset length.
        seed: base seed (the run's seed).
        shuffle: False keeps the dataset order (every epoch).
        start_epoch: the epoch of the first iteration (a resumed run's current epoch).
        skip: items of the first iteration already consumed before an interruption.

    Example:
        >>> sampler = ResumableEpochSampler(6, seed=0)
        >>> first = list(sampler)
        >>> resumed = ResumableEpochSampler(6, seed=0, start_epoch=0, skip=4)
        >>> list(resumed) == first[4:]
        True
    """

    def __init__(
        self,
        num_items: int,
        seed: int = 0,
        shuffle: bool = True,
        start_epoch: int = 0,
        skip: int = 0,
    ) -> None:
        self.num_items = num_items
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = start_epoch
        self.skip = skip

    def order(self, epoch: int) -> np.ndarray:
        """The full order of ``epoch`` ``[num_items]``."""
        if not self.shuffle:
            return np.arange(self.num_items)
        return np.random.default_rng((self.seed, epoch)).permutation(self.num_items)

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)[self.skip :]
        self.epoch += 1
        self.skip = 0
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_items - self.skip
