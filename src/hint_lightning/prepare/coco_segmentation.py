"""COCO instance segmentations: validation and rasterization, exactly as ``COCO.annToMask``.

Polygons go through pycocotools' ``frPyObjects`` (all rings of an instance), uncompressed RLE
(``{"counts": [int], "size": [h, w]}``, the crowd annotations of the instances files) through
``frPyObjects``, compressed RLE (``counts`` a string) as is.

Validation (:func:`segmentation_problem`; errors name the file, the annotation id and the image
id): a polygon list must be non-empty and each ring a list of finite numbers of even length at
least 4; a ring of exactly 4 numbers (two points, no area) is dropped (pycocotools would read
it as a box) and counted; an RLE's ``size`` must be the image's ``[height, width]``, its counts
non-negative integers that sum to ``height * width`` (checked before pycocotools decodes them:
its decoder does not bound-check).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["category_masks", "rle_string_counts", "segmentation_problem", "segmentation_rles"]

_PYCOCOTOOLS_NUMPY2: Final = "__array__ implementation doesn't accept a copy keyword"
"""The warning pycocotools' decoder gives under numpy 2 (harmless)."""


def rle_string_counts(counts: str | bytes) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``).

    Each count is a little-endian sequence of 6-bit characters (``chr(48 + c)``; bit 5 means
    "more follows", bit 4 of the last one is the sign), and from the third count on it is a
    difference to the count two places before.

    Args:
        counts: The ``counts`` string.

    Returns:
        The counts (may be negative for a malformed string: callers check).

    Raises:
        ValueError: For a character outside ``0``..``o`` or a truncated last count.

    Example:
        >>> from pycocotools import mask as mask_utils
        >>> grid = np.zeros((4, 5), dtype=np.uint8, order="F")
        >>> grid[1:3, 2:4] = 1
        >>> rle_string_counts(mask_utils.encode(grid)["counts"])
        [9, 2, 2, 2, 5]
    """
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    values: list[int] = []
    position = 0
    while position < len(data):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(data):
                raise ValueError("truncated RLE string")
            code = data[position] - 48
            if not 0 <= code < 64:
                raise ValueError(f"invalid RLE character {chr(data[position])!r}")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value -= 1 << shift
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def _is_number(value: object) -> bool:
    """A finite JSON number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _polygon_problem(rings: list[Any]) -> str | None:
    """What is wrong with a polygon list (None when it can be rasterized)."""
    if not rings:
        return "an empty polygon list"
    for index, ring in enumerate(rings):
        if not isinstance(ring, list) or not all(_is_number(v) for v in ring):
            return f"polygon {index} is not a list of finite numbers"
        if len(ring) % 2 or len(ring) < 4:
            return (
                f"polygon {index} has {len(ring)} coordinates (expected an even number, at least 6)"
            )
    return None


def _rle_problem(rle: Mapping[str, Any], height: int, width: int) -> str | None:
    """What is wrong with an RLE (None when it can be decoded)."""
    size, counts = rle.get("size"), rle.get("counts")
    if not isinstance(size, list) or len(size) != 2 or [*size] != [height, width]:
        return f"RLE size {size!r} is not the image's [height, width] [{height}, {width}]"
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
            return "RLE counts are not integers"
        values = counts
    elif isinstance(counts, str | bytes):
        try:
            values = rle_string_counts(counts)
        except ValueError as error:
            return f"compressed RLE counts cannot be read ({error})"
    else:
        return "RLE counts are neither a list nor a string"
    if any(c < 0 for c in values):
        return "RLE counts are negative"
    if sum(values) != height * width:
        return f"RLE counts sum to {sum(values)}, not height * width = {height * width}"
    return None


def segmentation_problem(segmentation: object, height: int, width: int) -> str | None:
    """What is wrong with an annotation's ``segmentation`` (None when it is fine).

    Args:
        segmentation: Polygons (list of lists of numbers) or an RLE dict.
        height: The image's height in pixels.
        width: The image's width in pixels.

    Returns:
        A description of the problem, or None.

    Example:
        >>> segmentation_problem([[0, 0, 4, 0, 4, 4]], 8, 8) is None
        True
        >>> segmentation_problem([[0, 0, 4, 0, 4]], 8, 8)
        'polygon 0 has 5 coordinates (expected an even number, at least 6)'
    """
    if isinstance(segmentation, list):
        return _polygon_problem(segmentation)
    if isinstance(segmentation, dict):
        return _rle_problem(segmentation, height, width)
    return f"segmentation of type {type(segmentation).__name__} (expected polygons or an RLE)"


def segmentation_rles(
    segmentation: Any, height: int, width: int
) -> tuple[list[dict[str, Any]], int]:
    """An annotation's segmentation as compressed RLEs (as ``COCO.annToRLE``).

    Args:
        segmentation: A valid segmentation (:func:`segmentation_problem` returned None).
        height: Image height.
        width: Image width.

    Returns:
        ``(rles, dropped)``: the RLEs to merge (one per polygon ring, or one) and the number of
        two-point rings dropped.
    """
    if isinstance(segmentation, list):
        rings = [[float(v) for v in ring] for ring in segmentation if len(ring) >= 6]
        dropped = len(segmentation) - len(rings)
        return (mask_utils.frPyObjects(rings, height, width) if rings else []), dropped
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return [mask_utils.frPyObjects(segmentation, height, width)], 0
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    return [{"size": [height, width], "counts": data}], 0


def category_masks(
    annotations: Sequence[Mapping[str, Any]], height: int, width: int
) -> tuple[dict[int, np.ndarray], int]:
    """The union mask of each category's instances in one image.

    Args:
        annotations: The image's (validated) annotations.
        height: Image height H.
        width: Image width W.

    Returns:
        ``({category_id: [H, W] uint8 0/1}, dropped rings)``, categories sorted.
    """
    rles: dict[int, list[dict[str, Any]]] = {}
    dropped = 0
    for annotation in annotations:
        parts, lost = segmentation_rles(annotation["segmentation"], height, width)
        rles.setdefault(int(annotation["category_id"]), []).extend(parts)
        dropped += lost
    masks = {}
    for category_id in sorted(rles):
        parts = rles[category_id]
        if parts:
            masks[category_id] = _decode(mask_utils.merge(parts, intersect=False))
        else:
            masks[category_id] = np.zeros((height, width), dtype=np.uint8)
    return masks, dropped


def _decode(rle: Mapping[str, Any]) -> np.ndarray:
    """``mask_utils.decode`` without its numpy-2 ``__array__`` DeprecationWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _PYCOCOTOOLS_NUMPY2, DeprecationWarning)
        return mask_utils.decode(rle)
