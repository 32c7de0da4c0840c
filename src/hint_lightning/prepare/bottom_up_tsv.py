"""The bottom-up feature TSV format: one image per line, decoded, checked and encoded.

The distributed files (``trainval_resnet101_faster_rcnn_genome_36.tsv`` and the adaptive
10-100-box files) were written by ``csv.DictWriter(..., delimiter="\\t")`` of the
bottom-up-attention repository: no header, one image per line, CRLF line ends (the ``csv``
default), and six fields::

    image_id  image_w  image_h  num_boxes  boxes  features

``boxes`` is the base64 (with ``=`` padding) of the little-endian float32 array ``[n, 4]``
(x1, y1, x2, y2 in pixels) and ``features`` the base64 of the float32 array ``[n, D]``.
:func:`parse_bottom_up_row` reads a line (tolerating CRLF, a missing ``=`` padding and base64
written as a Python ``b'...'`` literal) and rejects a bad one naming the image;
:func:`encode_bottom_up_row` writes one, exactly in the distributed format.

Example:
    >>> import tempfile, pathlib
    >>> image = (7, 640, 480, np.zeros((2, 4), np.float32), np.ones((2, 3), np.float32))
    >>> path = write_bottom_up_tsv(pathlib.Path(tempfile.mkdtemp()) / "f.tsv", [image])
    >>> fields = path.read_bytes().split(b"\\r\\n")[0].split(b"\\t")
    >>> len(fields), fields[0], fields[3]
    (6, b'7', b'2')
"""

from __future__ import annotations

import base64
import binascii
import functools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TSV_FIELDS",
    "BottomUpImage",
    "BottomUpRowError",
    "encode_bottom_up_row",
    "iter_tsv_lines",
    "parse_bottom_up_row",
    "write_bottom_up_tsv",
]

#: One image of a bottom-up TSV: ``(image_id, image_w, image_h, boxes [n, 4], features [n, D])``.
BottomUpImage = tuple[int, int, int, np.ndarray, np.ndarray]

#: The field order of the distributed TSVs.
TSV_FIELDS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")

_NUM_FIELDS = 6
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

if sys.version_info >= (3, 11):
    _a2b_base64 = functools.partial(binascii.a2b_base64, strict_mode=True)
else:  # pragma: no cover - Python 3.10 skips invalid characters; sizes are still checked
    _a2b_base64 = binascii.a2b_base64


class BottomUpRowError(ValueError):
    """A TSV row that cannot be converted.

    Args:
        image_id: The image id as written in the row (text, possibly malformed).
        reason: What is wrong.
    """

    def __init__(self, image_id: str, reason: str) -> None:
        super().__init__(f"image id {image_id}: {reason}")
        self.image_id = image_id
        self.reason = reason


# ---------------------------------------------------------------------- parsing one row


def _field_text(field: bytes, limit: int = 40) -> str:
    """A short printable form of a raw field, for error messages."""
    text = field.strip().decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _shown_id(field: bytes) -> str:
    """The image id for messages: the integer, or the quoted text when it is not one."""
    try:
        return str(int(field))
    except ValueError:
        return _field_text(field)


def _parse_int(field: bytes, name: str, image_id: str) -> int:
    """The integer in ``field``; ``BottomUpRowError`` naming the field otherwise."""
    try:
        return int(field)
    except ValueError:
        raise BottomUpRowError(
            image_id, f"malformed field {name!r}: {_field_text(field)} is not an integer"
        ) from None


def _b64decode(field: bytes, name: str, image_id: str) -> bytes:
    """Decode one base64 field (padding optional; a ``b'...'`` literal is unwrapped).

    Raises:
        BottomUpRowError: "truncated row" when the text stops inside a 4-character group,
            "malformed field" when it is not base64.
    """
    data = field.strip()
    if data[:2] in (b"b'", b'b"') and data[-1:] == data[1:2]:
        data = data[2:-1]
    missing = -len(data) % 4
    if missing == 3:
        if not data.rstrip(b"=").translate(None, _BASE64_ALPHABET):
            raise BottomUpRowError(
                image_id,
                f"truncated row: field {name!r} ends inside a base64 group "
                f"({len(data)} characters)",
            )
    else:
        data += b"=" * missing
    try:
        return _a2b_base64(data)
    except binascii.Error as exc:
        raise BottomUpRowError(
            image_id, f"malformed field {name!r}: invalid base64 ({exc})"
        ) from None


def _check_finite(values: np.ndarray, name: str, image_id: str) -> tuple[float, float]:
    """``(min, max)`` of ``values``; ``BottomUpRowError`` when any is NaN or infinite.

    Two SIMD reductions do the check: NaN propagates through both, inf shows in one.
    """
    if values.size == 0:
        return 0.0, 0.0
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        nan = int(np.isnan(values).sum())
        inf = int(np.isinf(values).sum())
        raise BottomUpRowError(image_id, f"non-finite values in {name!r}: {nan} NaN, {inf} inf")
    return low, high


def _decode_boxes(field: bytes, num_boxes: int, image_id: str) -> np.ndarray:
    """``[n, 4]`` float32 boxes from their base64 field."""
    raw = _b64decode(field, "boxes", image_id)
    expected = num_boxes * 4 * 4
    if len(raw) != expected:
        raise BottomUpRowError(
            image_id,
            f"truncated row: field 'boxes' decodes to {len(raw)} bytes, expected "
            f"num_boxes x 4 float32 = {num_boxes} x 4 x 4 = {expected} bytes",
        )
    boxes = np.frombuffer(raw, dtype="<f4").reshape(num_boxes, 4)
    _check_finite(boxes, "boxes", image_id)
    return boxes


def _decode_features(field: bytes, num_boxes: int, feature_dim: int, image_id: str) -> np.ndarray:
    """``[n, D]`` float32 features from their base64 field."""
    raw = _b64decode(field, "features", image_id)
    expected = num_boxes * feature_dim * 4
    if len(raw) == expected:
        features = np.frombuffer(raw, dtype="<f4").reshape(num_boxes, feature_dim)
        _check_finite(features, "features", image_id)
        return features
    row_bytes = num_boxes * 4
    if row_bytes and raw and len(raw) % row_bytes == 0:
        looks_like = len(raw) // row_bytes
        raise BottomUpRowError(
            image_id,
            f"wrong feature size: {len(raw) // 4} floats = {num_boxes} x {looks_like}, expected "
            f"num_boxes x feature_dim = {num_boxes} x {feature_dim}; the file looks like "
            f"feature_dim={looks_like}",
        )
    raise BottomUpRowError(
        image_id,
        f"truncated row: field 'features' decodes to {len(raw)} bytes, expected "
        f"num_boxes x feature_dim float32 = {num_boxes} x {feature_dim} x 4 = {expected} bytes",
    )


def _parse_header(fields: list[bytes], min_boxes: int, max_boxes: int) -> tuple[int, ...]:
    """``(image_id, image_w, image_h, num_boxes)`` from the first four fields, checked."""
    raw_id = _shown_id(fields[0])
    if len(fields) < _NUM_FIELDS:
        raise BottomUpRowError(
            raw_id, f"truncated row: {len(fields)} tab-separated fields, expected {_NUM_FIELDS}"
        )
    if len(fields) > _NUM_FIELDS:
        raise BottomUpRowError(
            raw_id, f"malformed row: {len(fields)} tab-separated fields, expected {_NUM_FIELDS}"
        )
    image_id = _parse_int(fields[0], "image_id", raw_id)
    shown = str(image_id)
    width = _parse_int(fields[1], "image_w", shown)
    height = _parse_int(fields[2], "image_h", shown)
    num_boxes = _parse_int(fields[3], "num_boxes", shown)
    if width <= 0 or height <= 0:
        raise BottomUpRowError(shown, f"malformed field: image size {width} x {height}")
    if not min_boxes <= num_boxes <= max_boxes:
        raise BottomUpRowError(
            shown,
            f"num_boxes={num_boxes} outside [min_boxes, max_boxes] = [{min_boxes}, {max_boxes}]",
        )
    return image_id, width, height, num_boxes


def parse_bottom_up_row(
    line: bytes, *, feature_dim: int = 2048, min_boxes: int = 1, max_boxes: int = 100
) -> BottomUpImage:
    """Decode and check one TSV line.

    Args:
        line: The raw line (its CRLF or LF end may be present).
        feature_dim: D.
        min_boxes: Fewest proposals an image may have.
        max_boxes: Most proposals an image may have.

    Returns:
        ``(image_id, image_w, image_h, boxes [n, 4] float32, features [n, D] float32)``; the
        arrays are read-only views of the decoded bytes.

    Raises:
        BottomUpRowError: (a ``ValueError``) for a truncated row (fewer than 6 fields, base64
            that stops mid-group or decodes to too few bytes), a malformed field (non-integer
            id or size, invalid base64), a wrong feature size (naming the D it looks like),
            NaN or inf in boxes or features, or ``num_boxes`` outside the limits.

    Example:
        >>> from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images
        >>> image = random_bottom_up_images(1, feature_dim=4, boxes=2)[0]
        >>> image_id, width, height, boxes, features = parse_bottom_up_row(
        ...     encode_bottom_up_row(image), feature_dim=4)
        >>> image_id, boxes.shape, features.shape, bool((features == image[4]).all())
        (1, (2, 4), (2, 4), True)
        >>> parse_bottom_up_row(encode_bottom_up_row(image), feature_dim=8)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hint_lightning...BottomUpRowError: image id 1: wrong feature size: ... feature_dim=4
    """
    fields = line.split(b"\t")
    image_id, width, height, num_boxes = _parse_header(fields, min_boxes, max_boxes)
    boxes = _decode_boxes(fields[4], num_boxes, str(image_id))
    features = _decode_features(fields[5], num_boxes, feature_dim, str(image_id))
    return image_id, width, height, boxes, features


# ---------------------------------------------------------------------- streaming


def _is_header(line: bytes) -> bool:
    """Whether ``line`` is a header (``image_id<TAB>...``) rather than data."""
    return line.startswith(b"image_id\t")


def iter_tsv_lines(handle: Any) -> Iterator[tuple[int, bytes]]:
    """``(1-based line number, line)`` of every data line of an open binary TSV.

    Blank lines and a header line are skipped.
    """
    for line_no, line in enumerate(handle, start=1):
        if line.strip() and not (line_no == 1 and _is_header(line)):
            yield line_no, line


# ---------------------------------------------------------------------- writing


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
