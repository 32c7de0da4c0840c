"""Human importance of region proposals from a human attention map (HINT, Selvaraju et al. 2019).

For a proposal ``r`` with ``a_r`` pixels and a non-negative attention map ``A`` of ``H x W``
pixels, HINT defines

* ``E+ = sum_{(i, j) in r} A_ij / a_r`` (mean attention inside the box),
* ``E- = sum_{(i, j) not in r} A_ij / (H * W - a_r)`` (mean attention outside the box),
* ``s_r = E+ / (E+ + E-)``, in ``[0, 1]``.

All boxes are scored at once from the summed-area table (integral image) of the map, evaluated
only at the rows and columns where box edges lie: one pass over the map, then four look-ups per
box, vectorized over the boxes.

Box convention: ``x1, y1, x2, y2`` in the map's pixel coordinates, where pixel ``(i, j)`` (row
``i``, column ``j``) covers ``[j, j + 1) x [i, i + 1)``. A box covers the pixels with
``x1 <= j < x2`` and ``y1 <= i < y2`` (``x1, y1`` inclusive, ``x2, y2`` exclusive). Fractional
coordinates are rounded to the nearest pixel edge (halves round up: ``floor(x + 0.5)``), then
clipped to the map (``x`` to ``[0, W]``, ``y`` to ``[0, H]``).

Degenerate cases (the choices of the easy-VQA-CP feasibility study):

* empty box (``x2 <= x1`` or ``y2 <= y1`` after rounding and clipping, e.g. a box entirely
  outside the map): ``a_r = 0`` and ``E+ = 0``;
* box covering the whole map: ``H * W - a_r = 0`` and ``E- = 0``;
* ``E+ + E- = 0`` (e.g. an all-zero map, or an empty box on a map whose mass is zero): ``s = 0``.

Hence an empty box scores 0 on any map and a whole-map box scores 1 on any map with positive
mass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "average_attention_maps",
    "proposal_importance",
    "sampled_summed_area_table",
    "summed_area_table",
]


def _check_attention_map(attention_map: np.ndarray) -> np.ndarray:
    """Validates an attention map and returns it as a float64 array.

    Args:
        attention_map: Array-like of shape [H, W] with finite, non-negative values, H, W >= 1.

    Returns:
        The map as a float64 ndarray of shape [H, W] (no copy when it already is one).

    Raises:
        ValueError: If the map is not 2-D, is empty, or has non-finite or negative values.
    """
    attention_map = np.asarray(attention_map)
    if attention_map.ndim != 2:
        raise ValueError(
            f"attention_map must have shape [H, W], got {attention_map.ndim} dimensions "
            f"(shape {attention_map.shape})"
        )
    if attention_map.size == 0:
        raise ValueError(f"attention_map must not be empty, got shape {attention_map.shape}")
    if not (np.issubdtype(attention_map.dtype, np.number) or attention_map.dtype == bool):
        raise ValueError(f"attention_map must be numeric, got dtype {attention_map.dtype}")
    attention_map = attention_map.astype(np.float64, copy=False)
    if not np.isfinite(attention_map).all():
        raise ValueError("attention_map must be finite (found NaN or inf)")
    if attention_map.min() < 0:
        raise ValueError(f"attention_map must be non-negative (min {attention_map.min()})")
    return attention_map


def _check_boxes(boxes: np.ndarray) -> np.ndarray:
    """Validates proposal boxes and returns them as a float64 array.

    Args:
        boxes: Array-like of shape [N, 4] (x1, y1, x2, y2) with finite values; N may be 0.

    Returns:
        The boxes as a float64 ndarray of shape [N, 4].

    Raises:
        ValueError: If the boxes do not have shape [N, 4] or have non-finite values.
    """
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4] (x1, y1, x2, y2), got {boxes.shape}")
    if not np.issubdtype(boxes.dtype, np.number):
        raise ValueError(f"boxes must be numeric, got dtype {boxes.dtype}")
    boxes = boxes.astype(np.float64, copy=False)
    if not np.isfinite(boxes).all():
        raise ValueError("boxes must be finite (found NaN or inf)")
    return boxes


def summed_area_table(attention_map: np.ndarray) -> np.ndarray:
    """Zero-padded summed-area table (integral image) of a 2-D map, in float64.

    ``table[i, j]`` is the sum of ``attention_map[:i, :j]``, so the sum over rows ``y1:y2`` and
    columns ``x1:x2`` is ``table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]``.

    Args:
        attention_map: Array of shape [H, W].

    Returns:
        Array of shape [H + 1, W + 1], float64; row 0 and column 0 are zero.

    Example:
        >>> summed_area_table(np.array([[1.0, 2.0], [3.0, 4.0]]))
        array([[ 0.,  0.,  0.],
               [ 0.,  1.,  3.],
               [ 0.,  4., 10.]])
    """
    height, width = attention_map.shape
    table = np.zeros((height + 1, width + 1), dtype=np.float64)
    inner = table[1:, 1:]
    np.cumsum(attention_map, axis=0, dtype=np.float64, out=inner)
    np.cumsum(inner, axis=1, out=inner)
    return table


def _pixel_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rounds boxes to pixel edges and clips them to the map.

    Args:
        boxes: Float array of shape [N, 4] (x1, y1, x2, y2) in pixel coordinates.
        height: Map height H.
        width: Map width W.

    Returns:
        Int64 array of shape [N, 4] with ``0 <= x1 <= x2 <= W`` and ``0 <= y1 <= y2 <= H``
        (an empty box keeps ``x2 == x1`` or ``y2 == y1``).
    """
    edges = np.floor(boxes + 0.5)
    upper = np.array([width, height, width, height], dtype=np.float64)
    edges = np.clip(edges, 0.0, upper).astype(np.int64)
    edges[:, 2] = np.maximum(edges[:, 2], edges[:, 0])
    edges[:, 3] = np.maximum(edges[:, 3], edges[:, 1])
    return edges


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator``, with 0 where ``denominator == 0``.

    Args:
        numerator: Float array of shape [N].
        denominator: Non-negative array of shape [N].

    Returns:
        Float64 array of shape [N].
    """
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _edges(coordinates: np.ndarray, size: int) -> np.ndarray:
    """Sorted distinct pixel edges used by the boxes, always including 0 and ``size``.

    Args:
        coordinates: Int64 array of any shape with values in [0, size].
        size: Map extent along this axis (H or W).

    Returns:
        Strictly increasing int64 array of shape [K], K >= 2, with ``edges[0] == 0`` and
        ``edges[-1] == size``.
    """
    return np.unique(np.concatenate([[0, size], coordinates.ravel()]))


def sampled_summed_area_table(
    attention_map: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """The summed-area table of a map, evaluated only on a grid of row and column edges.

    Equal to ``summed_area_table(attention_map)[np.ix_(rows, cols)]``, but built with one pass
    of ``np.add.reduceat`` over the map (block sums between consecutive edges) followed by
    cumulative sums over the small [K_rows, K_cols] grid of blocks, instead of two full
    cumulative sums over the map (several times slower, the axis-0 one in particular).

    Args:
        attention_map: Float64 array of shape [H, W].
        rows: Strictly increasing int64 array of shape [K_rows] with ``rows[0] == 0`` and
            ``rows[-1] == H``.
        cols: Strictly increasing int64 array of shape [K_cols] with ``cols[0] == 0`` and
            ``cols[-1] == W``.

    Returns:
        Float64 array of shape [K_rows, K_cols]: entry ``[a, b]`` is the sum of
        ``attention_map[:rows[a], :cols[b]]``.

    Example:
        >>> attention = np.arange(12.0).reshape(3, 4)
        >>> sampled_summed_area_table(attention, np.array([0, 2, 3]), np.array([0, 1, 4]))
        array([[ 0.,  0.,  0.],
               [ 0.,  4., 28.],
               [ 0., 12., 66.]])
    """
    column_blocks = np.add.reduceat(attention_map, cols[:-1], axis=1)
    blocks = np.add.reduceat(column_blocks, rows[:-1], axis=0)
    table = np.zeros((len(rows), len(cols)), dtype=np.float64)
    table[1:, 1:] = blocks.cumsum(axis=0).cumsum(axis=1)
    return table


def proposal_importance(attention_map: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Human importance ``s = E+ / (E+ + E-)`` of every box under an attention map.

    See the module docstring for the box convention (rounding, clipping) and the degenerate
    cases (empty box: ``E+ = 0``; whole-map box: ``E- = 0``; ``E+ + E- = 0``: ``s = 0``).

    The sums inside the boxes come from the summed-area table of the map, evaluated only at
    the rows and columns where box edges lie (:func:`sampled_summed_area_table`): one pass
    over the map, then four look-ups per box, vectorized over the boxes (timing: ``make
    bench``).

    Args:
        attention_map: Array of shape [H, W], finite and non-negative (any numeric dtype;
            accumulated in float64).
        boxes: Array of shape [N, 4] as x1, y1, x2, y2 in the map's pixel coordinates
            (x1, y1 inclusive, x2, y2 exclusive); N may be 0.

    Returns:
        Float64 array of shape [N] with values in [0, 1].

    Raises:
        ValueError: If the map is not a non-empty 2-D finite non-negative array, or the boxes
            are not a finite [N, 4] array.

    Example:
        A 4x4 map with a 2x2 block of ones in rows 1-2, columns 1-2:

        >>> attention = np.zeros((4, 4))
        >>> attention[1:3, 1:3] = 1.0
        >>> boxes = np.array(
        ...     [
        ...         [1, 1, 3, 3],  # exactly the block: E+ = 1, E- = 0
        ...         [1, 1, 2, 3],  # left half of it: E+ = 1, E- = 2 / 14
        ...         [0, 0, 4, 4],  # the whole map: E- = 0
        ...         [5, 5, 9, 9],  # outside the map, empty after clipping: E+ = 0
        ...     ]
        ... )
        >>> proposal_importance(attention, boxes).round(4)
        array([1.   , 0.875, 1.   , 0.   ])
    """
    attention_map = _check_attention_map(attention_map)
    boxes = _check_boxes(boxes)
    height, width = attention_map.shape
    pixel_boxes = _pixel_boxes(boxes, height, width)
    rows = _edges(pixel_boxes[:, 1::2], height)
    cols = _edges(pixel_boxes[:, 0::2], width)
    table = sampled_summed_area_table(attention_map, rows, cols)

    x1, x2 = np.searchsorted(cols, pixel_boxes[:, 0::2]).T
    y1, y2 = np.searchsorted(rows, pixel_boxes[:, 1::2]).T
    inside = table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]
    outside = table[-1, -1] - inside
    # Cancellation in the table can leave tiny negative sums; the true sums are >= 0.
    inside = np.maximum(inside, 0.0)
    outside = np.maximum(outside, 0.0)

    widths = pixel_boxes[:, 2] - pixel_boxes[:, 0]
    heights = pixel_boxes[:, 3] - pixel_boxes[:, 1]
    area = (widths * heights).astype(np.float64)
    e_plus = _safe_divide(inside, area)
    e_minus = _safe_divide(outside, height * width - area)
    return _safe_divide(e_plus, e_plus + e_minus)


def average_attention_maps(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Pixel-wise mean of several attention maps of one question (e.g. the 3 VQA-HAT val maps).

    The maps must already share one resolution (resize them to the image first).

    Args:
        maps: Non-empty sequence of arrays, each of shape [H, W].

    Returns:
        Float64 array of shape [H, W].

    Raises:
        ValueError: If ``maps`` is empty, a map is not 2-D, or the shapes differ.

    Example:
        >>> average_attention_maps([np.array([[0, 2]]), np.array([[4, 4]])])
        array([[2., 3.]])
    """
    if len(maps) == 0:
        raise ValueError("maps must contain at least one attention map")
    arrays = [np.asarray(m) for m in maps]
    shapes = {a.shape for a in arrays}
    if any(a.ndim != 2 for a in arrays):
        raise ValueError(f"every map must have shape [H, W], got shapes {sorted(shapes)}")
    if len(shapes) != 1:
        raise ValueError(f"maps must share one shape, got shapes {sorted(shapes)}")
    total = arrays[0].astype(np.float64)  # accumulate in place: no stacked copy
    for array in arrays[1:]:
        total += array
    total /= len(arrays)
    return total
