"""easy-VQA pixels -> shape masks, region proposals, proposal features and human attention.

This module stands in for the bottom-up Faster R-CNN detector of UpDn and for VQA-HAT, so
that the whole HINT pipeline runs on a dataset that ships in a package (the recipe of the
easy-VQA-CP feasibility study):

* **Shape mask.** The background is the most common RGB triple of the image; the mask is every
  pixel whose largest per-channel absolute difference from it exceeds a threshold (12).
* **Proposals** (N = 24 per image, pixel boxes ``x1, y1, x2, y2`` with ``x2, y2`` exclusive,
  rounded to whole pixels): a 4x4 grid of 16 px cells; jittered copies of the shape's box
  (center shifted by up to +-25% of the box size, each side scaled by 0.7-1.4, clipped to the
  image); random boxes with sides of 8-40 px. All draws come from one seeded generator.
* **Features** (D = 123 per proposal, no label information), from 12x12 bilinear samples of
  the box (one batched ``grid_sample`` for all boxes): mean and std RGB (6), joint color
  histogram with 4 bins per channel (64), the samples average-pooled to 4x4x3 (48) and the
  normalized box and area (5). They are standardized per dimension afterwards (by the store).
* **Human attention.** The mask blurred with a Gaussian (sigma 3 px) plays the role of a
  VQA-HAT map; all questions about an image share it. Each proposal's human importance is
  ``s = E+ / (E+ + E-)`` from :func:`hint_lightning.prepare.human_importance.proposal_importance`.

Pixel values are scaled to [0, 1] before sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter
from torch import Tensor

from hint_lightning.prepare.human_importance import proposal_importance

__all__ = [
    "FEATURE_DIM",
    "GRID_CELLS",
    "HISTOGRAM_BINS",
    "MASK_THRESHOLD",
    "POOLED_SIZE",
    "SAMPLES_PER_SIDE",
    "attention_maps",
    "background_colors",
    "grid_boxes",
    "human_importance",
    "load_images",
    "make_proposals",
    "mask_boxes",
    "proposal_counts",
    "proposal_features",
    "shape_masks",
]

MASK_THRESHOLD: Final = 12
"""A pixel belongs to the shape when max-channel |pixel - background| exceeds this (0-255)."""
GRID_CELLS: Final = 4
"""The grid proposals are GRID_CELLS x GRID_CELLS cells covering the image."""
SAMPLES_PER_SIDE: Final = 12
"""Each box is sampled on a SAMPLES_PER_SIDE x SAMPLES_PER_SIDE bilinear grid."""
HISTOGRAM_BINS: Final = 4
"""Bins per channel of the joint color histogram (4**3 = 64 features)."""
POOLED_SIZE: Final = 4
"""The samples are average-pooled to POOLED_SIZE x POOLED_SIZE x 3 (48 features)."""
FEATURE_DIM: Final = 6 + HISTOGRAM_BINS**3 + 3 * POOLED_SIZE**2 + 5
"""D = 123: mean/std RGB, joint histogram, pooled crop, normalized box and area."""

JITTER_SHIFT: Final = 0.25
"""Jittered boxes: the center moves by up to this fraction of the box size along each axis."""
JITTER_SCALE: Final = (0.7, 1.4)
"""Jittered boxes: each side is scaled by a factor drawn from this range."""
RANDOM_SIDE: Final = (8.0, 40.0)
"""Random boxes: each side is drawn from this range (pixels)."""


def load_images(paths: Sequence[str]) -> np.ndarray:
    """Loads RGB images of one size.

    Args:
        paths: I image files.

    Returns:
        Uint8 array of shape [I, H, W, 3].
    """
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


def background_colors(images: np.ndarray) -> np.ndarray:
    """The most common RGB triple of each image (ties: the smallest ``0xRRGGBB`` value).

    Vectorized: pixels are packed into 24-bit codes, each row is sorted, and the longest run
    of equal codes is found for all images at once.

    Args:
        images: Uint8 array of shape [I, H, W, 3].

    Returns:
        Uint8 array of shape [I, 3].

    Example:
        >>> image = np.zeros((1, 2, 3, 3), dtype=np.uint8)
        >>> image[0, 0, :2] = [255, 0, 0]
        >>> background_colors(image).tolist()
        [[0, 0, 0]]
    """
    num_images = images.shape[0]
    wide = images.reshape(num_images, -1, 3).astype(np.int32)
    codes = np.sort(wide[..., 0] << 16 | wide[..., 1] << 8 | wide[..., 2], axis=1)
    num_pixels = codes.shape[1]
    run_start = np.ones(codes.shape, dtype=bool)
    run_start[:, 1:] = codes[:, 1:] != codes[:, :-1]
    starts = np.flatnonzero(run_start)  # every row starts a run at column 0
    lengths = np.diff(np.append(starts, codes.size))
    first_run = np.searchsorted(starts, np.arange(num_images) * num_pixels)
    longest = np.maximum.reduceat(lengths, first_run)
    row_of_run = starts // num_pixels
    candidates = np.flatnonzero(lengths == longest[row_of_run])
    _, first = np.unique(row_of_run[candidates], return_index=True)
    best = codes.reshape(-1)[starts[candidates[first]]]
    return np.stack([best >> 16, (best >> 8) & 255, best & 255], axis=1).astype(np.uint8)


def shape_masks(images: np.ndarray, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """The pixels that differ from the background color by more than ``threshold``.

    Args:
        images: Uint8 array of shape [I, H, W, 3].
        threshold: Largest max-channel absolute difference (0-255) that still counts as
            background.

    Returns:
        Bool array of shape [I, H, W].

    Example:
        >>> image = np.full((1, 4, 4, 3), 200, dtype=np.uint8)
        >>> image[0, 1:3, 2] = [200, 180, 200]
        >>> image[0, 0, 0] = [205, 200, 200]  # within the threshold: background
        >>> shape_masks(image)[0].astype(int)
        array([[0, 0, 0, 0],
               [0, 0, 1, 0],
               [0, 0, 1, 0],
               [0, 0, 0, 0]])
    """
    background = background_colors(images).astype(np.int16)
    difference = np.abs(images.astype(np.int16) - background[:, None, None, :])
    return difference.max(axis=-1) > threshold


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """The tight pixel box of each mask; the whole image for an empty mask.

    Args:
        masks: Bool array of shape [I, H, W].

    Returns:
        Float64 array of shape [I, 4]: ``x1, y1, x2, y2`` with ``x2, y2`` exclusive.

    Example:
        >>> masks = np.zeros((2, 4, 5), dtype=bool)
        >>> masks[0, 1:3, 2:4] = True
        >>> mask_boxes(masks).tolist()
        [[2.0, 1.0, 4.0, 3.0], [0.0, 0.0, 5.0, 4.0]]
    """
    _, height, width = masks.shape
    columns = masks.any(axis=1)  # [I, W]
    rows = masks.any(axis=2)  # [I, H]
    boxes = np.stack(
        [
            columns.argmax(axis=1),
            rows.argmax(axis=1),
            width - columns[:, ::-1].argmax(axis=1),
            height - rows[:, ::-1].argmax(axis=1),
        ],
        axis=1,
    ).astype(np.float64)
    empty = ~columns.any(axis=1)
    boxes[empty] = [0.0, 0.0, width, height]
    return boxes


def grid_boxes(height: int, width: int, cells: int = GRID_CELLS) -> np.ndarray:
    """A ``cells x cells`` grid of boxes covering the image, row by row.

    Args:
        height: Image height H (pixels).
        width: Image width W (pixels).
        cells: Cells per side.

    Returns:
        Float64 array of shape [cells**2, 4] (edges rounded to whole pixels).

    Example:
        >>> grid_boxes(64, 64, cells=2).astype(int).tolist()
        [[0, 0, 32, 32], [32, 0, 64, 32], [0, 32, 32, 64], [32, 32, 64, 64]]
    """
    xs = np.round(np.linspace(0, width, cells + 1))
    ys = np.round(np.linspace(0, height, cells + 1))
    y1, x1 = np.meshgrid(ys[:-1], xs[:-1], indexing="ij")
    y2, x2 = np.meshgrid(ys[1:], xs[1:], indexing="ij")
    return np.stack([x1, y1, x2, y2], axis=-1).reshape(-1, 4)


def proposal_counts(num_proposals: int) -> tuple[int, int, int]:
    """How many grid, jittered and random boxes make up ``num_proposals``.

    The grid always has ``GRID_CELLS**2`` (16) boxes; the rest is split evenly between
    jittered and random boxes, jittered ones taking the odd one.

    Args:
        num_proposals: N, at least 16.

    Returns:
        ``(grid, jittered, random)``.

    Raises:
        ValueError: If ``num_proposals < 16``.

    Example:
        >>> proposal_counts(24), proposal_counts(25)
        ((16, 4, 4), (16, 5, 4))
    """
    grid = GRID_CELLS**2
    if num_proposals < grid:
        raise ValueError(f"num_proposals must be >= {grid} (the grid), got {num_proposals}")
    rest = num_proposals - grid
    return grid, (rest + 1) // 2, rest // 2


def _round_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rounds boxes to whole pixels inside the image, at least 1 px wide and high.

    Args:
        boxes: Float array of shape [..., 4].
        height: Image height H.
        width: Image width W.

    Returns:
        Float64 array of shape [..., 4] with ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``.
    """
    x1 = np.clip(np.rint(boxes[..., 0]), 0, width - 1)
    y1 = np.clip(np.rint(boxes[..., 1]), 0, height - 1)
    x2 = np.clip(np.rint(boxes[..., 2]), x1 + 1, width)
    y2 = np.clip(np.rint(boxes[..., 3]), y1 + 1, height)
    return np.stack([x1, y1, x2, y2], axis=-1)


def make_proposals(
    shape_boxes: np.ndarray,
    rng: np.random.Generator,
    height: int,
    width: int,
    num_proposals: int = 24,
) -> np.ndarray:
    """Grid, jittered and random proposals for every image.

    The draws, in this order, are: jitter shifts [I, J, 2] and scales [I, J, 2] (uniform),
    then random box sides [I, R, 2] and positions [I, R, 2] (uniform), so the result depends
    only on the generator's state and the shapes.

    Args:
        shape_boxes: Float array of shape [I, 4], the shapes' pixel boxes (from
            :func:`mask_boxes`).
        rng: Generator for the jitter and the random boxes.
        height: Image height H (pixels).
        width: Image width W (pixels).
        num_proposals: N (see :func:`proposal_counts`).

    Returns:
        Float64 array of shape [I, N, 4] of whole-pixel boxes ``x1, y1, x2, y2`` inside the
        image, non-empty: grid boxes first, then jittered, then random ones.
    """
    num_images = shape_boxes.shape[0]
    _, num_jittered, num_random = proposal_counts(num_proposals)
    grid = np.broadcast_to(grid_boxes(height, width), (num_images, GRID_CELLS**2, 4))

    size = shape_boxes[:, None, 2:] - shape_boxes[:, None, :2]  # [I, 1, 2]
    center = (shape_boxes[:, None, 2:] + shape_boxes[:, None, :2]) / 2
    shift = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, size=(num_images, num_jittered, 2))
    scale = rng.uniform(*JITTER_SCALE, size=(num_images, num_jittered, 2))
    center = center + shift * size
    half = scale * size / 2
    jittered = np.concatenate([center - half, center + half], axis=-1)

    sides = rng.uniform(*RANDOM_SIDE, size=(num_images, num_random, 2))
    sides = np.minimum(sides, [width, height])
    corner = rng.uniform(size=(num_images, num_random, 2)) * ([width, height] - sides)
    random_boxes = np.concatenate([corner, corner + sides], axis=-1)

    boxes = np.concatenate([grid, jittered, random_boxes], axis=1)
    return _round_boxes(boxes, height, width)


def _sampling_grid(boxes: Tensor, height: int, width: int, samples: int) -> Tensor:
    """``grid_sample`` coordinates of a ``samples x samples`` grid inside every box.

    Sample ``k`` along a side sits at ``x1 + (k + 0.5) / samples * (x2 - x1)`` (cell centers).
    With ``align_corners=False``, pixel edge coordinate ``x`` maps to ``2 x / W - 1``.

    Args:
        boxes: Float tensor of shape [I, N, 4] in pixels.
        height: Image height H.
        width: Image width W.
        samples: S, samples per side.

    Returns:
        Float tensor of shape [I, N * S, S, 2] (x, y), rows of box ``n`` at ``n * S``.
    """
    steps = (torch.arange(samples, dtype=boxes.dtype) + 0.5) / samples  # [S]
    x = boxes[..., 0:1] + steps * (boxes[..., 2:3] - boxes[..., 0:1])  # [I, N, S]
    y = boxes[..., 1:2] + steps * (boxes[..., 3:4] - boxes[..., 1:2])  # [I, N, S]
    gx = (2 * x / width - 1)[:, :, None, :].expand(-1, -1, samples, -1)  # [I, N, S(y), S(x)]
    gy = (2 * y / height - 1)[:, :, :, None].expand(-1, -1, -1, samples)
    grid = torch.stack([gx, gy], dim=-1)  # [I, N, S, S, 2]
    num_images, num_boxes = boxes.shape[:2]
    return grid.reshape(num_images, num_boxes * samples, samples, 2)


def proposal_features(
    images: np.ndarray, boxes: np.ndarray, samples: int = SAMPLES_PER_SIDE
) -> np.ndarray:
    """The 123-d raw (unstandardized) features of every proposal, vectorized over all boxes.

    Layout of the last axis: mean RGB (0-2), std RGB (3-5, population std over the samples),
    joint color histogram (6-69, bin ``16 r + 4 g + b`` with 4 bins per channel over [0, 1],
    fractions of the samples), the samples average-pooled to 4x4 in row-major cell order with
    RGB innermost (70-117), and ``x1/W, y1/H, x2/W, y2/H, area/(H W)`` (118-122).

    Args:
        images: Uint8 array of shape [I, H, W, 3].
        boxes: Float array of shape [I, N, 4], pixel boxes inside the images.
        samples: S, bilinear samples per box side; must be a multiple of 4 (the pooled grid).

    Returns:
        Float32 array of shape [I, N, 123].
    """
    if samples % POOLED_SIZE:
        raise ValueError(f"samples must be a multiple of {POOLED_SIZE}, got {samples}")
    num_images, height, width, _ = images.shape
    num_boxes = boxes.shape[1]
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # [I, 3, H, W]
    box_t = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))
    grid = _sampling_grid(box_t, height, width, samples)
    sampled = F.grid_sample(
        pixels, grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # [I, 3, N * S, S]
    sampled = sampled.reshape(num_images, 3, num_boxes, samples, samples).permute(0, 2, 3, 4, 1)
    flat = sampled.reshape(num_images, num_boxes, samples * samples, 3)  # [I, N, S*S, 3]

    mean = flat.mean(dim=2)
    std = flat.std(dim=2, unbiased=False)
    bins = (flat * HISTOGRAM_BINS).long().clamp_(0, HISTOGRAM_BINS - 1)
    joint = (bins[..., 0] * HISTOGRAM_BINS + bins[..., 1]) * HISTOGRAM_BINS + bins[..., 2]
    histogram = torch.zeros(num_images, num_boxes, HISTOGRAM_BINS**3)
    histogram.scatter_add_(2, joint, torch.ones_like(joint, dtype=torch.float32))
    histogram /= samples * samples
    cell = samples // POOLED_SIZE
    pooled = sampled.reshape(num_images, num_boxes, POOLED_SIZE, cell, POOLED_SIZE, cell, 3)
    pooled = pooled.mean(dim=(3, 5)).reshape(num_images, num_boxes, -1)
    scale = box_t.new_tensor([width, height, width, height])
    normalized = box_t / scale
    area = (normalized[..., 2] - normalized[..., 0]) * (normalized[..., 3] - normalized[..., 1])
    features = torch.cat([mean, std, histogram, pooled, normalized, area[..., None]], dim=-1)
    return features.numpy()


def attention_maps(masks: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Human-attention stand-ins: each mask blurred with a Gaussian of ``sigma`` pixels.

    Args:
        masks: Bool array of shape [I, H, W].
        sigma: Standard deviation of the blur in pixels (0: no blur). Borders reflect
            (``scipy.ndimage.gaussian_filter`` default).

    Returns:
        Float64 array of shape [I, H, W], non-negative.
    """
    return gaussian_filter(masks.astype(np.float64), sigma=(0.0, sigma, sigma))


def human_importance(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Human importance of every proposal of every image under its attention map.

    Args:
        maps: Float array of shape [I, H, W].
        boxes: Float array of shape [I, N, 4], pixel boxes.

    Returns:
        Float32 array of shape [I, N] in [0, 1].
    """
    out = np.empty(boxes.shape[:2], dtype=np.float32)
    for index, (attention, image_boxes) in enumerate(zip(maps, boxes, strict=True)):
        out[index] = proposal_importance(attention, image_boxes)
    return out
