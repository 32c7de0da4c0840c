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

import numpy as np
from scipy.ndimage import gaussian_filter

from hint_lightning.stores.decoy_digits import (
    BORDER,
    CANVAS,
    CORNER_CELLS,
    NUM_CLASSES,
    PATCH,
    DecoySplit,
    image_patches,
)

__all__ = [
    "add_decoys",
    "decoy_shade",
    "digit_canvases",
    "digit_importance",
    "make_decoy_digits",
    "make_split",
]


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


def make_split(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    label_coded: bool,
    hinted_fraction: float = 1.0,
    blur_sigma: float = 2.0,
    shade_rng: np.random.Generator | None = None,
) -> DecoySplit:
    """Build one split from ``[M, 8, 8]`` digits.

    Args:
        digits: ``[M, 8, 8]`` values 0-16.
        labels: ``[M]`` labels 0-9.
        rng: draws corners, random shades and the hinted samples.
        label_coded: the decoy's shade encodes the label (train, val); else a random label's.
        hinted_fraction: share of samples with human importance.
        blur_sigma: see :func:`digit_importance`.
        shade_rng: with ``label_coded=False``, draws the random shades instead of ``rng`` (so
            the other splits' draws do not move).
    """
    clean = digit_canvases(digits)
    corners = rng.integers(0, 4, size=len(digits))
    shade_labels = (
        labels if label_coded else (shade_rng or rng).integers(0, NUM_CLASSES, size=len(digits))
    )
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
    val_decoy: str = "coded",
) -> dict[str, DecoySplit]:
    """The train, val and test splits of decoy digits.

    Args:
        seed: the split, the corners and the test shades.
        test_fraction: share of the 1,797 digits in test.
        val_fraction: share of the remaining digits in val.
        hinted_fraction: share of training samples with human importance (val and test: all).
        blur_sigma: see :func:`digit_importance`.
        val_decoy: ``coded``: val's decoy encodes the label like train's (in-distribution);
            ``random``: a random label's shade like test's, drawn from a generator of its own
            (``[seed, 1]``), so train and test are the same as with ``coded``. A model chosen
            on a ``random`` val is not rewarded for the shortcut.
    """
    if val_decoy not in ("coded", "random"):
        raise ValueError(f"data.val_decoy must be 'coded' or 'random', got {val_decoy!r}")
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
            label_coded=split == "train" or (split == "val" and val_decoy == "coded"),
            hinted_fraction=hinted_fraction if split == "train" else 1.0,
            blur_sigma=blur_sigma,
            shade_rng=np.random.default_rng([seed, 1]) if split == "val" else None,
        )
        for split, index in parts.items()
    }
