"""The visual-word human importance store (``prepared/coco/importance.h5``).

One row per (image, COCO category with instances in the image), sorted by image then
category (``R`` rows, ``M`` the feature store's ``max_boxes``)::

    image_id [R] int64, category_id [R] int16,
    importance [R, M] float32 (s = E+ / (E+ + E-) of every proposal; 0 beyond the image's),
    num_boxes [R] int32, mask_area [R] int64,
    index_image_ids [I] int64, index_offsets [I + 1] int64 (rows of each image),
    _checksums/<dataset> (XXH3-64 per 8192 rows)
    attrs: format_version, max_boxes, size_mismatch (JSON), images_without_features (JSON),
           dropped_rings, feature_store, sources (JSON)

:func:`read_coco_importance` returns the rows as a sorted key ``image_id * CATEGORY_KEY +
category_id`` and the importance matrix; :func:`importance_rows` looks rows up by key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hint_lightning.stores.checksum import Checksums, write_checksums
from hint_lightning.stores.errors import StoreError, open_store, read_errors, warn_unverified
from hint_lightning.stores.features import check_finite_rows
from hint_lightning.stores.versions import COCO_IMPORTANCE_VERSION
from hint_lightning.utils.io import atomic_path

__all__ = [
    "CATEGORY_KEY",
    "COCO_IMPORTANCE_DATASETS",
    "importance_rows",
    "read_coco_importance",
    "write_coco_importance",
]

CATEGORY_KEY: Final = 128
"""Lookup key ``image_id * CATEGORY_KEY + category_id`` (COCO category ids are < 91)."""
COCO_IMPORTANCE_DATASETS: Final[tuple[str, ...]] = (
    "image_id",
    "category_id",
    "importance",
    "num_boxes",
    "mask_area",
    "index_image_ids",
    "index_offsets",
)
"""The datasets of the store."""
_CHUNK_ROWS: Final = 256
"""Rows per HDF5 chunk of ``importance``."""


def write_coco_importance(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    max_boxes: int,
    attrs: Mapping[str, Any],
) -> Path:
    """Writes the store atomically, with its checksums.

    Args:
        path: The ``.h5`` file.
        arrays: The datasets of :data:`COCO_IMPORTANCE_DATASETS`, rows already sorted.
        max_boxes: M.
        attrs: Root attributes; ``format_version`` and ``max_boxes`` are set here.

    Returns:
        ``path`` as a Path.
    """
    count = int(arrays["image_id"].shape[0])
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name in COCO_IMPORTANCE_DATASETS:
            chunks = None
            if name == "importance" and count:
                chunks = (max(1, min(_CHUNK_ROWS, count)), max(1, max_boxes))
            handle.create_dataset(name, data=arrays[name], chunks=chunks)
            write_checksums(handle, name, arrays[name])
        handle.attrs.update(
            {**attrs, "format_version": COCO_IMPORTANCE_VERSION, "max_boxes": max_boxes}
        )
    return Path(path)


def read_coco_importance(
    path: str | os.PathLike[str], max_boxes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(keys [R] sorted, importance [R, M'] float32)`` of the store, checked.

    Args:
        path: The store.
        max_boxes: The feature store's ``max_boxes``; the store must hold at least as many
            proposals per row.

    Raises:
        StoreError: (a ``ValueError``) When the file is unreadable (truncated), of another
            format version, unsorted, non-finite or differs from its checksums.
        ValueError: When its rows are narrower than ``max_boxes``.
    """
    path = Path(path)
    names = ("image_id", "category_id", "importance")
    with open_store(path, "importance store") as handle, read_errors(path, "the store"):
        found = int(handle.attrs.get("format_version", -1))
        if found != COCO_IMPORTANCE_VERSION:
            raise StoreError(
                path, f"format_version {found}, this code reads {COCO_IMPORTANCE_VERSION}"
            )
        arrays = {name: handle[name][()] for name in names}
        checksums = Checksums.read(handle, path)
    if checksums is None:
        warn_unverified(path)
    else:
        for name in names:
            checksums.verify_array(name, arrays[name])
    importance = arrays["importance"].astype(np.float32)
    check_finite_rows(importance, path, "importance", "its rows")
    if importance.shape[1] < max_boxes:
        raise ValueError(
            f"{path} holds {importance.shape[1]} proposals per row but the feature store "
            f"has images with {max_boxes}: prepare them from one store"
        )
    keys = arrays["image_id"].astype(np.int64) * CATEGORY_KEY + arrays["category_id"]
    if np.any(np.diff(keys) <= 0):
        raise StoreError(path, "rows are not sorted by (image id, category id)")
    return keys.astype(np.int64), importance


def importance_rows(
    keys: np.ndarray, image_ids: np.ndarray, category_ids: np.ndarray
) -> np.ndarray:
    """Row of each (image, category) in an importance store, -1 where it has none.

    Args:
        keys: ``[R]`` sorted ``image_id * CATEGORY_KEY + category_id`` of the store's rows.
        image_ids: ``[K]`` image ids.
        category_ids: ``[K]`` category ids.

    Returns:
        ``[K]`` int64 rows.

    Example:
        >>> keys = np.array([5 * 128 + 1, 5 * 128 + 18, 9 * 128 + 1])
        >>> importance_rows(keys, np.array([5, 9, 9]), np.array([18, 1, 18])).tolist()
        [1, 2, -1]
    """
    wanted = np.asarray(image_ids, np.int64) * CATEGORY_KEY + np.asarray(category_ids, np.int64)
    if keys.size == 0:
        return np.full(wanted.shape, -1, dtype=np.int64)
    position = np.searchsorted(keys, wanted).clip(max=keys.size - 1)
    return np.where(keys[position] == wanted, position, -1).astype(np.int64)
