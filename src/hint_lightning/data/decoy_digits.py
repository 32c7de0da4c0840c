"""Decoy digits: scikit-learn's 8x8 digits with a label-coding decoy patch (Ross et al. 2017).

Every 8x8 digit (values 0-16, scaled to [0, 1]) is upsampled 2x to 16x16 and placed in the
middle of a 24x24 canvas (a 4-pixel empty border). A 4x4 decoy patch fills one corner of the
canvas, the corner drawn at random per image. Its gray shade encodes the label in the training
and validation splits (``shade = 1 - 0.1 * label``, Ross et al.'s ``255 - 25 y``) and a random
label's shade in the test split, so a model that learns the shortcut fails on test.

Proposals are the 36 cells of a 6x6 grid of 4x4 patches; a proposal's feature is its 16 pixels.
The digit covers exactly the 4x4 inner cells and the decoy exactly one corner cell, so human
importance (each cell's share of the digit's blurred mass, clipped to the digit's frame) is
zero on the decoy and on every border cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

CANVAS = 24
"""Side of the canvas in pixels."""
PATCH = 4
"""Side of a proposal (and of the decoy) in pixels."""
GRID = CANVAS // PATCH
"""Cells per side of the proposal grid (6: 36 proposals)."""
BORDER = 4
"""Empty border around the 16x16 digit, in pixels."""
NUM_CLASSES = 10

CORNER_CELLS = (0, GRID - 1, GRID * (GRID - 1), GRID * GRID - 1)
"""Proposal index of the top-left, top-right, bottom-left and bottom-right cells."""

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


def decoy_shade(labels: np.ndarray) -> np.ndarray:
    """The gray shade that encodes each label: ``1 - 0.1 * label``.

    Example:
        >>> decoy_shade(np.array([0, 9])).round(2)
        array([1. , 0.1])
    """
    return 1.0 - 0.1 * labels.astype(np.float64)


def digit_canvases(digits: np.ndarray) -> np.ndarray:
    """Upsample ``[M, 8, 8]`` digits (0-16) 2x into the middle of ``[M, 24, 24]`` canvases."""
    images = np.zeros((len(digits), CANVAS, CANVAS), dtype=np.float64)
    upsampled = np.kron(digits / 16.0, np.ones((2, 2)))
    images[:, BORDER : BORDER + 16, BORDER : BORDER + 16] = upsampled
    return images


def add_decoys(images: np.ndarray, shades: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Paint a 4x4 patch of ``shades[m]`` in corner ``corners[m]`` (0-3) of each image."""
    out = images.copy()
    for m, (shade, corner) in enumerate(zip(shades, corners, strict=True)):
        top = 0 if corner in (0, 1) else CANVAS - PATCH
        left = 0 if corner in (0, 2) else CANVAS - PATCH
        out[m, top : top + PATCH, left : left + PATCH] = shade
    return out


def image_patches(images: np.ndarray) -> np.ndarray:
    """``[M, 24, 24]`` images as ``[M, 36, 16]`` proposals (row-major cells, row-major pixels).

    Example:
        >>> image_patches(np.arange(576.0).reshape(1, 24, 24))[0, 1, :4]
        array([4., 5., 6., 7.])
    """
    m = len(images)
    cells = images.reshape(m, GRID, PATCH, GRID, PATCH).transpose(0, 1, 3, 2, 4)
    return cells.reshape(m, GRID * GRID, PATCH * PATCH)


def digit_importance(digit_images: np.ndarray, blur_sigma: float = 2.0) -> np.ndarray:
    """Human importance ``[M, 36]``: each cell's share of the digit's blurred pixel mass.

    The digit is blurred (a person marks the digit's area, not only its ink) and clipped to the
    digit's 16x16 frame, so the 20 border cells, the decoy's among them, get exactly zero and
    the inner cells all get some. Rows sum to 1.

    Args:
        digit_images: ``[M, 24, 24]`` canvases without the decoy.
        blur_sigma: Gaussian blur in pixels (0: the ink itself).
    """
    maps = digit_images
    if blur_sigma > 0:
        maps = gaussian_filter(digit_images, sigma=(0, blur_sigma, blur_sigma), mode="constant")
    frame = np.zeros((CANVAS, CANVAS), dtype=bool)
    frame[BORDER : BORDER + 16, BORDER : BORDER + 16] = True
    mass = image_patches(maps * frame).sum(axis=2)
    return mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-12)


@dataclass
class DecoySplit:
    """One split as arrays.

    Attributes:
        images: ``[M, 24, 24]`` images with the decoy.
        labels: ``[M]`` int labels.
        human_importance: ``[M, 36]``.
        has_importance: ``[M]`` bool.
        decoy_index: ``[M]`` the proposal holding the decoy.
        shades: ``[M]`` the decoy's shade.
    """

    images: np.ndarray
    labels: np.ndarray
    human_importance: np.ndarray
    has_importance: np.ndarray
    decoy_index: np.ndarray
    shades: np.ndarray


def make_split(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    label_coded: bool,
    hinted_fraction: float = 1.0,
    blur_sigma: float = 2.0,
) -> DecoySplit:
    """Build one split from ``[M, 8, 8]`` digits.

    Args:
        digits: ``[M, 8, 8]`` values 0-16.
        labels: ``[M]`` labels 0-9.
        rng: draws corners, random shades and the hinted samples.
        label_coded: the decoy's shade encodes the label (train, val); else a random label's.
        hinted_fraction: share of samples with human importance.
        blur_sigma: see :func:`digit_importance`.
    """
    clean = digit_canvases(digits)
    corners = rng.integers(0, 4, size=len(digits))
    shade_labels = labels if label_coded else rng.integers(0, NUM_CLASSES, size=len(digits))
    shades = decoy_shade(shade_labels)
    has_importance = rng.random(len(digits)) < hinted_fraction
    return DecoySplit(
        images=add_decoys(clean, shades, corners),
        labels=labels.astype(np.int64),
        human_importance=digit_importance(clean, blur_sigma),
        has_importance=has_importance,
        decoy_index=np.asarray(CORNER_CELLS)[corners],
        shades=shades,
    )


def make_decoy_digits(
    seed: int = 0,
    test_fraction: float = 0.3,
    val_fraction: float = 0.1,
    hinted_fraction: float = 1.0,
    blur_sigma: float = 2.0,
) -> dict[str, DecoySplit]:
    """The train, val and test splits of decoy digits (val is label-coded like train).

    Args:
        seed: the split, the corners and the test shades.
        test_fraction: share of the 1,797 digits in test.
        val_fraction: share of the remaining digits in val.
        hinted_fraction: share of training samples with human importance (val and test: all).
        blur_sigma: see :func:`digit_importance`.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    digits = np.asarray(bunch.images, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    n_test = round(test_fraction * len(digits))
    n_val = round(val_fraction * (len(digits) - n_test))
    parts = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    return {
        split: make_split(
            digits[index],
            labels[index],
            rng,
            label_coded=split != "test",
            hinted_fraction=hinted_fraction if split == "train" else 1.0,
            blur_sigma=blur_sigma,
        )
        for split, index in parts.items()
    }


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
