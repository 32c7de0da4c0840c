"""Bottom-up feature TSVs in exactly the distributed format, for tests, fixtures and benchmarks.

The real files (``trainval_resnet101_faster_rcnn_genome_36.tsv`` and the adaptive 10-100-box
files) were written by ``csv.DictWriter(..., delimiter="\\t")`` of the bottom-up-attention
repository: no header, one image per line, CRLF line ends (the ``csv`` default), and six fields::

    image_id  image_w  image_h  num_boxes  boxes  features

``boxes`` is the base64 (with ``=`` padding) of the little-endian float32 array
``[num_boxes, 4]`` (x1, y1, x2, y2 in pixels) and ``features`` the base64 of the float32 array
``[num_boxes, 2048]``.

Example:
    >>> import tempfile, pathlib
    >>> images = random_bottom_up_images(2, feature_dim=4, boxes=3)
    >>> path = write_bottom_up_tsv(pathlib.Path(tempfile.mkdtemp()) / "f.tsv", images)
    >>> fields = path.read_bytes().split(b"\\r\\n")[0].split(b"\\t")
    >>> len(fields), fields[0], fields[3]
    (6, b'1', b'3')
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: One image of a bottom-up TSV: ``(image_id, image_w, image_h, boxes [n, 4], features [n, D])``.
BottomUpImage = tuple[int, int, int, np.ndarray, np.ndarray]

#: The field order of the distributed TSVs.
TSV_FIELDS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")


def _b64_float32(array: np.ndarray) -> bytes:
    """Base64 (padded) of ``array`` as little-endian float32 bytes."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes())


def encode_bottom_up_row(image: BottomUpImage) -> bytes:
    """One TSV line (with its CRLF end) for one image.

    Args:
        image: ``(image_id, image_w, image_h, boxes [n, 4], features [n, D])``.

    Returns:
        The encoded line.

    Raises:
        ValueError: When ``boxes`` is not ``[n, 4]`` or ``features`` has not ``n`` rows.
    """
    image_id, width, height, boxes, features = image
    boxes = np.asarray(boxes)
    features = np.asarray(features)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or features.ndim != 2:
        raise ValueError(f"image {image_id}: boxes must be [n, 4] and features [n, D]")
    if features.shape[0] != boxes.shape[0]:
        raise ValueError(f"image {image_id}: {boxes.shape[0]} boxes but {features.shape[0]} rows")
    head = f"{int(image_id)}\t{int(width)}\t{int(height)}\t{boxes.shape[0]}\t".encode()
    return head + _b64_float32(boxes) + b"\t" + _b64_float32(features) + b"\r\n"


def write_bottom_up_tsv(path: str | Path, images: Iterable[BottomUpImage]) -> Path:
    """Write images as a bottom-up feature TSV (streamed: ``images`` may be a generator).

    Args:
        path: Output file (its folder is created).
        images: ``(image_id, image_w, image_h, boxes [n, 4], features [n, D])`` per image.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as handle:
        for image in images:
            handle.write(encode_bottom_up_row(image))
    return out


def _box_counts(
    rng: np.random.Generator, num_images: int, boxes: int | tuple[int, int]
) -> list[int]:
    """Number of boxes per image: fixed, or uniform in ``[low, high]`` (inclusive)."""
    if isinstance(boxes, int):
        return [boxes] * num_images
    low, high = boxes
    return rng.integers(low, high + 1, size=num_images).tolist()


def random_boxes(rng: np.random.Generator, num_boxes: int, width: int, height: int) -> np.ndarray:
    """Plausible proposals inside a ``width`` x ``height`` image.

    Args:
        rng: Random generator.
        num_boxes: n.
        width: Image width in pixels (at least 2).
        height: Image height in pixels (at least 2).

    Returns:
        ``[n, 4]`` float32 x1, y1, x2, y2 with ``0 <= x1 < x2 <= width``, ``0 <= y1 < y2 <= height``
        and every side at least one pixel.
    """
    size = np.array([width, height, width, height], dtype=np.float64)
    corner = rng.random((num_boxes, 2)) * (size[:2] - 1.0)
    extent = 1.0 + rng.random((num_boxes, 2)) * (size[:2] - 1.0 - corner)
    return np.concatenate([corner, corner + extent], axis=1).clip(0.0, size).astype(np.float32)


def random_bottom_up_images(
    num_images: int,
    *,
    feature_dim: int = 2048,
    boxes: int | tuple[int, int] = 36,
    seed: int = 0,
    first_image_id: int = 1,
) -> list[BottomUpImage]:
    """Random images with plausible boxes and non-negative (post-ReLU-like) features.

    Args:
        num_images: I.
        feature_dim: D.
        boxes: Boxes per image: a fixed count (36: the ``trainval_36`` files) or an inclusive
            range ``(low, high)`` (``(10, 100)``: the adaptive files).
        seed: Seed of ``numpy.random.default_rng``.
        first_image_id: Image ids are ``first_image_id, first_image_id + 1, ...``.

    Returns:
        ``(image_id, image_w, image_h, boxes [n, 4] float32, features [n, D] float32)`` per image.

    Example:
        >>> images = random_bottom_up_images(3, feature_dim=8, boxes=(2, 5), seed=1)
        >>> [(i, b.shape[1], f.shape[1], bool((f >= 0).all())) for i, _, _, b, f in images]
        [(1, 4, 8, True), (2, 4, 8, True), (3, 4, 8, True)]
    """
    rng = np.random.default_rng(seed)
    counts = _box_counts(rng, num_images, boxes)
    images: list[BottomUpImage] = []
    for index, count in enumerate(counts):
        width, height = (int(v) for v in rng.integers(160, 641, size=2))
        image_boxes = random_boxes(rng, count, width, height)
        features = rng.gamma(0.5, 1.0, size=(count, feature_dim)).astype(np.float32)
        images.append((first_image_id + index, width, height, image_boxes, features))
    return images
