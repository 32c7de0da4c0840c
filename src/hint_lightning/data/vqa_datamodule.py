"""``VQADataModule``: VQA-CP v2 / VQA v2 over the prepared stores, features read lazily.

Files read (the prepared layout of :mod:`hint_lightning.prepare`, under
``<data_dir>/prepared/``): ``features/<features>.h5``, and in ``vqa/<dataset>/``
``answers.json``, ``tokens.json``, the two split stores with their importance stores
(``vqacp_v2``: ``train``, ``test``; ``vqa_v2``: ``train``, ``val``) and, when it is there,
``glove.npy`` (exposed as :attr:`VQADataModule.word_vectors_path`). Nothing is built here:
:meth:`VQADataModule.prepare_data` only checks that the files exist and names the command that
writes them (``python -m hint_lightning.prepare <dataset> --data-dir <data_dir>``).

Splits (question level; VQA-CP has no validation split, and model selection must never look at
the test split):

=========  =========================================  =========================================
split      ``vqacp_v2``                               ``vqa_v2``
=========  =========================================  =========================================
train      CP-train minus the val carve-out           train2014 minus the val carve-out
val        ``val_fraction`` of CP-train               ``val_fraction`` of train2014
test       CP-test                                    val2014 (the papers' "VQAv2 val" column)
=========  =========================================  =========================================

The carve-out (:func:`carve_validation`) keeps the ``round(val_fraction * Q)`` questions of the
train store with the smallest SplitMix64 hash of ``(val_seed, question_id)``: it is fixed by
``val_seed``, independent of the training seed and of the order of the store, and a question's
side only changes if the set of questions changes. ``hinted_only`` then restricts train (not
val) to the questions with human importance (``has_importance``: the VQA-HAT questions), the
HINT fine-tuning protocol; ``limit_train_questions`` keeps a seeded random subset of train.

Importance: ``importance_source`` picks which array of the importance store the *train*
questions carry as ``human_importance`` (``"human"``, or the controls ``"random"`` and
``"one_minus"``); val and test always carry the human importance, which the grounding metrics
compare against (the convention of :mod:`hint_lightning.data.easyvqa_datamodule`). Questions
without a VQA-HAT map have ``has_importance`` False and zero importance in every split.

Memory (``Q`` questions of both split stores, ``H`` of them with importance, ``M`` the feature
store's ``max_boxes``): the per-question arrays (:class:`QuestionArrays`) take
``8 + 8 + 8 + 4 * T + 1 + 16 * K`` bytes per question (question id, image id, image row,
tokens, answer type, padded sparse targets and scores; ``T = 14``, ``K = 10``: 241 bytes),
i.e. ~106 MB for the 438k questions of CP-train and ~53 MB for the 220k of CP-test.
Importance is kept only for the questions that have it (:class:`ImportanceRows`: ``H x M``
float32 plus a 4-byte row index per question), e.g. ~6 MB per array for ~40k hinted CP-train
questions with ``M = 36`` (~16 MB with the adaptive ``M = 100``) plus ~2.6 MB of indices; with
``importance_source`` other than ``"human"`` the train store holds two such tables (the control
for train, human for val). The feature store's per-image index adds ~64 bytes per image
(:class:`BatchFeatureStore`). :attr:`VQADataModule.memory_bytes` reports the totals. All of
these are numpy arrays, which forked DataLoader workers share copy-on-write without touching
(no per-object reference counts, unlike lists of dicts). Features are never loaded: every
batch reads its images' rows from the HDF5 file, opened lazily in each worker process. A
batch of ``B`` images of ``N`` proposals takes ``B * N * D * 4`` bytes (512 x 36 x 2048: 151
MB) and every worker has ``prefetch_factor`` (2) batches in flight; workers build them
directly in shared memory, which the main process maps without a copy.

Throughput: :meth:`VQASplitDataset.__getitems__` builds the finished batch at once: one HDF5
read per distinct image for its features and one for its boxes, copied into the padded batch
with numpy (single-threaded: torch's multi-threaded copies in the collate of per-item batches
were measured 10 to 50 times slower when the cores are busy), and vectorized gathers for the
rest. ``python -m benchmarks.bench_vqa_loader`` measures it against per-item reads with
:class:`~hint_lightning.data.collate.VQACollate`; on 2 shared CPU cores, from the page cache,
36 x 2048 features: ~15k samples/s in the main process with batches of 64 and ~6k with
batches of 512 (page faults of the fresh 151 MB batch dominate), ~4k with 2 workers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info

from hint_lightning.data import batch as B
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.data.feature_store import FeatureStore, cast_rows
from hint_lightning.data.loading import VQADataModuleBase
from hint_lightning.prepare.vqa_hat import IMPORTANCE_STORE_VERSION
from hint_lightning.prepare.vqa_questions import SPLIT_STORE_VERSION

__all__ = [
    "DATASETS",
    "IMPORTANCE_SOURCES",
    "SPLITS",
    "STORE_SPLITS",
    "BatchFeatureStore",
    "ImportanceRows",
    "QuestionArrays",
    "VQADataModule",
    "VQASplitDataset",
    "carve_validation",
    "check_prepared",
    "load_importance",
    "load_questions",
    "prepare_command",
    "prepared_files",
]

DATASETS: Final[tuple[str, ...]] = ("vqacp_v2", "vqa_v2")
"""Accepted values of ``dataset``."""
IMPORTANCE_SOURCES: Final[tuple[str, ...]] = ("human", "random", "one_minus")
"""Accepted values of ``importance_source`` (arrays of the importance store)."""
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test", "hinted")
"""Accepted split names of :meth:`VQADataModule.question_ids`."""
STORE_SPLITS: Final[Mapping[str, tuple[str, str]]] = {
    "vqacp_v2": ("train", "test"),
    "vqa_v2": ("train", "val"),
}
"""Per dataset, the split store that train and val are carved from and the test split store."""

_IMPORTANCE_BLOCK: Final = 8192
"""Importance-store rows decompressed at once in :func:`load_importance`."""
_CARVE_SALT: Final = 0x76616C5F63617276
"""Mixed into the hash of :func:`carve_validation` (``b"val_carv"``), so that the carve-out
does not correlate with the random importance control (also SplitMix64 of question ids)."""
_QUESTION_DATASETS: Final[tuple[str, ...]] = (
    "question_id",
    "image_id",
    "tokens",
    "answer_type",
    "target_ids",
    "target_scores",
    "score_ids",
    "score_values",
)


# --------------------------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------------------------


def prepared_files(data_dir: str | Path, dataset: str, features: str) -> dict[str, Path]:
    """The prepared files a :class:`VQADataModule` needs (``glove.npy`` is optional, not here).

    Args:
        data_dir: Root data folder (holds ``prepared/``).
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        features: Feature store name (``prepared/features/<features>.h5``).

    Returns:
        Role -> path: ``features``, ``answers``, ``tokens``, ``fit`` and ``fit_importance``
        (the store train and val come from), ``test`` and ``test_importance``.

    Example:
        >>> files = prepared_files("data", "vqa_v2", "trainval_36")
        >>> files["features"].as_posix(), files["test"].as_posix()
        ('data/prepared/features/trainval_36.h5', 'data/prepared/vqa/vqa_v2/val.h5')
    """
    prepared = Path(data_dir) / "prepared"
    folder = prepared / "vqa" / dataset
    fit, test = STORE_SPLITS[dataset]
    return {
        "features": prepared / "features" / f"{features}.h5",
        "answers": folder / "answers.json",
        "tokens": folder / "tokens.json",
        "fit": folder / f"{fit}.h5",
        "fit_importance": folder / f"{fit}_importance.h5",
        "test": folder / f"{test}.h5",
        "test_importance": folder / f"{test}_importance.h5",
    }


def prepare_command(dataset: str, data_dir: str | Path, features: str = "trainval_36") -> str:
    """The command that writes the prepared files of ``dataset``.

    Args:
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        data_dir: Root data folder.
        features: Feature store name (``--features`` is added unless it is the default).

    Example:
        >>> prepare_command("vqacp_v2", "data")
        'python -m hint_lightning.prepare vqacp_v2 --data-dir data'
        >>> prepare_command("vqa_v2", "data", "trainval_adaptive")
        'python -m hint_lightning.prepare vqa_v2 --data-dir data --features trainval_adaptive'
    """
    option = "" if features == "trainval_36" else f" --features {features}"
    return f"python -m hint_lightning.prepare {dataset} --data-dir {data_dir}{option}"


def check_prepared(data_dir: str | Path, dataset: str, features: str) -> None:
    """Raises unless every prepared file of :func:`prepared_files` exists.

    Raises:
        FileNotFoundError: Naming every missing file and the command that writes them.
    """
    files = prepared_files(data_dir, dataset, features).values()
    missing = [path for path in files if not path.is_file()]
    if missing:
        listed = "\n".join(f"  {path}" for path in missing)
        raise FileNotFoundError(
            f"the prepared {dataset} data is incomplete; missing:\n{listed}\n"
            f"write them (from the raw downloads under {Path(data_dir) / 'raw'}) with:\n"
            f"  {prepare_command(dataset, data_dir, features)}"
        )


def _read_json_list(path: Path) -> tuple[str, ...]:
    """A JSON list of strings (answer or token vocabulary) as a tuple."""
    values = json.loads(path.read_text())
    if not isinstance(values, list):
        raise ValueError(f"{path}: expected a JSON list, got {type(values).__name__}")
    return tuple(str(v) for v in values)


def _check_attrs(
    handle: h5py.File, path: Path, version: int, features: str, dataset: str | None = None
) -> None:
    """Raises ``ValueError`` unless a split or importance store matches this module.

    Args:
        handle: The open store.
        path: Its file (for messages).
        version: The ``format_version`` this code reads.
        features: The configured feature store name.
        dataset: The configured dataset (split stores only).
    """
    found = int(handle.attrs.get("format_version", -1))
    if found != version:
        raise ValueError(
            f"{path}: format_version {found}, this code reads version {version}; rebuild it "
            "with the prepare step"
        )
    store = str(handle.attrs.get("feature_store", ""))
    if store != features:
        raise ValueError(
            f"{path} was prepared for the feature store {store!r}, not {features!r}: its "
            f"proposal order is that store's; set features={store!r} or prepare again for "
            f"{features!r}"
        )
    stored_dataset = handle.attrs.get("dataset")
    if dataset is not None and stored_dataset is not None and str(stored_dataset) != dataset:
        raise ValueError(f"{path} holds dataset {str(stored_dataset)!r}, not {dataset!r}")


# --------------------------------------------------------------------------------------------
# Per-question arrays.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionArrays:
    """The small per-question arrays of one split store (``Q`` questions), in store order.

    Attributes:
        question_id: [Q] int64.
        image_id: [Q] int64.
        image_row: [Q] int64, the image's row in the feature store.
        tokens: [Q, T] int32 token ids, right-padded with 0.
        answer_type: [Q] int8, index into :data:`hint_lightning.data.batch.ANSWER_TYPES`.
        target_ids: [Q, K] int32 answer ids of the soft targets, padded with -1.
        target_scores: [Q, K] float32 their targets (0 where padded).
        score_ids: [Q, K] int32 answer ids with a nonzero official accuracy, padded with -1.
        score_values: [Q, K] float32 their accuracies (0 where padded).
    """

    question_id: np.ndarray
    image_id: np.ndarray
    image_row: np.ndarray
    tokens: np.ndarray
    answer_type: np.ndarray
    target_ids: np.ndarray
    target_scores: np.ndarray
    score_ids: np.ndarray
    score_values: np.ndarray

    def __len__(self) -> int:
        """Q."""
        return len(self.question_id)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(getattr(self, name).nbytes for name in self.__dataclass_fields__)


def load_questions(
    path: str | Path, store: BatchFeatureStore, features: str, dataset: str
) -> QuestionArrays:
    """Reads the per-question arrays of a split store and locates every image in ``store``.

    Args:
        path: The split store (``<split>.h5``).
        store: The feature store of the questions' images.
        features: The feature store's name, which the split store must have been built for.
        dataset: The dataset the split store must hold.

    Returns:
        The arrays, with ``image_row`` filled in.

    Raises:
        ValueError: If the store has another format version, feature store or dataset.
        KeyError: If an image is not in the feature store (naming the question id, the image
            id and the feature store file).
    """
    path = Path(path)
    with h5py.File(path, "r") as handle:
        _check_attrs(handle, path, SPLIT_STORE_VERSION, features, dataset)
        arrays = {name: handle[name][()] for name in _QUESTION_DATASETS}
    image_id = arrays["image_id"].astype(np.int64)
    image_row = store.rows_of(image_id)
    missing = np.flatnonzero(image_row < 0)
    if missing.size:
        first = int(missing[0])
        raise KeyError(
            f"question {int(arrays['question_id'][first])} of {path}: image "
            f"{int(image_id[first])} is not in the feature store {store.path} "
            f"({missing.size} question(s) in all); prepare again so that both match"
        )
    return QuestionArrays(
        question_id=arrays["question_id"].astype(np.int64),
        image_id=image_id,
        image_row=image_row,
        tokens=arrays["tokens"].astype(np.int32, copy=False),
        answer_type=arrays["answer_type"].astype(np.int8, copy=False),
        target_ids=arrays["target_ids"].astype(np.int32, copy=False),
        target_scores=arrays["target_scores"].astype(np.float32, copy=False),
        score_ids=arrays["score_ids"].astype(np.int32, copy=False),
        score_values=arrays["score_values"].astype(np.float32, copy=False),
    )


# --------------------------------------------------------------------------------------------
# Importance.
# --------------------------------------------------------------------------------------------


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


def load_importance(
    path: str | Path, source: str, question_id: np.ndarray, features: str, max_boxes: int
) -> ImportanceRows:
    """Reads one array of an importance store, keeping the rows with importance.

    The store is gzip-compressed in chunks of rows; it is read in blocks of
    ``_IMPORTANCE_BLOCK`` rows, and blocks without importance are not decompressed.

    Args:
        path: The importance store (``<split>_importance.h5``).
        source: ``"human"``, ``"random"`` or ``"one_minus"``.
        question_id: [Q] the split store's question ids, which the store must match.
        features: The feature store's name, which the store must have been built for.
        max_boxes: M, the feature store's ``max_boxes``.

    Returns:
        The rows of the questions with importance.

    Raises:
        ValueError: If the store has another format version, feature store, questions or M.
    """
    path = Path(path)
    with h5py.File(path, "r") as handle:
        _check_attrs(handle, path, IMPORTANCE_STORE_VERSION, features)
        if not np.array_equal(handle["question_id"][()], question_id):
            raise ValueError(f"{path}: its questions differ from those of its split store")
        dataset = handle[source]
        if dataset.shape != (len(question_id), max_boxes):
            raise ValueError(
                f"{path}: {source} has shape {dataset.shape}, expected "
                f"{(len(question_id), max_boxes)} (the feature store's max_boxes is {max_boxes})"
            )
        rows = np.flatnonzero(handle["has_importance"][()])
        values = np.empty((len(rows), max_boxes), dtype=np.float32)
        starts = np.arange(0, len(question_id), _IMPORTANCE_BLOCK)
        bounds = np.searchsorted(rows, np.append(starts, len(question_id)))
        for start, lo, hi in zip(starts.tolist(), bounds[:-1], bounds[1:], strict=True):
            if hi > lo:
                block = dataset[start : start + _IMPORTANCE_BLOCK]
                values[lo:hi] = block[rows[lo:hi] - start]
    index = np.full(len(question_id), -1, dtype=np.int32)
    index[rows] = np.arange(len(rows), dtype=np.int32)
    return ImportanceRows(values=values, index=index)


# --------------------------------------------------------------------------------------------
# The validation carve-out.
# --------------------------------------------------------------------------------------------


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer, element-wise on uint64 (wrapping arithmetic)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def carve_validation(question_id: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which questions form the validation carve-out.

    The ``round(fraction * Q)`` questions (halves round up) with the smallest hash
    ``SplitMix64(SplitMix64(seed ^ salt) ^ question_id)``, ties broken by question id: the
    choice depends on the seed and the set of question ids, not on their order.

    Args:
        question_id: [Q] integer question ids.
        fraction: Share of the questions in the carve-out, in [0, 1).
        seed: Seed of the hash.

    Returns:
        [Q] bool, True for validation questions.

    Raises:
        ValueError: If ``fraction`` is out of range.

    Example:
        >>> ids = np.arange(1000, 1100)
        >>> val = carve_validation(ids, 0.1, seed=0)
        >>> int(val.sum()), bool((carve_validation(ids[::-1], 0.1, seed=0)[::-1] == val).all())
        (10, True)
        >>> bool((carve_validation(ids, 0.1, seed=1) == val).all())
        False
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    ids = np.asarray(question_id, dtype=np.int64)
    with np.errstate(over="ignore"):
        key = _splitmix64(np.array([(seed ^ _CARVE_SALT) % 2**64], dtype=np.uint64))
        hashes = _splitmix64(key ^ ids.astype(np.uint64))
    num_val = math.floor(fraction * len(ids) + 0.5)
    order = np.lexsort((ids, hashes))
    mask = np.zeros(len(ids), dtype=bool)
    mask[order[:num_val]] = True
    return mask


# --------------------------------------------------------------------------------------------
# Features.
# --------------------------------------------------------------------------------------------


def _batch_array(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """An uninitialized tensor for a batch; in shared memory inside a DataLoader worker.

    A worker's batch reaches the main process through shared memory: a tensor allocated
    elsewhere is copied there when it is sent. Allocating it there at once (as
    ``torch.utils.data.default_collate`` does) saves that copy of every batch (measured: 1.7 to
    2.5 times the samples/s of two workers with 512 x 36 x 2048 float32 features).

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
        """Reads image row ``row`` into ``features`` [n, D] float32 and ``boxes`` [n, 4]."""
        rows = slice(int(self._offsets[row]), int(self._offsets[row + 1]))
        stored = self._dataset("features")[rows]
        if stored.dtype == np.float32:
            features[...] = stored
        else:
            cast_rows(features, stored)
        boxes[...] = self._dataset("boxes")[rows]

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
        features = _batch_array((len(rows), num_proposals, self.feature_dim), torch.float32)
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


# --------------------------------------------------------------------------------------------
# Datasets.
# --------------------------------------------------------------------------------------------


def _dense(ids: np.ndarray, values: np.ndarray, num_answers: int) -> Tensor:
    """Densifies padded sparse answers.

    Args:
        ids: [B, K] answer ids, -1 where padded.
        values: [B, K] their values.
        num_answers: A.

    Returns:
        [B, A] float32.
    """
    out = _batch_array((len(ids), num_answers), torch.float32)
    array = out.numpy()
    array.fill(0.0)
    batch, column = np.nonzero(ids >= 0)
    array[batch, ids[batch, column]] = values[batch, column]
    return out


class VQASplitDataset(Dataset):
    """The questions of one split: items, or whole batches with :meth:`__getitems__`.

    ``dataset[i]`` is one item in the format of :mod:`hint_lightning.data.collate` (sparse
    targets and scores); ``dataset.__getitems__(indices)`` (used by ``DataLoader`` for batched
    fetching) returns the finished batch of :mod:`hint_lightning.data.batch`, equal to
    ``VQACollate(num_answers)([dataset[i] for i in indices])``.

    Args:
        questions: The per-question arrays of the split store.
        rows: [S] int question rows of the split, in dataset order.
        importance: The importance the split carries (human, or a control for train).
        store: The feature store of the questions' images.
        num_answers: A.
    """

    def __init__(
        self,
        questions: QuestionArrays,
        rows: np.ndarray,
        importance: ImportanceRows,
        store: BatchFeatureStore,
        num_answers: int,
    ) -> None:
        self.questions = questions
        self.rows = np.asarray(rows, dtype=np.int64)
        self.importance = importance
        self.store = store
        self.num_answers = num_answers

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def question_ids(self) -> np.ndarray:
        """[S] int64 question ids, in dataset order."""
        return self.questions.question_id[self.rows]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One item (see :mod:`hint_lightning.data.collate`)."""
        q = self.questions
        row = int(self.rows[index])
        features, boxes = self.store.read_image(int(q.image_row[row]))
        importance = self.importance.gather(np.array([row]), self.store.max_boxes)[0]
        targets = q.target_ids[row] >= 0
        scores = q.score_ids[row] >= 0
        return {
            B.FEATURES: features,
            B.BOXES: boxes,
            B.QUESTION_TOKENS: q.tokens[row],
            B.ANSWER_TYPE: int(q.answer_type[row]),
            B.QUESTION_ID: int(q.question_id[row]),
            B.HUMAN_IMPORTANCE: importance[: len(features)],
            B.HAS_IMPORTANCE: bool(self.importance.index[row] >= 0),
            "target_ids": q.target_ids[row][targets],
            "target_values": q.target_scores[row][targets],
            "answer_score_ids": q.score_ids[row][scores],
            "answer_score_values": q.score_values[row][scores],
        }

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The whole batch of ``indices`` at once (see :mod:`hint_lightning.data.batch`)."""
        q = self.questions
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        features, boxes, mask = self.store.read_batch(q.image_row[rows])
        importance = self.importance.gather(rows, features.shape[1])
        return {
            B.FEATURES: features,
            B.BOXES: boxes,
            B.PROPOSAL_MASK: mask,
            B.QUESTION_TOKENS: torch.from_numpy(q.tokens[rows].astype(np.int64)),
            B.TARGETS: _dense(q.target_ids[rows], q.target_scores[rows], self.num_answers),
            B.ANSWER_SCORES: _dense(q.score_ids[rows], q.score_values[rows], self.num_answers),
            B.ANSWER_TYPE: torch.from_numpy(q.answer_type[rows].astype(np.int64)),
            B.HUMAN_IMPORTANCE: torch.from_numpy(importance),
            B.HAS_IMPORTANCE: torch.from_numpy(self.importance.index[rows] >= 0),
            B.QUESTION_ID: torch.from_numpy(q.question_id[rows]),
        }


# --------------------------------------------------------------------------------------------
# The DataModule.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    """Everything :meth:`VQADataModule.setup` reads, shared by the datasets."""

    store: BatchFeatureStore
    fit: QuestionArrays
    test: QuestionArrays
    rows: dict[str, np.ndarray]
    datasets: dict[str, VQASplitDataset]


class VQADataModule(VQADataModuleBase):
    """VQA-CP v2 or VQA v2 from the prepared stores (see the module docstring).

    Args:
        data_dir: Root data folder (holds ``prepared/``).
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        features: Feature store name under ``prepared/features/`` (``trainval_36`` or
            ``trainval_adaptive``).
        batch_size: Global training batch size (divided by ``trainer.world_size``; must be
            divisible by it).
        eval_batch_size: Global evaluation batch size (divided by the world size, rounded up).
        num_workers: DataLoader worker processes (each opens the feature store itself).
        pin_memory: Passed to the DataLoaders.
        shuffle: Shuffle the training split every epoch (False keeps store order).
        val_fraction: Share of the train store carved out as val, in [0, 1).
        val_seed: Seed of the carve-out and of ``limit_train_questions``.
        hinted_only: Train only on the questions with human importance (HINT fine-tuning).
        importance_source: ``"human"``, ``"random"`` or ``"one_minus"``: the importance of
            the train questions (val and test always carry the human importance).
        limit_train_questions: Keep only this many train questions (a seeded random subset),
            for quick runs; None keeps all.

    Attributes:
        info: The :class:`~hint_lightning.data.batch.VQADataInfo`, once :meth:`setup` ran.
        word_vectors_path: ``glove.npy`` ([V, 300] float32 initial token embeddings) when the
            prepare step wrote it, else None; set by :meth:`setup`.

    Raises:
        ValueError: On an unknown ``dataset`` or ``importance_source``, or out-of-range values.
    """

    def __init__(
        self,
        data_dir: str,
        dataset: str = "vqacp_v2",
        features: str = "trainval_36",
        batch_size: int = 512,
        eval_batch_size: int = 1024,
        num_workers: int = 4,
        pin_memory: bool = False,
        shuffle: bool = True,
        val_fraction: float = 0.05,
        val_seed: int = 0,
        hinted_only: bool = False,
        importance_source: str = "human",
        limit_train_questions: int | None = None,
    ) -> None:
        super().__init__()
        _check_arguments(
            dataset,
            importance_source,
            (batch_size, eval_batch_size),
            num_workers,
            val_fraction,
            limit_train_questions,
        )
        self.save_hyperparameters()
        self.data_dir = str(data_dir)
        self.dataset = dataset
        self.features = features
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.shuffle = shuffle
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.hinted_only = hinted_only
        self.importance_source = importance_source
        self.limit_train_questions = limit_train_questions
        self.info: VQADataInfo | None = None
        self.word_vectors_path: str | None = None
        self._loaded: _Loaded | None = None
        self._device_batch_size = batch_size
        self._device_eval_batch_size = eval_batch_size

    @property
    def files(self) -> dict[str, Path]:
        """The prepared files this module reads (see :func:`prepared_files`)."""
        return prepared_files(self.data_dir, self.dataset, self.features)

    def prepare_data(self) -> None:
        """Checks that the prepared files exist (building them needs the raw downloads).

        Raises:
            FileNotFoundError: Naming every missing file and the command that writes them.
        """
        check_prepared(self.data_dir, self.dataset, self.features)

    def setup(self, stage: str | None = None) -> None:
        """Reads the per-question arrays and importance, and builds the datasets of all splits.

        Idempotent: later calls only recompute the per-process batch sizes.

        Args:
            stage: Lightning stage (all splits are built whatever the stage, so that e.g.
                evaluation can use ``val_dataloader()`` after ``setup("test")``).

        Raises:
            FileNotFoundError: If prepared files are missing (as :meth:`prepare_data`).
            ValueError: If the stores do not match each other or this configuration, or the
                train split is empty.
            KeyError: If a question's image is not in the feature store.
        """
        self._set_batch_sizes()
        if self._loaded is not None:
            return
        self.prepare_data()
        files = self.files
        answers = _read_json_list(files["answers"])
        tokens = _read_json_list(files["tokens"])
        store = BatchFeatureStore(files["features"])
        fit = load_questions(files["fit"], store, self.features, self.dataset)
        test = load_questions(files["test"], store, self.features, self.dataset)
        fit_human = self._importance(files["fit_importance"], "human", fit, store)
        rows = {**self._split_rows(fit, fit_human), "test": np.arange(len(test))}
        tables = {
            "train": self._importance(
                files["fit_importance"], self.importance_source, fit, store, fit_human
            ),
            "val": fit_human,
            "test": self._importance(files["test_importance"], "human", test, store),
        }
        datasets = {
            split: VQASplitDataset(
                test if split == "test" else fit, rows[split], tables[split], store, len(answers)
            )
            for split in ("train", "val", "test")
        }
        self._loaded = _Loaded(store=store, fit=fit, test=test, rows=rows, datasets=datasets)
        glove = files["answers"].parent / "glove.npy"
        self.word_vectors_path = str(glove) if glove.is_file() else None
        self.info = VQADataInfo(
            answers=answers,
            tokens=tokens,
            feature_dim=store.feature_dim,
            max_proposals=store.max_boxes,
            name=self.dataset,
        )

    def _importance(
        self,
        path: Path,
        source: str,
        questions: QuestionArrays,
        store: BatchFeatureStore,
        human: ImportanceRows | None = None,
    ) -> ImportanceRows:
        """One importance array of a store (``human`` is reused when ``source`` is human)."""
        if source == "human" and human is not None:
            return human
        return load_importance(path, source, questions.question_id, self.features, store.max_boxes)

    def _split_rows(self, fit: QuestionArrays, human: ImportanceRows) -> dict[str, np.ndarray]:
        """Sorted question rows of train, val and hinted in the train store.

        Args:
            fit: The train store's questions.
            human: Its human importance (``has_importance`` defines hinted).

        Returns:
            ``{"train", "val", "hinted"}`` int64 row arrays.

        Raises:
            ValueError: If the train split is empty.
        """
        val_mask = carve_validation(fit.question_id, self.val_fraction, self.val_seed)
        train = np.flatnonzero(~val_mask)
        hinted = train[human.has_importance[train]]
        if self.hinted_only:
            train = hinted
        limit = self.limit_train_questions
        if limit is not None and limit < len(train):
            rng = np.random.default_rng((self.val_seed, 2))
            train = np.sort(rng.permutation(train)[:limit])
        if len(train) == 0:
            what = "with human importance " if self.hinted_only else ""
            raise ValueError(
                f"no train question {what}in {self.files['fit']} (val_fraction="
                f"{self.val_fraction}, hinted_only={self.hinted_only})"
            )
        return {"train": train, "val": np.flatnonzero(val_mask), "hinted": hinted}

    def teardown(self, stage: str | None = None) -> None:
        """Closes this process's feature-store handle (a later read reopens it)."""
        if self._loaded is not None:
            self._loaded.store.close()

    def _require(self) -> _Loaded:
        """What :meth:`setup` loaded."""
        if self._loaded is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self._loaded

    def _split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (train, val or test); loaders come from the base class."""
        return self._require().datasets[split]

    def question_ids(self, split: str) -> np.ndarray:
        """The question ids of a split, in the order of its (unshuffled) dataset.

        Args:
            split: ``"train"`` (exactly what the train loader iterates), ``"val"``,
                ``"test"``, or ``"hinted"`` (the train questions with human importance,
                before ``limit_train_questions``).

        Returns:
            Int64 array of shape [S].
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        loaded = self._require()
        questions = loaded.test if split == "test" else loaded.fit
        return questions.question_id[loaded.rows[split]]

    @property
    def answers(self) -> tuple[str, ...]:
        """The answer vocabulary (class ``a`` is ``answers[a]``); requires :meth:`setup`."""
        if self.info is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self.info.answers

    @property
    def memory_bytes(self) -> dict[str, int]:
        """Bytes of the in-memory arrays: per-question arrays and importance rows."""
        loaded = self._require()
        tables = {id(d.importance): d.importance for d in loaded.datasets.values()}
        return {
            "questions": loaded.fit.nbytes + loaded.test.nbytes,
            "importance": sum(t.values.nbytes + t.index.nbytes for t in tables.values()),
        }


def _check_arguments(
    dataset: str,
    importance_source: str,
    batch_sizes: tuple[int, int],
    num_workers: int,
    val_fraction: float,
    limit_train_questions: int | None,
) -> None:
    """Raises ``ValueError`` on an unknown choice or an out-of-range value."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if importance_source not in IMPORTANCE_SOURCES:
        raise ValueError(
            f"importance_source must be one of {IMPORTANCE_SOURCES}, got {importance_source!r}"
        )
    if min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {batch_sizes}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if limit_train_questions is not None and limit_train_questions < 1:
        raise ValueError(f"limit_train_questions must be >= 1, got {limit_train_questions}")
