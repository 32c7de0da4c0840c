"""Human importance of patch tokens (ViT-style backbones) from a human map or from boxes.

A ViT cuts an ``H x W`` image into a ``rows x cols`` grid of equal patches, row-major: patch
``k = r * cols + c`` covers pixel rows ``[r * ph, (r + 1) * ph)`` and columns
``[c * pw, (c + 1) * pw)`` with ``ph = H / rows`` and ``pw = W / cols``. A patch is then a
proposal like any other, and its human importance is HINT's score of that box (Selvaraju et al.
2019, see :mod:`hint_lightning.prepare.human_importance`)::

    E+ = mean of the map inside the patch, E- = mean outside, s = E+ / (E+ + E-)

computed from the same (sampled) summed-area table as
:func:`~hint_lightning.prepare.human_importance.proposal_importance`: one pass over the map,
four look-ups per patch, so the result is exact for every patch, including one that the
attention covers only partly.

Box-only annotations (COCO boxes, easy-VQA shape boxes) become a map first
(:func:`box_map`): each pixel holds the exact fraction of its area that a box covers (fractional
box edges give fractional pixels), summed over the boxes; :func:`box_patch_importance` scores
the patches under that map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hint_lightning.prepare.human_importance import _check_boxes, proposal_importance

__all__ = ["box_map", "box_patch_importance", "check_grid", "patch_boxes", "patch_importance"]


def check_grid(size: tuple[int, int], grid: Sequence[int], what: str = "image") -> tuple[int, int]:
    """The patch size ``(ph, pw)`` of a ``grid`` over an image of ``size``.

    Args:
        size: ``(H, W)``.
        grid: ``(rows, cols)``, positive integers dividing ``H`` and ``W``.
        what: the name of the image in messages.

    Raises:
        ValueError: naming the grid and the size when the grid is not two positive integers
            or does not divide the image.

    Example:
        >>> check_grid((64, 64), (8, 8))
        (8, 8)
    """
    if len(grid) != 2 or any(isinstance(g, bool) or int(g) != g or g < 1 for g in grid):
        raise ValueError(f"grid must be two positive integers (rows, cols), got {tuple(grid)}")
    rows, cols = int(grid[0]), int(grid[1])
    height, width = size
    if height % rows or width % cols:
        raise ValueError(
            f"a grid of {rows}x{cols} patches does not divide the {what} of {height}x{width} "
            "pixels (rows must divide the height, cols the width)"
        )
    return height // rows, width // cols


def patch_boxes(size: tuple[int, int], grid: Sequence[int]) -> np.ndarray:
    """``[rows * cols, 4]`` pixel boxes (x1, y1, x2, y2) of the patches, row-major.

    Example:
        >>> patch_boxes((4, 4), (2, 2)).tolist()
        [[0, 0, 2, 2], [2, 0, 4, 2], [0, 2, 2, 4], [2, 2, 4, 4]]
    """
    patch_h, patch_w = check_grid(size, grid)
    rows, cols = int(grid[0]), int(grid[1])
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([c * patch_w, r * patch_h, (c + 1) * patch_w, (r + 1) * patch_h], axis=1)


def patch_importance(
    attention_map: np.ndarray,
    grid: Sequence[int],
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Human importance of every patch of a grid under a human map.

    Args:
        attention_map: ``[H, W]`` finite, non-negative (VQA-HAT PNG, instance mask, shape mask).
        grid: ``(rows, cols)`` dividing ``H`` and ``W``.
        image_size: ``(H, W)`` of the image the patches cut (None: the map's own size); the
            map must have that size (resize it to the image first).

    Returns:
        ``[rows * cols]`` float64 in [0, 1], row-major.

    Raises:
        ValueError: for a map that is not a finite non-negative 2-D array, a map whose size
            differs from ``image_size``, or a grid that does not divide the image.

    Example:
        >>> attention = np.zeros((4, 4))
        >>> attention[:2, :2] = 1.0
        >>> patch_importance(attention, (2, 2)).tolist()
        [1.0, 0.0, 0.0, 0.0]
    """
    shape = tuple(np.shape(attention_map))
    if len(shape) != 2:
        raise ValueError(f"attention_map must have shape [H, W], got shape {shape}")
    if image_size is not None and tuple(image_size) != shape:
        raise ValueError(
            f"the human map has size {shape[0]}x{shape[1]} but the image is "
            f"{image_size[0]}x{image_size[1]}: resize the map to the image first"
        )
    return proposal_importance(attention_map, patch_boxes(shape, grid))  # type: ignore[arg-type]


def box_map(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` map of boxes: each pixel's exact covered area, summed over the boxes.

    Args:
        boxes: ``[K, 4]`` x1, y1, x2, y2 in pixels (fractional allowed; clipped to the image).
        image_size: ``(H, W)``.

    Example:
        >>> box_map(np.array([[0.5, 0, 2, 1]]), (1, 2)).tolist()
        [[0.5, 1.0]]
    """
    boxes = _check_boxes(boxes)
    height, width = image_size
    columns = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    over_x = np.clip(
        np.minimum(boxes[:, 2:3], columns + 1) - np.maximum(boxes[:, 0:1], columns), 0, 1
    )  # [K, W]
    over_y = np.clip(np.minimum(boxes[:, 3:4], rows + 1) - np.maximum(boxes[:, 1:2], rows), 0, 1)
    return np.einsum("ki,kj->ij", over_y, over_x)


def box_patch_importance(
    boxes: np.ndarray, image_size: tuple[int, int], grid: Sequence[int]
) -> np.ndarray:
    """Human importance of every patch for box-only annotations (:func:`box_map` scored).

    Args:
        boxes: ``[K, 4]`` annotated boxes in pixels (K may be 0: every patch scores 0).
        image_size: ``(H, W)``.
        grid: ``(rows, cols)`` dividing the image.

    Returns:
        ``[rows * cols]`` float64 in [0, 1].

    Example:
        >>> box_patch_importance(np.array([[0, 0, 2, 2]]), (4, 4), (2, 2)).tolist()
        [1.0, 0.0, 0.0, 0.0]
    """
    check_grid(image_size, grid)
    return patch_importance(box_map(boxes, image_size), grid, image_size)
