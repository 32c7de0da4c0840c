"""Bottom-up feature TSVs -> one ragged HDF5 store (:mod:`hint_lightning.data.feature_store`).

Input: ``trainval_resnet101_faster_rcnn_genome_36.tsv`` (or the adaptive 10-100-box TSVs),
six tab-separated fields per line, no header: ``image_id, image_w, image_h, num_boxes, boxes,
features``; ``boxes`` and ``features`` are base64 of little-endian float32 arrays ``[n, 4]``
(x1, y1, x2, y2 in pixels) and ``[n, D]``. The file is about 25 GB for 123k images.

How the conversion runs (:func:`convert_tsv_to_hdf5`):

* **One streaming pass.** A second, counting pass would read the 25 GB twice (counting needs
  every byte too: the lines are ~400 KB long), so the rows go straight into resizable HDF5
  datasets ``features`` and ``boxes``, chunked by 64 rows (``[64, D]``: one image of 36 rows
  spans one or two chunks; the reader bypasses the chunk cache and reads only its rows).
  Files are read in binary mode through a 4 MB buffer (no text decoding, no ``csv`` module):
  base64 decoding (``binascii``, strict on Python >= 3.11) dominates the time: ~390 MB/s
  (~1,000 images/s of 36 x 2048) on one core, so trainval_36 takes about a minute plus disk
  time (``python -m benchmarks.bench_feature_store``).
* **Bounded memory.** Rows are copied into a preallocated 64 MB block that is written out when
  full; the per-image index (ids, sizes, box counts: 20 bytes per image) and the
  id -> (file, line) map that detects duplicates are the only things that grow (~20 MB for
  123k images). Peak RSS does not depend on the size of the TSVs.
* **Atomic.** The store is written to a temporary file in the output folder and renamed onto
  ``out_path`` (``os.replace``) only when complete; any error removes the temporary file.
* **Validation.** Every row is checked; a bad one stops the conversion with a ``ValueError``
  that names the file, the 1-based line number and the image id (see
  :func:`parse_bottom_up_row`). Also tolerated: CRLF line ends (the real files have them),
  blank lines, a header line, base64 without its ``=`` padding and base64 written as a
  Python ``b'...'`` literal (some Python 3 ports of the extraction script).
* **float16** (``float16=True``) halves the store (~9 GB instead of ~18 GB for trainval_36);
  a feature outside the float16 range is an error rather than a silent ``inf``. Rounding is
  numpy's (round to nearest even), done by :func:`~hint_lightning.data.feature_store.cast_rows`.
"""

from __future__ import annotations

import binascii
import functools
import json
import sys
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from hint_lightning.data.feature_store import FORMAT_VERSION, cast_rows
from hint_lightning.testing.tsv import BottomUpImage
from hint_lightning.utils.io import atomic_path

#: Rows per HDF5 chunk of ``features`` and ``boxes``.
CHUNK_ROWS = 64

#: Bytes of the in-memory block of feature rows written at once.
BUFFER_BYTES = 64 * 2**20

#: Largest magnitude that float16 represents without overflowing to inf (after rounding).
FLOAT16_LIMIT = 65520.0

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
        >>> from hint_lightning.testing.tsv import encode_bottom_up_row, random_bottom_up_images
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


def _check_float16_range(features: np.ndarray, image_id: int) -> None:
    """``BottomUpRowError`` when a feature would overflow to inf as float16."""
    if not features.size:
        return
    largest = max(-float(features.min()), float(features.max()))
    if largest >= FLOAT16_LIMIT:
        raise BottomUpRowError(
            str(image_id),
            f"features up to magnitude {largest:.6g} exceed the float16 range; "
            "convert with float16=False",
        )


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


def describe_sources(tsv_paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Name, size and mtime of each TSV: what the ``sources`` attribute records.

    Raises:
        FileNotFoundError: When a TSV does not exist.
    """
    records = []
    for path in map(Path, tsv_paths):
        if not path.is_file():
            raise FileNotFoundError(f"bottom-up feature TSV not found: {path}")
        stat = path.stat()
        records.append({"name": path.name, "size": stat.st_size, "mtime": stat.st_mtime})
    return records


def _sources_key(records: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
    """Order-independent comparable form of source records."""
    return sorted((str(r["name"]), int(r["size"]), float(r["mtime"])) for r in records)


@contextmanager
def _byte_progress(total: int, enabled: bool) -> Iterator[tuple[Progress, Any]]:
    """A rich progress bar over ``total`` bytes."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )
    with progress:
        yield progress, progress.add_task("bottom-up TSV -> HDF5", total=total)


class _StoreWriter:
    """Appends images to the resizable row datasets of an open HDF5 file, in 64 MB blocks.

    Args:
        handle: The (new, writable) HDF5 file.
        feature_dim: D.
        float16: Store features as float16.
        buffer_rows: Rows per written block (at least the largest image).
    """

    def __init__(
        self, handle: h5py.File, feature_dim: int, float16: bool, buffer_rows: int
    ) -> None:
        dtype = np.float16 if float16 else np.float32
        chunk = min(CHUNK_ROWS, buffer_rows)
        self._handle = handle
        self._features = handle.create_dataset(
            "features",
            (0, feature_dim),
            dtype,
            maxshape=(None, feature_dim),
            chunks=(chunk, feature_dim),
        )
        self._boxes = handle.create_dataset(
            "boxes", (0, 4), np.float32, maxshape=(None, 4), chunks=(chunk * 64, 4)
        )
        self._feature_block = np.empty((buffer_rows, feature_dim), dtype)
        self._box_block = np.empty((buffer_rows, 4), np.float32)
        self._filled = 0
        self.rows = 0
        self.image_ids = array("q")
        self.widths = array("i")
        self.heights = array("i")
        self.num_boxes = array("i")

    def add(self, image: BottomUpImage) -> None:
        """Append one image (its rows go to the block, written when full)."""
        image_id, width, height, boxes, features = image
        count = len(boxes)
        if self._filled + count > len(self._feature_block):
            self.flush()
        rows = slice(self._filled, self._filled + count)
        if self._feature_block.dtype == np.float16:
            # Rounds like numpy, ~10x faster; torch wants a writable source (decoded bytes aren't).
            cast_rows(self._feature_block[rows], features.copy())
        else:
            self._feature_block[rows] = features
        self._box_block[rows] = boxes
        self._filled += count
        self.image_ids.append(image_id)
        self.widths.append(width)
        self.heights.append(height)
        self.num_boxes.append(count)

    def flush(self) -> None:
        """Write the filled part of the block."""
        if not self._filled:
            return
        start, stop = self.rows, self.rows + self._filled
        for dataset, block in (
            (self._features, self._feature_block),
            (self._boxes, self._box_block),
        ):
            dataset.resize(stop, axis=0)
            dataset[start:stop] = block[: self._filled]
        self.rows, self._filled = stop, 0

    def finish(self, attrs: dict[str, Any]) -> None:
        """Flush, write the per-image index and the root attributes."""
        self.flush()
        num_boxes = np.frombuffer(self.num_boxes, dtype=np.int32)
        offsets = np.zeros(len(num_boxes) + 1, dtype=np.int64)
        np.cumsum(num_boxes, out=offsets[1:])
        index = {
            "image_ids": np.frombuffer(self.image_ids, dtype=np.int64),
            "image_w": np.frombuffer(self.widths, dtype=np.int32),
            "image_h": np.frombuffer(self.heights, dtype=np.int32),
            "num_boxes": num_boxes,
            "offsets": offsets,
        }
        for name, values in index.items():
            self._handle.create_dataset(name, data=values)
        self._handle.attrs.update(attrs)


def _convert_file(
    path: Path,
    writer: _StoreWriter,
    seen: dict[int, tuple[int, int]],
    file_index: int,
    paths: Sequence[Path],
    limits: dict[str, Any],
    advance: Any,
) -> None:
    """Stream one TSV into ``writer``; ``ValueError`` naming file, line and image id on bad rows."""
    with path.open("rb", buffering=4 * 2**20) as handle:
        for line_no, line in iter_tsv_lines(handle):
            try:
                image = parse_bottom_up_row(line, **limits["row"])
                image_id = image[0]
                if image_id in seen:
                    first_file, first_line = seen[image_id]
                    raise BottomUpRowError(
                        str(image_id),
                        f"duplicate image id (first seen in {paths[first_file]}, "
                        f"line {first_line})",
                    )
                if limits["float16"]:
                    _check_float16_range(image[4], image_id)
            except BottomUpRowError as exc:
                raise ValueError(f"{path}, line {line_no}, {exc}") from None
            seen[image_id] = (file_index, line_no)
            writer.add(image)
            advance(len(line))


def _check_arguments(feature_dim: int, min_boxes: int, max_boxes: int, paths: list[Path]) -> None:
    """``ValueError`` for impossible conversion settings."""
    if not paths:
        raise ValueError("convert_tsv_to_hdf5 needs at least one TSV path")
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be positive, got {feature_dim}")
    if not 0 <= min_boxes <= max_boxes or max_boxes < 1:
        raise ValueError(
            f"need 0 <= min_boxes <= max_boxes and max_boxes >= 1, got {min_boxes}, {max_boxes}"
        )


def convert_tsv_to_hdf5(
    tsv_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    feature_dim: int = 2048,
    float16: bool = False,
    min_boxes: int = 1,
    max_boxes: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Stream bottom-up TSVs into a feature store (one pass, bounded memory, atomic).

    Rows keep their TSV order (files in the given order). See the module docstring for how.

    Args:
        tsv_paths: The TSV files (one for trainval_36; several for the adaptive variant).
        out_path: The ``.h5`` store to write (replaced when complete).
        feature_dim: D: floats per proposal.
        float16: Store features as float16 (read back as float32).
        min_boxes: Fewest proposals an image may have.
        max_boxes: Most proposals an image may have.
        progress: Show a rich progress bar (bytes read).

    Returns:
        Statistics: ``images``, ``boxes``, ``bytes`` (read), ``seconds``, ``mb_per_s``,
        ``images_per_s``, ``max_boxes`` (the largest image), ``path``.

    Raises:
        FileNotFoundError: When a TSV is missing.
        ValueError: For bad settings, no images at all, or a bad row (naming the file, the line
            number and the image id: see :func:`parse_bottom_up_row`; also duplicate image ids
            across all files and, with ``float16``, features beyond the float16 range).

    Example:
        >>> import tempfile, pathlib
        >>> from hint_lightning.testing.tsv import random_bottom_up_images, write_bottom_up_tsv
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> tsv = write_bottom_up_tsv(folder / "a.tsv", random_bottom_up_images(4, feature_dim=8))
        >>> stats = convert_tsv_to_hdf5([tsv], folder / "a.h5", feature_dim=8, progress=False)
        >>> stats["images"], stats["boxes"], stats["max_boxes"]
        (4, 144, 36)
    """
    paths = [Path(p) for p in tsv_paths]
    _check_arguments(feature_dim, min_boxes, max_boxes, paths)
    sources = describe_sources(paths)
    total_bytes = sum(int(record["size"]) for record in sources)
    itemsize = 2 if float16 else 4
    buffer_rows = max(max_boxes, BUFFER_BYTES // (feature_dim * itemsize))
    limits = {
        "row": {"feature_dim": feature_dim, "min_boxes": min_boxes, "max_boxes": max_boxes},
        "float16": float16,
    }
    seen: dict[int, tuple[int, int]] = {}
    start = time.perf_counter()
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w", rdcc_nbytes=16 * 2**20) as handle:
        writer = _StoreWriter(handle, feature_dim, float16, buffer_rows)
        with _byte_progress(total_bytes, progress) as (bar, task):
            advance = functools.partial(bar.advance, task)
            for file_index, path in enumerate(paths):
                _convert_file(path, writer, seen, file_index, paths, limits, advance)
        if not writer.image_ids:
            raise ValueError(f"no images in {[str(p) for p in paths]}")
        largest = int(max(writer.num_boxes))
        writer.finish(
            {
                "format_version": FORMAT_VERSION,
                "feature_dim": feature_dim,
                "max_boxes": largest,
                "float16": bool(float16),
                "sources": json.dumps(sources),
            }
        )
        num_images, num_rows = len(writer.image_ids), writer.rows
    seconds = time.perf_counter() - start
    return {
        "images": num_images,
        "boxes": num_rows,
        "bytes": total_bytes,
        "seconds": round(seconds, 3),
        "mb_per_s": round(total_bytes / 1e6 / seconds, 1),
        "images_per_s": round(num_images / seconds, 1),
        "max_boxes": largest,
        "path": str(out_path),
    }


def feature_store_is_current(
    out_path: str | Path, tsv_paths: Sequence[str | Path], float16: bool
) -> bool:
    """Whether ``out_path`` is a store converted from exactly these TSVs with this ``float16``.

    Compares the ``sources`` attribute (name, size and mtime of every TSV, in any order), the
    ``float16`` attribute and the format version; a missing or unreadable store, or a missing
    TSV, is not current.

    Example:
        >>> feature_store_is_current("/nonexistent/store.h5", ["/nonexistent/a.tsv"], False)
        False
    """
    out = Path(out_path)
    if not out.is_file():
        return False
    try:
        expected = _sources_key(describe_sources(tsv_paths))
        with h5py.File(out, "r") as handle:
            attrs = dict(handle.attrs)
        recorded = _sources_key(json.loads(attrs["sources"]))
    except (OSError, KeyError, ValueError, TypeError):
        return False
    return (
        int(attrs.get("format_version", -1)) == FORMAT_VERSION
        and bool(attrs.get("float16", False)) == bool(float16)
        and recorded == expected
    )
