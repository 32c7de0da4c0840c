"""The bottom-up feature store (HDF5, ragged): its schema and a lazy, worker-safe reader.

The store (written by :class:`hint_lightning.stores.feature_writer.FeatureStoreWriter`, from
the TSVs by :func:`hint_lightning.prepare.features.convert_tsv_to_hdf5`) holds the proposals of
all images concatenated::

    image_ids [I] int64, image_w [I] int32, image_h [I] int32, num_boxes [I] int32,
    offsets [I + 1] int64 (image i owns rows offsets[i]:offsets[i + 1]),
    boxes [R, 4] float32 (x1, y1, x2, y2 in pixels), features [R, D] float32 or float16
    _checksums/{features,boxes} [I] uint64 (XXH3-64 of each image's rows),
    _checksums/<index dataset> (XXH3-64 per block of rows)
    attrs: format_version, feature_dim, max_boxes, float16, sources (JSON)

:class:`FeatureStore` reads the small per-image index once (when constructed, through a handle
that it closes again) and keeps it as numpy arrays; the per-image lookup is a binary search over
the sorted ids, so no large Python dict is copied-on-access in forked workers. The file handle
for rows is opened on the first row read in each process: the store remembers the pid of the
process that opened it and reopens after a fork, and pickling drops the handle (spawned
workers reopen it). Each item reads only its own rows (``features[offsets[i]:offsets[i + 1]]``
and the same rows of ``boxes``), with HDF5's chunk cache off so that uncompressed chunks are
read directly: random access neither reads whole chunks nor keeps them. float16 stores are
converted to float32 on read by :func:`cast_rows` (torch's conversion, single-threaded).

Integrity: the index is checked against its checksums when the store is opened; an image's
rows are checked against the hash written at build time (when the writer also checked that
they are finite) the first time the run reads them, in whichever process (a flag per image in
memory shared with forked DataLoader workers), so a corrupted or modified store stops with a
:class:`~hint_lightning.stores.errors.StoreError` naming the file and the image instead of
training on garbage. A store written before checksums loads with a warning (its rows are still
checked for non-finite values).
"""

from __future__ import annotations

import mmap
import operator
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from hint_lightning.stores.checksum import Checksums
from hint_lightning.stores.errors import (
    StoreError,
    open_store,
    read_errors,
    warn_unverified,
)
from hint_lightning.stores.versions import FEATURE_STORE_VERSION

__all__ = [
    "CAST_BLOCK",
    "INDEX_DATASETS",
    "REQUIRED_ATTRS",
    "ROW_DATASETS",
    "FeatureStore",
    "all_finite",
    "cast_rows",
    "check_finite_rows",
]

#: Per-image datasets ([I], ``offsets`` [I + 1]), read once into memory.
INDEX_DATASETS = ("image_ids", "image_w", "image_h", "num_boxes", "offsets")

#: Per-proposal datasets ([R, ...]), read per item.
ROW_DATASETS = ("boxes", "features")

#: Root attributes every store carries.
REQUIRED_ATTRS = ("format_version", "feature_dim", "max_boxes")


#: Elements per torch copy in :func:`cast_rows`: below torch's parallel grain size (32768), so
#: each copy runs on the calling thread (no thread-pool wake-ups; docs/data_layers.md).
CAST_BLOCK = 16384


def cast_rows(out: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Copy ``values`` into ``out``, converting float16 <-> float32, block by block.

    torch's vectorized (F16C) conversion is much faster than numpy's (docs/data_layers.md);
    blocks of at most :data:`CAST_BLOCK` elements keep it single-threaded.

    Args:
        out: ``[n, ...]`` writable destination (e.g. float32).
        values: ``[n, ...]`` source of the same shape (e.g. float16); must be writable.

    Returns:
        ``out``.

    Example:
        >>> half = np.array([[0.5, 65504.0], [-2.0, 6e-8]], dtype=np.float16)
        >>> full = cast_rows(np.empty((2, 2), np.float32), half)
        >>> full.dtype, bool((full == half.astype(np.float32)).all())
        (dtype('float32'), True)
    """
    target, source = torch.from_numpy(out), torch.from_numpy(values)
    row_size = max(1, out[0].size) if len(out) else 1
    step = max(1, CAST_BLOCK // row_size)
    for start in range(0, len(out), step):
        target[start : start + step].copy_(source[start : start + step])
    return out


def _open_h5(path: Path, **kwargs: Any) -> h5py.File:
    """Open ``path`` read-only; a truncated or foreign file is a ``StoreError`` naming it."""
    return open_store(path, "feature store", **kwargs)


def _check_layout(handle: h5py.File, path: Path) -> None:
    """Raise ``StoreError`` naming ``path`` unless ``handle`` holds a current feature store."""
    missing_attrs = [name for name in REQUIRED_ATTRS if name not in handle.attrs]
    missing = [name for name in INDEX_DATASETS + ROW_DATASETS if name not in handle]
    if missing_attrs or missing:
        parts = [f"datasets {missing}"] * bool(missing) + [f"attributes {missing_attrs}"] * bool(
            missing_attrs
        )
        raise StoreError(path, f"not a feature store: missing {' and '.join(parts)}")
    version = int(handle.attrs["format_version"])
    if version != FEATURE_STORE_VERSION:
        raise StoreError(
            path,
            f"feature store format_version {version}, this code reads version "
            f"{FEATURE_STORE_VERSION}",
        )


def all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite; float16 by its exponent bits (numpy's float16 reductions
    are slow: docs/data_layers.md)."""
    if values.dtype == np.float16:
        bits = np.ascontiguousarray(values).view(np.uint16)
        return not bool(np.any((bits & 0x7C00) == 0x7C00))
    return bool(np.isfinite(values).all())


def check_finite_rows(values: np.ndarray, path: Path, name: str, item: str) -> None:
    """Raise ``StoreError`` when ``values`` hold NaN or inf.

    Args:
        values: The rows as read.
        path: The store (for the message).
        name: The dataset.
        item: What the rows are (e.g. ``"image 42"``).

    Example:
        >>> check_finite_rows(np.array([1.0, 6e4], np.float16), Path("s.h5"), "x", "image 1")
        >>> check_finite_rows(np.array([np.inf, np.nan], np.float16), Path("s.h5"), "x", "image 1")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hint_lightning.stores.errors.StoreError: s.h5: x of image 1 hold ... (1 NaN, 1 inf); ...
    """
    if values.size == 0 or all_finite(values):
        return
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    raise StoreError(path, f"{name} of {item} hold non-finite values ({nan} NaN, {inf} inf)")


def _shared_flags(rows: int, columns: int) -> np.ndarray:
    """``[rows, columns]`` uint8 zeros in anonymous shared memory: writes after a fork are seen
    by all processes of the run (the parent and its DataLoader workers)."""
    size = rows * columns
    return np.frombuffer(mmap.mmap(-1, max(size, 1)), dtype=np.uint8)[:size].reshape(rows, -1)


def _check_index(
    index: dict[str, np.ndarray], rows: dict[str, tuple[int, ...]], path: Path, feature_dim: int
) -> None:
    """Raise ``StoreError`` naming ``path`` when index and row datasets disagree."""
    num_images = len(index["image_ids"])
    offsets = index["offsets"]
    same_length = all(len(index[name]) == num_images for name in INDEX_DATASETS[:-1])
    num_rows = rows["features"][0]
    consistent = (
        same_length
        and len(offsets) == num_images + 1
        and offsets[0] == 0
        and offsets[-1] == num_rows
        and np.array_equal(np.diff(offsets), index["num_boxes"])
        and rows["boxes"] == (num_rows, 4)
        and rows["features"] == (num_rows, feature_dim)
    )
    if not consistent:
        raise StoreError(path, "corrupt feature store (index and rows disagree)")
    if len(np.unique(index["image_ids"])) != num_images:
        raise StoreError(path, "corrupt feature store (duplicate image ids)")


class FeatureStore:
    """Per-image bottom-up proposals (features and boxes) from an HDF5 feature store.

    Args:
        path: The ``.h5`` file.

    Attributes:
        path: The store file.
        feature_dim: D.
        max_boxes: The largest number of proposals of any image.
        float16: Whether features are stored as float16 (they are returned as float32).
        image_ids: ``[I]`` int64, in store order.

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        StoreError: (a ``ValueError``) When ``path`` is not a readable feature store of this
            format version, or its index differs from its checksums; later, on the first read
            of an image whose rows differ from their checksum or hold NaN or inf.

    Example:
        >>> import tempfile, pathlib
        >>> from hint_lightning.prepare.bottom_up_tsv import write_bottom_up_tsv
        >>> from hint_lightning.prepare.features import convert_tsv_to_hdf5
        >>> from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> images = random_bottom_up_images(3, feature_dim=8, boxes=(2, 4), first_image_id=7)
        >>> tsv = write_bottom_up_tsv(folder / "f.tsv", images)
        >>> _ = convert_tsv_to_hdf5([tsv], folder / "f.h5", feature_dim=8, progress=False)
        >>> store = FeatureStore(folder / "f.h5")
        >>> len(store), 8 in store, store.feature_dim
        (3, True, 8)
        >>> features, boxes = store.get(8)
        >>> features.shape == (len(images[1][3]), 8), boxes.dtype
        (True, dtype('float32'))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with _open_h5(self.path) as handle, read_errors(self.path, "the feature store's index"):
            _check_layout(handle, self.path)
            self.feature_dim = int(handle.attrs["feature_dim"])
            self.max_boxes = int(handle.attrs["max_boxes"])
            self.float16 = handle["features"].dtype == np.float16
            index = {name: handle[name][()] for name in INDEX_DATASETS}
            rows = {name: handle[name].shape for name in ROW_DATASETS}
            checksums = Checksums.read(handle, self.path)
        if checksums is None:
            warn_unverified(self.path)
        else:
            for name in INDEX_DATASETS:
                checksums.verify_array(name, index[name])
            for name in ROW_DATASETS:
                if checksums.num_blocks(name) != len(index["image_ids"]):
                    raise StoreError(self.path, f"{name}: checksums do not match the images")
        _check_index(index, rows, self.path, self.feature_dim)
        self._checksums = checksums
        self._verified = _shared_flags(len(ROW_DATASETS), len(index["image_ids"]))
        self.image_ids: np.ndarray = index["image_ids"].astype(np.int64)
        self._widths: np.ndarray = index["image_w"].astype(np.int32)
        self._heights: np.ndarray = index["image_h"].astype(np.int32)
        self._offsets: np.ndarray = index["offsets"].astype(np.int64)
        self._order: np.ndarray = np.argsort(self.image_ids, kind="stable")
        self._sorted_ids: np.ndarray = self.image_ids[self._order]
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._pid: int | None = None

    # ------------------------------------------------------------------ lookup

    def __len__(self) -> int:
        """I: the number of images."""
        return len(self.image_ids)

    def __contains__(self, image_id: object) -> bool:
        """Whether the store holds ``image_id``."""
        try:
            self._index(image_id)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            return False
        return True

    def __repr__(self) -> str:
        dtype = "float16" if self.float16 else "float32"
        return (
            f"FeatureStore({str(self.path)!r}, images={len(self)}, feature_dim={self.feature_dim}, "
            f"max_boxes={self.max_boxes}, {dtype})"
        )

    def _index(self, image_id: int) -> int:
        """Row of ``image_id`` in the per-image arrays; ``KeyError`` naming the store if absent."""
        key = operator.index(image_id)
        position = int(np.searchsorted(self._sorted_ids, key)) if -(2**63) <= key < 2**63 else -1
        if not 0 <= position < len(self._sorted_ids) or self._sorted_ids[position] != key:
            raise KeyError(f"image id {key} is not in the feature store {self.path}")
        return int(self._order[position])

    def _rows(self, image_id: int) -> slice:
        """The proposal rows of ``image_id``."""
        index = self._index(image_id)
        return slice(int(self._offsets[index]), int(self._offsets[index + 1]))

    def num_boxes(self, image_id: int) -> int:
        """n: the number of proposals of ``image_id``."""
        rows = self._rows(image_id)
        return rows.stop - rows.start

    def image_size(self, image_id: int) -> tuple[int, int]:
        """``(width, height)`` of ``image_id`` in pixels."""
        index = self._index(image_id)
        return int(self._widths[index]), int(self._heights[index])

    # ------------------------------------------------------------------ rows

    def _dataset(self, name: str) -> h5py.Dataset:
        """Row dataset ``name`` of this process's handle, opened on first use and after a fork."""
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            # After a fork the parent's handle is dropped, not closed: it belongs to the parent.
            self._file = _open_h5(self.path, rdcc_nbytes=0)
            self._datasets = {name: self._file[name] for name in ROW_DATASETS}
            self._pid = pid
        return self._datasets[name]

    def read_rows(self, name: str, index: int) -> np.ndarray:
        """The rows of dataset ``name`` (``"features"``, as stored, or ``"boxes"``) of image row
        ``index``, verified on their first read in the run.

        Raises:
            StoreError: When the rows cannot be read, differ from their checksum or hold NaN or
                inf (naming the image).
        """
        rows = slice(int(self._offsets[index]), int(self._offsets[index + 1]))
        try:
            values = self._dataset(name)[rows]
        except OSError as exc:  # e.g. a store truncated after it was opened
            with read_errors(self.path, f"the {name} of image {int(self.image_ids[index])}"):
                raise exc from None
        flag = 0 if name == "features" else 1
        if not self._verified[flag, index]:
            checksums = self._checksums
            # Verified content is the content built, which the writer checked to be finite.
            if checksums is None or not checksums.matches(name, index, values):
                item = f"image {int(self.image_ids[index])}"
                if checksums is not None:
                    checksums.verify(name, index, values, item)  # raises, naming the image
                check_finite_rows(values, self.path, name, item)
            self._verified[flag, index] = 1
        return values

    def boxes(self, image_id: int) -> np.ndarray:
        """Proposal boxes of ``image_id``.

        Returns:
            ``[n, 4]`` float32 x1, y1, x2, y2 in pixels.
        """
        return self.read_rows("boxes", self._index(image_id))

    def features(self, image_id: int) -> np.ndarray:
        """Proposal features of ``image_id``.

        Returns:
            ``[n, D]`` float32 (converted when the store holds float16).
        """
        stored = self.read_rows("features", self._index(image_id))
        if stored.dtype == np.float32:
            return stored
        return cast_rows(np.empty(stored.shape, dtype=np.float32), stored)

    def get(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(features [n, D] float32, boxes [n, 4] float32)`` of ``image_id``."""
        return self.features(image_id), self.boxes(image_id)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close this process's file handle (a later read reopens it)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._datasets = {}
        self._pid = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the file handle (spawned DataLoader workers reopen it)."""
        state = self.__dict__.copy()
        state["_file"] = None
        state["_datasets"] = {}
        state["_pid"] = None
        state["_verified"] = self._verified.copy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle into fresh shared flags (a spawned process verifies on its own)."""
        flags = _shared_flags(*state["_verified"].shape)
        flags[:] = state["_verified"]
        self.__dict__.update({**state, "_verified": flags})
