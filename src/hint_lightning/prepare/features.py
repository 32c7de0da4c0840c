"""Bottom-up feature TSVs -> one ragged HDF5 feature store (:mod:`hint_lightning.stores.features`).

Input: ``trainval_resnet101_faster_rcnn_genome_36.tsv`` (or the adaptive 10-100-box TSVs) in
the format of :mod:`hint_lightning.prepare.bottom_up_tsv`, about 25 GB for 123k images.
:func:`convert_tsv_to_hdf5` streams them in one pass with bounded memory into a
:class:`~hint_lightning.stores.feature_writer.FeatureStoreWriter`, written to a temporary file
in the output folder and renamed onto ``out_path`` only when complete. Every row is checked; a
bad one stops the conversion with a ``ValueError`` that names the file, the 1-based line number
and the image id. ``float16=True`` halves the store; a feature outside the float16 range is an
error rather than a silent ``inf``. How the conversion runs and what it costs
(``python -m benchmarks.bench_feature_store``): ``docs/data_layers.md``.
"""

from __future__ import annotations

import functools
import json
import time
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

from hint_lightning.prepare.bottom_up_tsv import (
    BottomUpRowError,
    iter_tsv_lines,
    parse_bottom_up_row,
)
from hint_lightning.stores.feature_writer import FeatureStoreWriter
from hint_lightning.stores.versions import FEATURE_STORE_VERSION
from hint_lightning.utils.io import atomic_path

__all__ = [
    "BUFFER_BYTES",
    "FLOAT16_LIMIT",
    "convert_tsv_to_hdf5",
    "describe_sources",
    "feature_store_is_current",
]

#: Bytes of the in-memory block of feature rows written at once.
BUFFER_BYTES = 64 * 2**20

#: Largest magnitude that float16 represents without overflowing to inf (after rounding).
FLOAT16_LIMIT = 65520.0


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


def _convert_file(
    path: Path,
    writer: FeatureStoreWriter,
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

    Rows keep their TSV order (files in the given order). Also tolerated: blank lines and a
    header line.

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
        >>> from hint_lightning.prepare.bottom_up_tsv import write_bottom_up_tsv
        >>> from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images
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
        writer = FeatureStoreWriter(handle, feature_dim, float16, buffer_rows)
        with _byte_progress(total_bytes, progress) as (bar, task):
            advance = functools.partial(bar.advance, task)
            for file_index, path in enumerate(paths):
                _convert_file(path, writer, seen, file_index, paths, limits, advance)
        if not writer.image_ids:
            raise ValueError(f"no images in {[str(p) for p in paths]}")
        largest = int(max(writer.num_boxes))
        writer.finish({"sources": json.dumps(sources)})
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
        int(attrs.get("format_version", -1)) == FEATURE_STORE_VERSION
        and bool(attrs.get("float16", False)) == bool(float16)
        and recorded == expected
    )
