"""``DecoyDigitsDataModule``: decoy digits (Ross et al. 2017) in memory, for Lightning.

The splits are built by :func:`hint_lightning.prepare.decoy_digits.make_decoy_digits` when the
module is set up (no file: scikit-learn ships the digits); the geometry and the arrays of a
split are :mod:`hint_lightning.stores.decoy_digits`, re-exported here with the batch keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from hint_lightning.prepare.decoy_digits import decoy_shade, make_decoy_digits
from hint_lightning.stores.decoy_digits import (
    BORDER,
    CANVAS,
    CORNER_CELLS,
    GRID,
    NUM_CLASSES,
    PATCH,
    DecoySplit,
    image_patches,
)

__all__ = [
    "BORDER",
    "CANVAS",
    "CORNER_CELLS",
    "DECOY_INDEX",
    "FEATURES",
    "GRID",
    "HAS_IMPORTANCE",
    "HUMAN_IMPORTANCE",
    "LABEL",
    "NUM_CLASSES",
    "PATCH",
    "PROPOSAL_MASK",
    "DecoyDigitsDataModule",
    "DecoyDigitsDataset",
    "DecoyDigitsInfo",
    "DecoySplit",
    "decoy_shade",
    "image_patches",
    "make_decoy_digits",
]

# Keys of a batch.
FEATURES = "features"
LABEL = "label"
HUMAN_IMPORTANCE = "human_importance"
HAS_IMPORTANCE = "has_importance"
PROPOSAL_MASK = "proposal_mask"
DECOY_INDEX = "decoy_index"


@dataclass(frozen=True)
class DecoyDigitsInfo:
    """Sizes a model needs.

    Attributes:
        num_proposals: N, proposals per image (36).
        feature_dim: D, pixels per proposal (16).
        num_classes: 10.
    """

    num_proposals: int = GRID * GRID
    feature_dim: int = PATCH * PATCH
    num_classes: int = NUM_CLASSES


class DecoyDigitsDataset(Dataset):
    """A split as tensors; items are dicts with the batch keys of this module."""

    def __init__(self, split: DecoySplit) -> None:
        self.tensors: dict[str, Tensor] = {
            FEATURES: torch.from_numpy(image_patches(split.images)).float(),
            LABEL: torch.from_numpy(split.labels),
            HUMAN_IMPORTANCE: torch.from_numpy(split.human_importance).float(),
            HAS_IMPORTANCE: torch.from_numpy(split.has_importance),
            PROPOSAL_MASK: torch.ones(len(split.labels), GRID * GRID, dtype=torch.bool),
            DECOY_INDEX: torch.from_numpy(split.decoy_index).long(),
        }

    def __len__(self) -> int:
        return len(self.tensors[LABEL])

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}


class DecoyDigitsDataModule(pl.LightningDataModule):
    """Decoy digits for Lightning (built in memory from scikit-learn's digits; no files).

    Args:
        batch_size: training batch size.
        eval_batch_size: validation and test batch size.
        seed: data seed (split, corners, test shades, hinted samples).
        test_fraction: share of digits in test.
        val_fraction: share of the rest in val.
        hinted_fraction: share of training images with human importance.
        blur_sigma: blur of the digit for human importance, in pixels.
        val_decoy: ``coded`` (val's decoy encodes the label, as in train) or ``random`` (a
            random label's shade, as in test: a selection split that does not reward the
            shortcut); see :func:`make_decoy_digits`.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        seed: int = 0,
        test_fraction: float = 0.3,
        val_fraction: float = 0.1,
        hinted_fraction: float = 1.0,
        blur_sigma: float = 2.0,
        num_workers: int = 0,
        val_decoy: str = "coded",
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.hinted_fraction = hinted_fraction
        self.blur_sigma = blur_sigma
        self.num_workers = num_workers
        self.val_decoy = val_decoy
        self.info = DecoyDigitsInfo()
        self.datasets: dict[str, DecoyDigitsDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        """Build the three splits (once)."""
        if not self.datasets:
            splits = make_decoy_digits(
                self.seed,
                self.test_fraction,
                self.val_fraction,
                self.hinted_fraction,
                self.blur_sigma,
                self.val_decoy,
            )
            self.datasets = {name: DecoyDigitsDataset(split) for name, split in splits.items()}

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)
