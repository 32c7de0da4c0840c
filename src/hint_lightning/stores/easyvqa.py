"""The easy-VQA-CP store: schema, parameters, writer and reader (all in memory, ~60 MB).

One HDF5 file per set of :class:`EasyVQACPParams` (``easyvqa_cp_<digest>.h5``: the digest is a
hash of every parameter that changes the content, and of :data:`EASYVQA_STORE_VERSION`), built by
:func:`hint_lightning.prepare.easyvqa.ensure_store` on first use. Layout (no pickle;
vocabularies and statistics are JSON string attributes of the root):

===============================  ============  =========  =====================================
dataset                          shape         dtype      content
===============================  ============  =========  =====================================
``images/image_id``              [I]           int64      image id (row ``i`` has id ``i``)
``images/features``              [I, N, D]     float32    standardized proposal features
``images/boxes``                 [I, N, 4]     float32    proposals x1, y1, x2, y2 in [0, 1]
``images/human_importance``      [I, N]        float32    s = E+ / (E+ + E-) per proposal
``images/shape_box``             [I, 4]        float32    the shape's box in [0, 1]
``images/mask_area``             [I]           int64      shape pixels
``features/mean``, ``/std``      [D]           float32    standardization statistics
``questions/question_id``        [Q]           int64      train ``k`` -> ``k``, test -> 100000 + k
``questions/image_index``        [Q]           int64      row in ``images/``
``questions/tokens``             [Q, T]        int64      token ids, 0-padded
``questions/answer``             [Q]           int64      index into the ``answers`` attribute
``questions/answer_type``        [Q]           int64      index into ``ANSWER_TYPES``
``questions/template``           [Q]           int64      index into the ``templates`` attribute
``questions/question_type``      [Q]           str        official VQA question type
``questions/question``           [Q]           str        question text
``questions/split``              [Q]           int8       0 = CP-train, 1 = CP-test
``_checksums/<dataset>``         [K]           uint64     XXH3-64 per image / per 8192 questions
===============================  ============  =========  =====================================

Root attributes: ``format_version``, ``params``, ``answers``, ``tokens``, ``templates``,
``split_stats`` (JSON). :func:`load_store` checks every index against its range and every
dataset against its checksums: a corrupted file stops with a one-line
:class:`~hint_lightning.stores.errors.StoreError` naming it and the item.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hint_lightning.stores.checksum import Checksums, write_checksums
from hint_lightning.stores.errors import StoreError, open_store, read_errors
from hint_lightning.stores.features import check_finite_rows
from hint_lightning.stores.versions import EASYVQA_STORE_VERSION
from hint_lightning.text.answers import ANSWER_TYPES
from hint_lightning.utils.io import atomic_path

__all__ = [
    "COLOR_WORDS",
    "IMAGE_DATASETS",
    "QUESTION_DATASETS",
    "SHAPE_WORDS",
    "SPLIT_TEST",
    "SPLIT_TRAIN",
    "TEST_IMAGE_ID_OFFSET",
    "TEST_QUESTION_ID_OFFSET",
    "EasyVQACPArrays",
    "EasyVQACPParams",
    "answer_type_counts",
    "has_checksums",
    "load_store",
    "write_store",
]

TEST_QUESTION_ID_OFFSET: Final = 100_000
"""Test question ``k`` of the package gets question id ``TEST_QUESTION_ID_OFFSET + k``."""
TEST_IMAGE_ID_OFFSET: Final = 4_000
"""Test image ``i`` of the package gets image id ``TEST_IMAGE_ID_OFFSET + i``."""

COLOR_WORDS: Final[tuple[str, ...]] = (
    "black",
    "blue",
    "brown",
    "gray",
    "green",
    "red",
    "teal",
    "yellow",
)
"""The easy-VQA colors (replaced by ``<C>`` in templates)."""
SHAPE_WORDS: Final[tuple[str, ...]] = ("circle", "rectangle", "triangle")
"""The easy-VQA shapes (replaced by ``<S>`` in templates; the word "shape" itself stays)."""

SPLIT_TRAIN: Final = 0
"""``questions/split`` code of CP-train questions."""
SPLIT_TEST: Final = 1
"""``questions/split`` code of CP-test questions."""

IMAGE_DATASETS: Final[tuple[str, ...]] = (
    "image_id",
    "features",
    "boxes",
    "human_importance",
    "shape_box",
    "mask_area",
)
"""The datasets of ``images/`` (one row per image)."""
QUESTION_DATASETS: Final[tuple[str, ...]] = (
    "question_id",
    "image_index",
    "tokens",
    "answer",
    "answer_type",
    "template",
    "question_type",
    "question",
    "split",
)
"""The datasets of ``questions/`` (one row per question)."""
_QUESTION_BLOCK: Final = 8192
"""Questions per checksum block."""


@dataclass(frozen=True)
class EasyVQACPParams:
    """Every parameter that changes the content of the store.

    Attributes:
        split_seed: Seed of the CP split (group order and leak).
        test_fraction: Target share of CP-test questions.
        leak: Share of each CP-test (template, answer) group moved back to CP-train.
        seed: Seed of the proposal jitter and random boxes.
        num_proposals: N, proposals per image (>= 16).
        blur_sigma: Gaussian blur of the shape mask, in pixels.
        max_question_length: T, tokens per question.
    """

    split_seed: int = 0
    test_fraction: float = 1 / 3
    leak: float = 0.1
    seed: int = 0
    num_proposals: int = 24
    blur_sigma: float = 3.0
    max_question_length: int = 14

    def to_dict(self) -> dict[str, Any]:
        """The parameters and the format version, as a JSON-ready dict."""
        return {**asdict(self), "format_version": EASYVQA_STORE_VERSION}

    def digest(self) -> str:
        """A 12-hex-digit hash of :meth:`to_dict` (stable across runs and platforms).

        Example:
            >>> EasyVQACPParams().digest() == EasyVQACPParams().digest()
            True
            >>> EasyVQACPParams().digest() == EasyVQACPParams(leak=0.2).digest()
            False
        """
        payload = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def filename(self) -> str:
        """The store's file name, e.g. ``easyvqa_cp_<digest>.h5``."""
        return f"easyvqa_cp_{self.digest()}.h5"


@dataclass(frozen=True)
class EasyVQACPArrays:
    """A loaded store, all in memory (numpy arrays; see the module docstring for shapes).

    Attributes:
        image_id: [I] int64.
        features: [I, N, D] float32, standardized.
        boxes: [I, N, 4] float32 in [0, 1].
        human_importance: [I, N] float32.
        question_id: [Q] int64.
        image_index: [Q] int64.
        tokens: [Q, T] int64.
        answer: [Q] int64.
        answer_type: [Q] int64.
        template: [Q] int64.
        question_type: [Q] object array of str.
        question: [Q] object array of str.
        split: [Q] int8, :data:`SPLIT_TRAIN` or :data:`SPLIT_TEST`.
        answers: The answer vocabulary.
        tokens_vocab: The token vocabulary.
        templates: The template of each template index.
        split_stats: The CP split statistics.
        params: The build parameters (with the format version).
    """

    image_id: np.ndarray
    features: np.ndarray
    boxes: np.ndarray
    human_importance: np.ndarray
    question_id: np.ndarray
    image_index: np.ndarray
    tokens: np.ndarray
    answer: np.ndarray
    answer_type: np.ndarray
    template: np.ndarray
    question_type: np.ndarray
    question: np.ndarray
    split: np.ndarray
    answers: tuple[str, ...]
    tokens_vocab: tuple[str, ...]
    templates: tuple[str, ...]
    split_stats: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def num_questions(self) -> int:
        """Q."""
        return len(self.question_id)


def _checksum_rows(group: str, name: str) -> int:
    """Rows per checksum block: one image, or :data:`_QUESTION_BLOCK` questions."""
    return 1 if group == "images" else _QUESTION_BLOCK


def write_store(
    path: str | os.PathLike[str],
    images: Mapping[str, np.ndarray],
    questions: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
) -> Path:
    """Writes a store atomically (temporary file in the same folder, then renamed).

    Args:
        path: The ``.h5`` file (its folder is created).
        images: ``images/`` arrays (:data:`IMAGE_DATASETS`) plus ``feature_mean`` and
            ``feature_std`` [D].
        questions: ``questions/`` arrays (:data:`QUESTION_DATASETS`); strings as object arrays.
        attrs: JSON-ready root attributes: ``params``, ``split_stats``, ``answers``,
            ``tokens``, ``templates``.

    Returns:
        ``path`` as a Path.
    """
    strings = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for group, arrays, names in (
            ("images", images, IMAGE_DATASETS),
            ("questions", questions, QUESTION_DATASETS),
        ):
            for name in names:
                value = arrays[name]
                dtype = strings if value.dtype == object else None
                handle.create_dataset(f"{group}/{name}", data=value, dtype=dtype)
                write_checksums(
                    handle, f"{group}/{name}", value, block_rows=_checksum_rows(group, name)
                )
        for key, name in (("feature_mean", "features/mean"), ("feature_std", "features/std")):
            handle.create_dataset(name, data=images[key])
        handle.attrs["format_version"] = EASYVQA_STORE_VERSION
        for key, value in attrs.items():
            handle.attrs[key] = json.dumps(value)
    return Path(path)


def has_checksums(path: str | os.PathLike[str]) -> bool:
    """Whether the store at ``path`` carries checksums (False for one written before them).

    Raises:
        StoreError: When it is not a readable HDF5 file (truncated, empty).
    """
    with open_store(path, "easy-VQA-CP store") as handle:
        return Checksums.read(handle, path) is not None


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    """A string dataset as an object array of str."""
    return np.array(dataset.asstr()[()], dtype=object)


def _check_index(
    path: Path, name: str, values: np.ndarray, size: int, question_id: np.ndarray
) -> None:
    """``StoreError`` naming the question when an index of ``questions/<name>`` is outside
    ``[0, size)``."""
    outside = (values < 0) | (values >= size)
    bad = np.flatnonzero(outside.reshape(len(values), -1).any(axis=1))
    if bad.size:
        first = int(bad[0])
        raise StoreError(
            path,
            f"questions/{name} of question {int(question_id[first])} is "
            f"{values[first].tolist()}, outside [0, {size}) "
            f"({bad.size} question(s) in all)",
        )


def _check_store(path: Path, arrays: EasyVQACPArrays) -> None:
    """Every index of the questions in range, every feature finite."""
    qid = arrays.question_id
    _check_index(path, "answer", arrays.answer, len(arrays.answers), qid)
    _check_index(path, "answer_type", arrays.answer_type, len(ANSWER_TYPES), qid)
    _check_index(path, "template", arrays.template, len(arrays.templates), qid)
    _check_index(path, "image_index", arrays.image_index, len(arrays.image_id), qid)
    _check_index(path, "split", arrays.split, 2, qid)
    _check_index(path, "tokens", arrays.tokens, len(arrays.tokens_vocab), qid)
    for name in ("features", "boxes", "human_importance"):
        values = getattr(arrays, name)
        finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            item = f"image {int(arrays.image_id[row])}"
            check_finite_rows(values[row], path, f"images/{name}", item)


def _verify_checksums(path: Path, handle: h5py.File, data: dict[str, np.ndarray]) -> None:
    """Every loaded dataset against its checksums (a store without them is rebuilt by
    :func:`hint_lightning.prepare.easyvqa.ensure_store` before it gets here)."""
    checksums = Checksums.read(handle, path)
    if checksums is None:
        return
    image_id, question_id = data["images/image_id"], data["questions/question_id"]
    for key, values in data.items():
        if key.startswith("images/"):

            def item(start: int, stop: int) -> str:
                return f"image {int(image_id[start])}" if start < len(image_id) else "an image"

        else:

            def item(start: int, stop: int) -> str:
                ids = question_id[start:stop]
                return f"questions {int(ids[0])}..{int(ids[-1])}" if len(ids) else "questions"

        checksums.verify_array(key, values, item)


def load_store(path: str | os.PathLike[str]) -> EasyVQACPArrays:
    """Loads a whole store into memory and checks it.

    Args:
        path: A file written by :func:`write_store`.

    Returns:
        The arrays.

    Raises:
        StoreError: (a ``ValueError``) When the file is unreadable (truncated), has another
            :data:`EASYVQA_STORE_VERSION`, an index out of range (e.g. an answer index of -1),
            a non-finite feature, or content that differs from its checksums; the message
            names the file, the item and how to rebuild.
    """
    path = Path(path)
    with open_store(path, "easy-VQA-CP store") as handle, read_errors(path, "the store"):
        version = int(handle.attrs.get("format_version", -1))
        if version != EASYVQA_STORE_VERSION:
            raise StoreError(
                path, f"store format {version}, this code reads {EASYVQA_STORE_VERSION}"
            )
        data = {f"images/{name}": handle["images"][name][()] for name in IMAGE_DATASETS}
        for name in QUESTION_DATASETS:
            dataset = handle["questions"][name]
            strings = h5py.check_string_dtype(dataset.dtype) is not None
            data[f"questions/{name}"] = _strings(dataset) if strings else dataset[()]
        attrs = {
            key: json.loads(handle.attrs[key])
            for key in ("answers", "tokens", "templates", "split_stats", "params")
        }
        arrays = EasyVQACPArrays(
            **{key.split("/")[1]: value for key, value in data.items() if key in _FIELDS},
            answers=tuple(attrs["answers"]),
            tokens_vocab=tuple(attrs["tokens"]),
            templates=tuple(attrs["templates"]),
            split_stats=attrs["split_stats"],
            params=attrs["params"],
        )
        _check_store(path, arrays)
        _verify_checksums(path, handle, data)
    return arrays


_FIELDS: Final = frozenset(
    f"{group}/{name}"
    for group, names in (("images", IMAGE_DATASETS), ("questions", QUESTION_DATASETS))
    for name in names
    if name not in ("shape_box", "mask_area")
)
"""The datasets that :class:`EasyVQACPArrays` holds."""


def answer_type_counts(arrays: EasyVQACPArrays, rows: np.ndarray) -> dict[str, int]:
    """Questions per answer type among ``rows`` (for reports).

    Args:
        arrays: A loaded store.
        rows: Int array of question rows.

    Returns:
        ``{answer_type: count}`` for the types present.
    """
    counts = Counter(arrays.answer_type[rows].tolist())
    return {ANSWER_TYPES[k]: v for k, v in sorted(counts.items())}
