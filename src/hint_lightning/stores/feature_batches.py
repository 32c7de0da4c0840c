"""A feature store addressed by image row that reads whole padded batches (VQA and COCO).

:meth:`BatchFeatureStore.read_batch` builds the finished batch at once: one HDF5 read per
distinct image for its features and one for its boxes, copied into the padded batch with numpy
(single-threaded; ``docs/data_layers.md`` has the measurements behind these choices), directly
in shared memory when it runs in a DataLoader worker.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from hint_lightning.stores.features import FeatureStore, cast_rows

__all__ = ["BatchFeatureStore", "batch_array"]


def batch_array(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """An uninitialized tensor for a batch; in shared memory inside a DataLoader worker.

    A worker's batch reaches the main process through shared memory: a tensor allocated
    elsewhere is copied there when it is sent. Allocating it there at once (as
    ``torch.utils.data.default_collate`` does) saves that copy of every batch
    (docs/data_layers.md has the measurement).

    Args:
        shape: The tensor's shape.
        dtype: Its dtype.

    Returns:
        A contiguous tensor of ``shape`` and ``dtype``.
    """
    new_shared = getattr(torch.UntypedStorage, "_new_shared", None)
    if get_worker_info() is None or new_shared is None:
        return torch.empty(shape, dtype=dtype)
    storage = new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


class BatchFeatureStore(FeatureStore):
    """A :class:`FeatureStore` addressed by image row, that also reads whole padded batches.

    Like its base, it opens the HDF5 file lazily in each process (DataLoader workers included)
    and reads only the rows of the images asked for.

    Args:
        path: The ``.h5`` feature store.

    Attributes:
        box_counts: [I] int64, proposals per image row.
        box_scales: [I, 4] float32, ``(w, h, w, h)`` per image row (normalizes boxes).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.box_counts: np.ndarray = np.diff(self._offsets)
        self.box_scales: np.ndarray = np.stack(
            [self._widths, self._heights, self._widths, self._heights], axis=1
        ).astype(np.float32)

    def rows_of(self, image_ids: np.ndarray) -> np.ndarray:
        """Image rows of image ids (vectorized).

        Args:
            image_ids: [Q] integer image ids.

        Returns:
            [Q] int64 rows; -1 where an id is not in the store.
        """
        ids = np.asarray(image_ids, dtype=np.int64)
        position = np.searchsorted(self._sorted_ids, ids).clip(max=len(self._sorted_ids) - 1)
        found = self._sorted_ids[position] == ids
        return np.where(found, self._order[position], -1).astype(np.int64)

    def _read(self, row: int, features: np.ndarray, boxes: np.ndarray) -> None:
        """Reads image row ``row`` into ``features`` [n, D] float32 and ``boxes`` [n, 4].

        Both are verified on their first read (see :class:`FeatureStore`).
        """
        stored = self.read_rows("features", row)
        if stored.dtype == np.float32:
            features[...] = stored
        else:
            cast_rows(features, stored)
        boxes[...] = self.read_rows("boxes", row)

    def read_image(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Features and normalized boxes of one image row.

        Returns:
            ``(features [n, D] float32, boxes [n, 4] float32 in [0, 1])``.
        """
        n = int(self.box_counts[row])
        features = np.empty((n, self.feature_dim), dtype=np.float32)
        boxes = np.empty((n, 4), dtype=np.float32)
        self._read(row, features, boxes)
        return features, np.clip(boxes / self.box_scales[row], 0.0, 1.0, out=boxes)

    def read_batch(self, rows: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Features, normalized boxes and proposal mask of a batch of image rows.

        Every distinct image is read once, in file order (one HDF5 read of its feature rows
        and one of its boxes, copied into the padded batch with numpy, single-threaded);
        repeated images are copied from their first occurrence.

        Args:
            rows: [B] image rows (repeats allowed).

        Returns:
            ``features [B, N, D] float32``, ``boxes [B, N, 4] float32`` (x1, y1, x2, y2 divided
            by the image's width and height, clipped to [0, 1]) and ``proposal_mask [B, N]``
            bool, with ``N`` the largest box count of the batch; padding is zero / False.
        """
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.box_counts[rows]
        num_proposals = int(counts.max(initial=0))
        features = batch_array((len(rows), num_proposals, self.feature_dim), torch.float32)
        feature_array = features.numpy()
        boxes = np.zeros((len(rows), num_proposals, 4), dtype=np.float32)
        unique, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        for row, position in zip(unique.tolist(), first.tolist(), strict=True):
            n = int(counts[position])
            self._read(row, feature_array[position, :n], boxes[position, :n])
            feature_array[position, n:] = 0.0
        source = first[inverse.reshape(-1)]
        repeated = np.flatnonzero(source != np.arange(len(rows)))
        if repeated.size:
            feature_array[repeated] = feature_array[source[repeated]]
            boxes[repeated] = boxes[source[repeated]]
        np.clip(boxes / self.box_scales[rows][:, None, :], 0.0, 1.0, out=boxes)
        mask = torch.arange(num_proposals)[None, :] < torch.from_numpy(counts)[:, None]
        return features, torch.from_numpy(boxes), mask
