"""Content checksums of a store, written at build time and verified lazily when read.

Every dataset of a store that a reader loads gets a 64-bit XXH3 hash (xxHash, Collet) per block
of rows, stored in the store itself under ``_checksums/<dataset>`` (uint64, one per block;
attributes ``algorithm``
and either ``block_rows`` or ``blocks = "offsets"``: the blocks are the images of a ragged
feature store, ``offsets[i]:offsets[i + 1]``). A reader verifies a block when it reads it,
never more: a feature store checks an image on its first read in the run (the store's lazy
reads stay lazy), stores read whole at ``setup`` check every block once. A mismatch is a
:class:`~hint_lightning.stores.errors.StoreError` naming the file, the dataset, the item and how
to rebuild it.

XXH3 hashes about as fast as a copy of the rows (docs/data_layers.md has the measurements).

Example:
    >>> import tempfile, pathlib, h5py
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.h5"
    >>> values = np.arange(10.0)
    >>> with h5py.File(path, "w") as handle:
    ...     _ = handle.create_dataset("x", data=values)
    ...     write_checksums(handle, "x", values, block_rows=4)
    >>> with h5py.File(path, "r") as handle:
    ...     sums = Checksums.read(handle, path)
    >>> sums.verify("x", 2, values[8:])
    >>> sums.verify("x", 0, values[:4] + 1, item="rows 0-3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hint_lightning.stores.errors.StoreError: .../s.h5: x, rows 0-3: content differs from ...
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import h5py
import numpy as np
import xxhash

from hint_lightning.stores.errors import StoreError

__all__ = [
    "ALGORITHM",
    "DEFAULT_BLOCK_ROWS",
    "GROUP",
    "Checksums",
    "block_checksums",
    "digest",
    "write_checksums",
]

ALGORITHM: Final = "xxh3_64"
GROUP: Final = "_checksums"
DEFAULT_BLOCK_ROWS: Final = 8192
"""Rows per checksum block of the arrays a reader loads whole."""


def digest(block: np.ndarray) -> int:
    """XXH3-64 of an array's bytes (C order); of the UTF-8 text of a string (object) array."""
    if block.dtype == object:
        return xxhash.xxh3_64_intdigest("\x00".join(map(str, block.reshape(-1))).encode())
    return xxhash.xxh3_64_intdigest(memoryview(np.ascontiguousarray(block)).cast("B"))


def block_checksums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The hash of each block ``values[bounds[k]:bounds[k + 1]]``.

    Args:
        values: [R, ...] the dataset's values.
        bounds: [K + 1] ascending row bounds, from 0 to R.

    Returns:
        [K] uint64.
    """
    out = np.empty(len(bounds) - 1, dtype=np.uint64)
    for k in range(len(out)):
        out[k] = digest(values[bounds[k] : bounds[k + 1]])
    return out


def _row_bounds(num_rows: int, block_rows: int) -> np.ndarray:
    """``[0, block_rows, 2 * block_rows, ..., num_rows]``."""
    return np.append(np.arange(0, num_rows, block_rows), num_rows).astype(np.int64)


def write_checksums(
    handle: h5py.File,
    name: str,
    values: np.ndarray,
    *,
    block_rows: int | None = DEFAULT_BLOCK_ROWS,
    offsets: np.ndarray | None = None,
) -> None:
    """Stores the checksums of dataset ``name`` (whose content is ``values``).

    Args:
        handle: The store, open for writing.
        name: The dataset's path in the store.
        values: Its content ([R, ...]; a 0-d value is one block).
        block_rows: Rows per block (ignored with ``offsets``).
        offsets: [I + 1] per-image row bounds: one block per image (feature stores).
    """
    values = np.asarray(values)
    if values.ndim == 0:
        values = values.reshape(1)
    if offsets is not None:
        sums = block_checksums(values, np.asarray(offsets, dtype=np.int64))
        attrs: dict[str, object] = {"blocks": "offsets"}
    else:
        rows = max(1, int(block_rows or DEFAULT_BLOCK_ROWS))
        sums = block_checksums(values, _row_bounds(len(values), rows))
        attrs = {"block_rows": rows}
    key = f"{GROUP}/{name}"
    if key in handle:
        del handle[key]
    dataset = handle.create_dataset(key, data=sums)
    dataset.attrs.update({"algorithm": ALGORITHM, **attrs})


class Checksums:
    """The checksums of one store, read when it is opened (one uint64 per block).

    Args:
        path: The store (for messages).
        tables: Dataset name -> ``(checksums [K], block_rows or 0 for per-image blocks)``.
    """

    def __init__(self, path: str | Path, tables: dict[str, tuple[np.ndarray, int]]) -> None:
        self.path = Path(path)
        self._tables = tables

    @classmethod
    def read(cls, handle: h5py.File, path: str | Path) -> Checksums | None:
        """The checksums of an open store; None when it has none (written before them)."""
        if GROUP not in handle:
            return None
        tables: dict[str, tuple[np.ndarray, int]] = {}

        def collect(name: str, node: object) -> None:
            if isinstance(node, h5py.Dataset):
                if node.attrs.get("algorithm") != ALGORITHM:
                    raise StoreError(path, f"unknown checksum algorithm for {name}")
                tables[name] = (node[()].astype(np.uint64), int(node.attrs.get("block_rows", 0)))

        handle[GROUP].visititems(collect)
        return cls(path, tables)

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def block_rows(self, name: str) -> int:
        """Rows per block of ``name`` (0: one block per image of a feature store)."""
        return self._table(name)[1]

    def num_blocks(self, name: str) -> int:
        """K: how many blocks ``name`` has."""
        return len(self._table(name)[0])

    def _table(self, name: str) -> tuple[np.ndarray, int]:
        if name not in self._tables:
            raise StoreError(self.path, f"no checksums for {name} (the store is incomplete)")
        return self._tables[name]

    def matches(self, name: str, block: int, values: np.ndarray) -> bool:
        """Whether block ``block`` of ``name`` (its rows as read) has its build-time hash."""
        sums = self._table(name)[0]
        return 0 <= block < len(sums) and digest(values) == int(sums[block])

    def verify(self, name: str, block: int, values: np.ndarray, item: str | None = None) -> None:
        """Checks one block of ``name`` (its rows as read).

        Args:
            name: The dataset.
            block: The block's index.
            values: Its rows, as stored (before any conversion).
            item: What the block holds, for messages (e.g. ``"image 42"``).

        Raises:
            StoreError: When the block's hash differs from the one written at build time.
        """
        if not self.matches(name, block, values):
            what = item or f"block {block}"
            raise StoreError(
                self.path,
                f"{name}, {what}: content differs from its checksum written at build time "
                "(the file was corrupted or modified)",
            )

    def verify_array(
        self, name: str, values: np.ndarray, item: Callable[[int, int], str] | None = None
    ) -> None:
        """Checks every block of a dataset read whole.

        Args:
            name: The dataset.
            values: Its whole content.
            item: ``(first row, stop row) -> description`` of a block, for messages (default
                ``"rows a-b"``).

        Raises:
            StoreError: On the first block that differs, or a wrong number of blocks.
        """
        values = np.asarray(values)
        if values.ndim == 0:
            values = values.reshape(1)
        sums, rows = self._table(name)
        bounds = _row_bounds(len(values), rows) if rows else None
        if bounds is None or len(bounds) - 1 != len(sums):
            raise StoreError(
                self.path,
                f"{name}: {len(values)} rows do not match its {len(sums)} checksum blocks "
                "(the file was corrupted or modified)",
            )
        for k in range(len(sums)):
            start, stop = int(bounds[k]), int(bounds[k + 1])
            if digest(values[start:stop]) != int(sums[k]):
                what = item(start, stop) if item else f"rows {start}-{stop - 1}"
                self.verify(name, k, values[start:stop], what)
