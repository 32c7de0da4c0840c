"""Decoy digits in memory: the proposal grid and the arrays of a split (no file).

Built by :func:`hint_lightning.prepare.decoy_digits.make_decoy_digits` (scikit-learn's digits
with a label-coding decoy patch, Ross et al. 2017) and read by
:class:`hint_lightning.data.decoy_digits.DecoyDigitsDataModule`. A 24x24 canvas is cut into
the 36 proposals of a 6x6 grid of 4x4 patches (:func:`image_patches`); the digit covers the
inner 4x4 cells, the decoy one corner cell (:data:`CORNER_CELLS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BORDER",
    "CANVAS",
    "CORNER_CELLS",
    "GRID",
    "NUM_CLASSES",
    "PATCH",
    "DecoySplit",
    "image_patches",
]

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


def image_patches(images: np.ndarray) -> np.ndarray:
    """``[M, 24, 24]`` images as ``[M, 36, 16]`` proposals (row-major cells, row-major pixels).

    Example:
        >>> image_patches(np.arange(576.0).reshape(1, 24, 24))[0, 1, :4]
        array([4., 5., 6., 7.])
    """
    m = len(images)
    cells = images.reshape(m, GRID, PATCH, GRID, PATCH).transpose(0, 1, 3, 2, 4)
    return cells.reshape(m, GRID * GRID, PATCH * PATCH)
