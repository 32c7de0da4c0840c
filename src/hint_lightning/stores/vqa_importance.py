"""The VQA importance store (``prepared/vqa/<dataset>/<split>_importance.h5``).

Aligned with its split store's questions (``Q`` questions, ``M`` the feature store's
``max_boxes``)::

    question_id [Q] int64, has_importance [Q] bool,
    human, random, one_minus [Q, M] float32 (gzip, chunks of 256 rows; proposal order of the
        feature store; 0 beyond an image's num_boxes and for questions without importance)
    _checksums/{human,random,one_minus} (XXH3-64 per IMPORTANCE_BLOCK rows),
    _checksums/{question_id,has_importance}
    attrs: format_version, feature_store, seed, sources (JSON)

:func:`read_importance` keeps only the rows of the questions that have importance: it reads
the store in its checksum blocks (:data:`IMPORTANCE_BLOCK` rows when it was written),
decompresses (and verifies) only the blocks that hold some, and keeps them as
:class:`ImportanceRows`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hint_lightning.stores.checksum import ALGORITHM, GROUP, Checksums, digest, write_checksums
from hint_lightning.stores.errors import open_store, read_errors, warn_unverified
from hint_lightning.stores.features import check_finite_rows
from hint_lightning.stores.versions import IMPORTANCE_STORE_VERSION
from hint_lightning.stores.vqa_questions import check_store_attrs
from hint_lightning.utils.io import atomic_path

__all__ = [
    "IMPORTANCE_ARRAYS",
    "IMPORTANCE_BLOCK",
    "ImportanceRows",
    "read_importance",
    "write_importance_blocks",
]

IMPORTANCE_ARRAYS: Final[tuple[str, ...]] = ("human", "random", "one_minus")
"""The importance arrays of a store (the human importance and the two controls)."""
IMPORTANCE_BLOCK: Final = 8192
"""Rows written, checksummed, read and verified at once."""
_CHUNK_ROWS: Final = 256
"""Rows per HDF5 chunk of the importance arrays."""


def write_importance_blocks(
    path: str | os.PathLike[str],
    question_ids: np.ndarray,
    has_importance: np.ndarray,
    max_boxes: int,
    block: Callable[[int, int], Mapping[str, np.ndarray]],
    attrs: Mapping[str, Any],
) -> Path:
    """Writes an importance store atomically, block by block, with its checksums.

    Args:
        path: The ``<split>_importance.h5`` file.
        question_ids: [Q] the split store's question ids.
        has_importance: [Q] bool.
        max_boxes: M.
        block: ``(start, stop) -> {"human", "random", "one_minus"}`` dense [stop - start, M]
            float32 rows.
        attrs: Root attributes (``feature_store``, ``seed``, ``sources``); ``format_version``
            is set here.

    Returns:
        ``path`` as a Path.
    """
    num_questions = int(question_ids.shape[0])
    chunks = (max(1, min(_CHUNK_ROWS, num_questions)), max(1, max_boxes))
    sums: dict[str, list[int]] = {name: [] for name in IMPORTANCE_ARRAYS}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name, values in (("question_id", question_ids), ("has_importance", has_importance)):
            handle.create_dataset(name, data=values)
            write_checksums(handle, name, values)
        datasets = {
            name: handle.create_dataset(
                name,
                shape=(num_questions, max_boxes),
                dtype=np.float32,
                chunks=chunks if num_questions and max_boxes else None,
                compression="gzip" if num_questions and max_boxes else None,
                fillvalue=0.0,
            )
            for name in IMPORTANCE_ARRAYS
        }
        for start in range(0, num_questions, IMPORTANCE_BLOCK):
            stop = min(start + IMPORTANCE_BLOCK, num_questions)
            rows = block(start, stop)
            for name, dataset in datasets.items():
                values = np.ascontiguousarray(rows[name], dtype=np.float32)
                dataset[start:stop] = values
                sums[name].append(digest(values))
        for name, values in sums.items():
            table = handle.create_dataset(f"{GROUP}/{name}", data=np.array(values, np.uint64))
            table.attrs.update({"algorithm": ALGORITHM, "block_rows": IMPORTANCE_BLOCK})
        handle.attrs.update({**attrs, "format_version": IMPORTANCE_STORE_VERSION})
    return Path(path)


@dataclass(frozen=True)
class ImportanceRows:
    """One importance array of a store, kept only for the questions that have importance.

    Attributes:
        values: [H, M] float32, the rows of the ``H`` questions with importance.
        index: [Q] int32, each question's row in ``values``; -1 without importance.
    """

    values: np.ndarray
    index: np.ndarray

    @property
    def has_importance(self) -> np.ndarray:
        """[Q] bool."""
        return self.index >= 0

    def gather(self, questions: np.ndarray, num_proposals: int) -> np.ndarray:
        """The importance of some questions, zero where they have none.

        Args:
            questions: [B] question rows of the store.
            num_proposals: N <= M, the columns to keep.

        Returns:
            [B, N] float32.

        Example:
            >>> rows = ImportanceRows(np.array([[0.5, 0.25]], np.float32), np.array([-1, 0]))
            >>> rows.gather(np.array([1, 0, 1]), 1).tolist()
            [[0.5], [0.0], [0.5]]
        """
        out = np.zeros((len(questions), num_proposals), dtype=np.float32)
        index = self.index[questions]
        has = index >= 0
        out[has] = self.values[index[has], :num_proposals]
        return out


def read_importance(
    path: str | Path, source: str, question_id: np.ndarray, features: str, max_boxes: int
) -> ImportanceRows:
    """Reads one array of an importance store, keeping the rows with importance.

    Args:
        path: The importance store (``<split>_importance.h5``).
        source: ``"human"``, ``"random"`` or ``"one_minus"``.
        question_id: [Q] the split store's question ids, which the store must match.
        features: The feature store's name, which the store must have been built for.
        max_boxes: M, the feature store's ``max_boxes``.

    Returns:
        The rows of the questions with importance.

    Raises:
        StoreError: (a ``ValueError``) If the file is unreadable (truncated), has another
            format version, non-finite importance or a block that differs from its checksum.
        ValueError: If it was built for another feature store, other questions or another M.
    """
    path = Path(path)
    with open_store(path, "importance store") as handle, read_errors(path, "the store"):
        check_store_attrs(handle, path, IMPORTANCE_STORE_VERSION, features)
        checksums = Checksums.read(handle, path)
        stored_ids = handle["question_id"][()]
        has_importance = handle["has_importance"][()]
        if checksums is None:
            warn_unverified(path)
        else:
            checksums.verify_array("question_id", stored_ids)
            checksums.verify_array("has_importance", has_importance)
        if not np.array_equal(stored_ids, question_id):
            raise ValueError(f"{path}: its questions differ from those of its split store")
        dataset = handle[source]
        if dataset.shape != (len(question_id), max_boxes):
            raise ValueError(
                f"{path}: {source} has shape {dataset.shape}, expected "
                f"{(len(question_id), max_boxes)} (the feature store's max_boxes is {max_boxes})"
            )
        rows = np.flatnonzero(has_importance)
        values = np.empty((len(rows), max_boxes), dtype=np.float32)
        step = checksums.block_rows(source) if checksums is not None else IMPORTANCE_BLOCK
        starts = np.arange(0, len(question_id), step)
        bounds = np.searchsorted(rows, np.append(starts, len(question_id)))
        for block, (start, lo, hi) in enumerate(
            zip(starts.tolist(), bounds[:-1], bounds[1:], strict=True)
        ):
            if hi > lo:
                data = dataset[start : start + step]
                last = int(question_id[start + len(data) - 1])
                item = f"questions {int(question_id[start])}..{last}"
                if checksums is not None:
                    checksums.verify(source, block, data, item)
                check_finite_rows(data, path, source, item)
                values[lo:hi] = data[rows[lo:hi] - start]
    index = np.full(len(question_id), -1, dtype=np.int32)
    index[rows] = np.arange(len(rows), dtype=np.int32)
    return ImportanceRows(values=values, index=index)
