"""The VQA split store (``prepared/vqa/<dataset>/<split>.h5``) and the vocabularies next to it.

One row per question, in question-file order (``Q`` questions, ``T`` tokens, ``K`` target
columns)::

    question_id [Q] int64, image_id [Q] int64, tokens [Q, T] int32 (0-padded, T = 14),
    answer_type [Q] int8 (index into hint_lightning.text.answers.ANSWER_TYPES),
    question_type [Q] int16 (index into the JSON attr question_types),
    target_ids [Q, K] int32 and target_scores [Q, K] float32: soft training targets, padded with
        id -1 (K = 10: at most 10 distinct human answers),
    score_ids [Q, K] int32 and score_values [Q, K] float32: official accuracy of each candidate
        answer that scores above 0 (text.answer_scores.AnswerScorer), padded with id -1
    _checksums/<dataset> (XXH3-64 per 8192 questions)
    attrs: format_version, dataset, split, question_types (JSON), feature_store (name),
        sources (JSON: file name, size, mtime of every raw input, for up-to-date checks)

``answers.json`` and ``tokens.json`` (JSON lists) are the answer and token vocabularies.
Written by :func:`write_split_arrays` (from the raw files by
:func:`hint_lightning.prepare.vqa_questions.write_split_store`), read by
:func:`read_split_store`, which checks the attributes, the checksums and every index's range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import h5py
import numpy as np

from hint_lightning.stores.checksum import Checksums, write_checksums
from hint_lightning.stores.errors import StoreError, open_store, read_errors, warn_unverified
from hint_lightning.stores.versions import SPLIT_STORE_VERSION
from hint_lightning.text.answers import ANSWER_TYPES
from hint_lightning.utils.io import atomic_path, read_json

if TYPE_CHECKING:
    from hint_lightning.stores.feature_batches import BatchFeatureStore

__all__ = [
    "NUM_TARGET_COLUMNS",
    "SPLIT_DATASETS",
    "QuestionArrays",
    "check_store_attrs",
    "read_split_store",
    "read_vocabulary",
    "write_split_arrays",
]

NUM_TARGET_COLUMNS: Final = 10
"""K, the columns of ``target_*`` and ``score_*`` (at most 10 distinct human answers)."""
SPLIT_DATASETS: Final[tuple[str, ...]] = (
    "question_id",
    "image_id",
    "tokens",
    "answer_type",
    "question_type",
    "target_ids",
    "target_scores",
    "score_ids",
    "score_values",
)
"""The datasets of a split store, in writing order."""
_LOADED: Final[tuple[str, ...]] = tuple(n for n in SPLIT_DATASETS if n != "question_type")
"""The datasets :func:`read_split_store` keeps in memory."""


def write_split_arrays(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]
) -> Path:
    """Writes a split store atomically (temporary file, then renamed), with its checksums.

    Args:
        path: The ``<split>.h5`` file.
        arrays: The datasets of :data:`SPLIT_DATASETS`.
        attrs: Root attributes (``dataset``, ``split``, ``question_types``, ...);
            ``format_version`` is set here.

    Returns:
        ``path`` as a Path.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name in SPLIT_DATASETS:
            handle.create_dataset(name, data=arrays[name])
            write_checksums(handle, name, arrays[name])
        handle.attrs.update({**attrs, "format_version": SPLIT_STORE_VERSION})
    return Path(path)


def read_vocabulary(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """A JSON list of strings (``answers.json``, ``tokens.json``, ``vocab.json``) as a tuple.

    Raises:
        ValueError: Naming the file when it is empty, not JSON or not a list of strings.
    """
    values = read_json(path, "JSON list of strings (a vocabulary)")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{path}: expected a JSON list of strings, got {type(values).__name__}")
    return tuple(values)


def check_store_attrs(
    handle: h5py.File, path: Path, version: int, features: str, dataset: str | None = None
) -> None:
    """Raises :class:`StoreError` unless a split or importance store matches this reader.

    Args:
        handle: The open store.
        path: Its file (for messages).
        version: The ``format_version`` this code reads.
        features: The configured feature store name.
        dataset: The configured dataset (split stores only).
    """
    found = int(handle.attrs.get("format_version", -1))
    if found != version:
        raise StoreError(path, f"format_version {found}, this code reads version {version}")
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


@dataclass(frozen=True)
class QuestionArrays:
    """The small per-question arrays of one split store (``Q`` questions), in store order.

    Attributes:
        question_id: [Q] int64.
        image_id: [Q] int64.
        image_row: [Q] int64, the image's row in the feature store.
        tokens: [Q, T] int32 token ids, right-padded with 0.
        answer_type: [Q] int8, index into :data:`hint_lightning.text.answers.ANSWER_TYPES`.
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


def _check_range(
    path: Path, name: str, values: np.ndarray, low: int, high: int, question_id: np.ndarray
) -> None:
    """:class:`StoreError` naming the first question whose ``name`` leaves ``[low, high)``."""
    flat = values.reshape(len(values), -1)
    bad = np.flatnonzero(((flat < low) | (flat >= high)).any(axis=1))
    if bad.size:
        row = int(bad[0])
        raise StoreError(
            path,
            f"{name} of question {int(question_id[row])} is {values[row].tolist()}, outside "
            f"[{low}, {high}) ({bad.size} question(s) in all)",
        )


def _check_values(path: Path, arrays: dict[str, np.ndarray], sizes: Mapping[str, int]) -> None:
    """Every index of the loaded arrays in range and every score finite."""
    qid = arrays["question_id"]
    _check_range(path, "answer_type", arrays["answer_type"], 0, len(ANSWER_TYPES), qid)
    if "tokens" in sizes:
        _check_range(path, "tokens", arrays["tokens"], 0, sizes["tokens"], qid)
    if "answers" in sizes:
        for name in ("target_ids", "score_ids"):
            _check_range(path, name, arrays[name], -1, sizes["answers"], qid)
    for name in ("target_scores", "score_values"):
        finite = np.isfinite(arrays[name]).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise StoreError(path, f"{name} of question {int(qid[row])} are not finite")


def read_split_store(
    path: str | Path,
    store: BatchFeatureStore,
    features: str,
    dataset: str,
    sizes: Mapping[str, int] | None = None,
) -> QuestionArrays:
    """Reads the per-question arrays of a split store and locates every image in ``store``.

    Args:
        path: The split store (``<split>.h5``).
        store: The feature store of the questions' images.
        features: The feature store's name, which the split store must have been built for.
        dataset: The dataset the split store must hold.
        sizes: ``{"answers": A, "tokens": V}``: the vocabulary sizes the ids must be below.

    Returns:
        The arrays, with ``image_row`` filled in.

    Raises:
        StoreError: (a ``ValueError``) If the file is unreadable (truncated), has another
            format version, an id out of range, or content that differs from its checksums.
        ValueError: If it was built for another feature store or dataset.
        KeyError: If an image is not in the feature store (naming the question id, the image
            id and the feature store file).
    """
    path = Path(path)
    with open_store(path, "split store") as handle, read_errors(path, "the split store"):
        check_store_attrs(handle, path, SPLIT_STORE_VERSION, features, dataset)
        arrays = {name: handle[name][()] for name in _LOADED}
        checksums = Checksums.read(handle, path)
    _check_values(path, arrays, sizes or {})
    if checksums is None:
        warn_unverified(path)
    else:
        qid = arrays["question_id"]
        for name in _LOADED:
            checksums.verify_array(
                name, arrays[name], lambda a, b: f"questions {int(qid[a])}..{int(qid[b - 1])}"
            )
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
