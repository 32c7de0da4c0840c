"""Writes a feature store (:mod:`hint_lightning.stores.features`), image by image, bounded memory.

:class:`FeatureStoreWriter` appends images to resizable ``features`` and ``boxes`` datasets
through a preallocated block written out when full, keeps the per-image index (ids, sizes, box
counts: 20 bytes per image) and the hash of every image's rows, and writes the index, the
checksums and the root attributes at :meth:`FeatureStoreWriter.finish`. The caller owns the
file (the prepare step writes it to a temporary name and renames it when complete).

Example:
    >>> import tempfile, pathlib, h5py
    >>> from hint_lightning.stores.features import FeatureStore
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "f.h5"
    >>> with h5py.File(path, "w") as handle:
    ...     writer = FeatureStoreWriter(handle, feature_dim=3, float16=False, buffer_rows=8)
    ...     writer.add((5, 640, 480, np.zeros((2, 4), np.float32), np.ones((2, 3), np.float32)))
    ...     writer.finish({"sources": "[]"})
    >>> FeatureStore(path).features(5).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
"""

from __future__ import annotations

from array import array
from typing import Any

import h5py
import numpy as np

from hint_lightning.stores.checksum import ALGORITHM, GROUP, digest, write_checksums
from hint_lightning.stores.features import INDEX_DATASETS, all_finite, cast_rows
from hint_lightning.stores.versions import FEATURE_STORE_VERSION

__all__ = ["CHUNK_ROWS", "FeatureStoreWriter"]

#: Rows per HDF5 chunk of ``features`` (one image of 36 rows spans one or two chunks).
CHUNK_ROWS = 64


class FeatureStoreWriter:
    """Appends images to the resizable row datasets of an open HDF5 file, in blocks.

    Args:
        handle: The (new, writable) HDF5 file.
        feature_dim: D.
        float16: Store features as float16 (rounded like numpy, by :func:`cast_rows`).
        buffer_rows: Rows per written block (at least the largest image).

    Attributes:
        rows: Rows written so far (R).
        image_ids: The ids of the images added, in order.
        num_boxes: Their box counts.
    """

    def __init__(
        self, handle: h5py.File, feature_dim: int, float16: bool, buffer_rows: int
    ) -> None:
        dtype = np.float16 if float16 else np.float32
        chunk = min(CHUNK_ROWS, buffer_rows)
        self._handle = handle
        self._feature_dim = feature_dim
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
        self._feature_sums = array("Q")
        self._box_sums = array("Q")

    def add(self, image: tuple[int, int, int, np.ndarray, np.ndarray]) -> None:
        """Appends one image ``(image_id, image_w, image_h, boxes [n, 4], features [n, D])``."""
        image_id, width, height, boxes, features = image
        count = len(boxes)
        if self._filled + count > len(self._feature_block):
            self.flush()
        rows = slice(self._filled, self._filled + count)
        if self._feature_block.dtype == np.float16:
            # Rounds like numpy, faster; torch wants a writable source (decoded bytes aren't).
            cast_rows(self._feature_block[rows], features.copy())
        else:
            self._feature_block[rows] = features
        self._box_block[rows] = boxes
        if not (all_finite(self._feature_block[rows]) and all_finite(self._box_block[rows])):
            raise ValueError(f"image {image_id}: non-finite boxes or features (as stored)")
        self._feature_sums.append(digest(self._feature_block[rows]))
        self._box_sums.append(digest(self._box_block[rows]))
        self._filled += count
        self.image_ids.append(image_id)
        self.widths.append(width)
        self.heights.append(height)
        self.num_boxes.append(count)

    def flush(self) -> None:
        """Writes the filled part of the block."""
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
        """Flushes, then writes the per-image index, the checksums and the root attributes.

        Args:
            attrs: Extra root attributes (e.g. ``sources``); ``format_version``,
                ``feature_dim``, ``max_boxes`` and ``float16`` are set here.
        """
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
        for name in INDEX_DATASETS:
            self._handle.create_dataset(name, data=index[name])
            write_checksums(self._handle, name, index[name])
        for name, sums in (("features", self._feature_sums), ("boxes", self._box_sums)):
            table = self._handle.create_dataset(
                f"{GROUP}/{name}", data=np.frombuffer(sums, dtype=np.uint64)
            )
            table.attrs.update({"algorithm": ALGORITHM, "blocks": "offsets"})
        self._handle.attrs.update(
            {
                "format_version": FEATURE_STORE_VERSION,
                "feature_dim": self._feature_dim,
                "max_boxes": int(num_boxes.max(initial=0)),
                "float16": self._feature_block.dtype == np.float16,
                **attrs,
            }
        )
