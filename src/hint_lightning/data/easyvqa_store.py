"""The processed easy-VQA-CP store: build once (HDF5, cached by parameters), load into memory.

:func:`ensure_store` returns the path of the store for a set of :class:`EasyVQACPParams`,
building it first when it is missing. The file name carries a short hash of every parameter
that changes its content (split seed, test fraction, leak, proposal seed, number of proposals,
blur sigma, question length and :data:`FORMAT_VERSION`), so changing any of them builds a new
store next to the old ones, and an unchanged configuration reuses the file. A build writes
to a temporary file in the same folder and renames it onto the final name (``os.replace``), so
a reader never sees a half-written store and an interrupted build leaves nothing behind.

The build (about 4 s on 2 CPU cores, with a ``rich`` progress bar) follows the
easy-VQA-CP feasibility study:

1. load the 5,000 images; shape masks, shape boxes, 24 proposals per image
   (:mod:`hint_lightning.data.easyvqa_images`, generator ``numpy.random.default_rng(seed)``);
2. 123-d proposal features, standardized per dimension over all proposals of all images
   (``mean``/``std`` are stored; a constant dimension gets std 1), and the human importance
   of every proposal under the blurred shape mask;
3. question templates, official VQA question types, answer types and token ids
   (:mod:`hint_lightning.text.tokenize`, vocabulary over all questions);
4. the VQA-CP re-split of all 48,248 questions (train and test pooled) with
   :func:`hint_lightning.data.cp_split.make_cp_split` over the **templates**, with
   ``keep_one=True``, ``answer_as_concept=True`` and the soft-CP ``leak`` (default 0.1: our
   documented deviation from VQA-CP; a strict split leaves every yes/no template with a single
   train answer). The split report is printed.

Layout (no pickle; vocabularies and statistics are JSON string attributes of the root):

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
``questions/question_id``        [Q]           int64      see :mod:`hint_lightning.data.easyvqa`
``questions/image_index``        [Q]           int64      row in ``images/``
``questions/tokens``             [Q, T]        int64      token ids, 0-padded
``questions/answer``             [Q]           int64      index into the ``answers`` attribute
``questions/answer_type``        [Q]           int64      index into ``ANSWER_TYPES``
``questions/template``           [Q]           int64      index into the ``templates`` attribute
``questions/question_type``      [Q]           str        official VQA question type
``questions/question``           [Q]           str        question text
``questions/split``              [Q]           int8       0 = CP-train, 1 = CP-test
===============================  ============  =========  =====================================

Root attributes: ``format_version``, ``params``, ``answers``, ``tokens``, ``templates``,
``split_stats`` (JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.data import easyvqa_images as images_mod
from hint_lightning.data.cp_split import CPSplit, format_split_report, make_cp_split
from hint_lightning.data.easyvqa import (
    EasyVQASource,
    answer_type_index,
    question_template,
    vqa_question_types,
)
from hint_lightning.text.answers import ANSWER_TYPES
from hint_lightning.text.tokenize import build_token_vocab, encode_questions, tokenize
from hint_lightning.utils.io import atomic_path

__all__ = [
    "FORMAT_VERSION",
    "SPLIT_TEST",
    "SPLIT_TRAIN",
    "EasyVQACPArrays",
    "EasyVQACPParams",
    "answer_type_counts",
    "build_store",
    "ensure_store",
    "load_store",
    "prior_shift_summary",
]

FORMAT_VERSION: Final = 1
"""Bump when the store's content or layout changes: old stores are then rebuilt."""
SPLIT_TRAIN: Final = 0
"""``questions/split`` code of CP-train questions."""
SPLIT_TEST: Final = 1
"""``questions/split`` code of CP-test questions."""

_CHUNK: Final = 250
"""Images per step of the build (bounds the memory of the feature pass, drives the bar)."""


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
        return {**asdict(self), "format_version": FORMAT_VERSION}

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


def _progress(console: Console) -> Progress:
    """The build's progress bar."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _image_arrays(
    source: EasyVQASource, params: EasyVQACPParams, progress: Progress
) -> dict[str, np.ndarray]:
    """Pixels -> proposals, standardized features and human importance for every image.

    Args:
        source: The raw data.
        params: Build parameters.
        progress: Live progress bar.

    Returns:
        ``image_id`` [I], ``features`` [I, N, D], ``boxes`` [I, N, 4] (normalized),
        ``human_importance`` [I, N], ``shape_box`` [I, 4] (normalized), ``mask_area`` [I],
        ``feature_mean`` and ``feature_std`` [D].
    """
    image_ids = source.sorted_image_ids()
    paths = [source.image_paths[int(i)] for i in image_ids]
    starts = range(0, len(paths), _CHUNK)
    task = progress.add_task("loading images", total=len(paths))
    chunks = []
    for start in starts:
        chunks.append(images_mod.load_images(paths[start : start + _CHUNK]))
        progress.advance(task, len(chunks[-1]))
    pixels = np.concatenate(chunks)
    num_images, height, width, _ = pixels.shape

    masks = images_mod.shape_masks(pixels)
    shape_boxes = images_mod.mask_boxes(masks)
    rng = np.random.default_rng(params.seed)
    boxes = images_mod.make_proposals(shape_boxes, rng, height, width, params.num_proposals)

    task = progress.add_task("features, human importance", total=num_images)
    features = np.empty((num_images, params.num_proposals, images_mod.FEATURE_DIM), np.float32)
    importance = np.empty((num_images, params.num_proposals), np.float32)
    for start in starts:
        part = slice(start, start + _CHUNK)
        features[part] = images_mod.proposal_features(pixels[part], boxes[part])
        maps = images_mod.attention_maps(masks[part], params.blur_sigma)
        importance[part] = images_mod.human_importance(maps, boxes[part])
        progress.advance(task, len(pixels[part]))

    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    std[std < 1e-6] = 1.0
    features = ((features - mean) / std).astype(np.float32)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return {
        "image_id": image_ids,
        "features": features,
        "boxes": (boxes / scale).astype(np.float32),
        "human_importance": importance,
        "shape_box": (shape_boxes / scale).astype(np.float32),
        "mask_area": masks.sum(axis=(1, 2)).astype(np.int64),
        "feature_mean": mean.astype(np.float32),
        "feature_std": std.astype(np.float32),
    }


def _question_arrays(
    source: EasyVQASource, image_ids: np.ndarray, params: EasyVQACPParams
) -> tuple[dict[str, np.ndarray], dict[str, Any], CPSplit]:
    """Templates, types, tokens, answers and the CP split of every question.

    Args:
        source: The raw data.
        image_ids: Int64 array of shape [I], the image id of each store row (ascending).
        params: Build parameters.

    Returns:
        ``(arrays, vocabularies, split)``: the ``questions/`` arrays, the JSON vocabularies
        (``answers``, ``tokens``, ``templates``) and the CP split.
    """
    templates_per_question = [question_template(q) for q in source.questions]
    templates = tuple(sorted(set(templates_per_question)))
    template_index = {t: i for i, t in enumerate(templates)}
    tokens_vocab = build_token_vocab(tokenize(q) for q in set(source.questions))
    token_index = {t: i for i, t in enumerate(tokens_vocab)}
    answer_index = {a: i for i, a in enumerate(source.answer_vocab)}
    unknown = set(source.answers) - set(answer_index)
    if unknown:
        raise ValueError(f"answers outside the answer vocabulary: {sorted(unknown)}")

    split = make_cp_split(
        source.questions,
        templates_per_question,
        source.answers,
        test_fraction=params.test_fraction,
        seed=params.split_seed,
        keep_one=True,
        answer_as_concept=True,
        leak=params.leak,
    )
    split_code = np.full(source.num_questions, SPLIT_TRAIN, dtype=np.int8)
    split_code[split.test] = SPLIT_TEST
    arrays = {
        "question_id": source.question_ids.astype(np.int64),
        "image_index": np.searchsorted(image_ids, source.image_ids).astype(np.int64),
        "tokens": encode_questions(source.questions, token_index, params.max_question_length),
        "answer": np.array([answer_index[a] for a in source.answers], dtype=np.int64),
        "answer_type": answer_type_index(source.answers),
        "template": np.array([template_index[t] for t in templates_per_question], np.int64),
        "question_type": np.array(vqa_question_types(source.questions), dtype=object),
        "question": np.array(source.questions, dtype=object),
        "split": split_code,
    }
    vocabularies = {
        "answers": list(source.answer_vocab),
        "tokens": list(tokens_vocab),
        "templates": list(templates),
    }
    return arrays, vocabularies, split


def prior_shift_summary(split_stats: dict[str, Any]) -> str:
    """One line: for how many yes/no templates with test questions the majority answer flips.

    Args:
        split_stats: ``CPSplit.stats`` of a split over templates.

    Returns:
        Text such as ``"prior shift: the train-majority answer differs from the test-majority
        answer in 11 of 11 yes/no templates with CP-test questions"``.

    Example:
        >>> stats = {"answers_per_question_type": {
        ...     "is a <S> present": {"train": {"no": 90, "yes": 10}, "test": {"yes": 80}},
        ...     "what color is the <S>": {"train": {"red": 5}, "test": {}}}}
        >>> prior_shift_summary(stats)  # doctest: +NORMALIZE_WHITESPACE
        'prior shift: the train-majority answer differs from the test-majority answer in 1 of 1
        yes/no templates with CP-test questions'
    """
    flipped = total = 0
    for sides in split_stats["answers_per_question_type"].values():
        train, test = sides["train"], sides["test"]
        if not test or not set(train) | set(test) <= {"yes", "no"}:
            continue
        total += 1
        flipped += bool(train) and next(iter(train)) != next(iter(test))
    return (
        "prior shift: the train-majority answer differs from the test-majority answer in "
        f"{flipped} of {total} yes/no templates with CP-test questions"
    )


def _write_json_attrs(handle: h5py.File, payload: dict[str, Any]) -> None:
    """Stores each value as a JSON string attribute of ``handle``."""
    for key, value in payload.items():
        handle.attrs[key] = json.dumps(value)


def build_store(
    path: str | os.PathLike[str],
    params: EasyVQACPParams,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """Builds the store and writes it atomically to ``path`` (overwriting it).

    Args:
        path: Destination ``.h5`` file; its folder is created if needed.
        params: Build parameters.
        source: The raw data; default :meth:`EasyVQASource.from_package`.
        console: Where the progress bar and the split report go (default: a new stdout
            ``Console``).

    Returns:
        ``path`` as a Path.
    """
    console = console or Console()
    source = source or EasyVQASource.from_package()
    began = time.perf_counter()
    with _progress(console) as progress:
        image_arrays = _image_arrays(source, params, progress)
        task = progress.add_task("questions, CP split", total=1)
        question_arrays, vocabularies, split = _question_arrays(
            source, image_arrays["image_id"], params
        )
        progress.advance(task)

        task = progress.add_task("writing store", total=1)
        strings = h5py.string_dtype("utf-8")
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            images = handle.create_group("images")
            for key in ("image_id", "features", "boxes", "human_importance", "shape_box"):
                images.create_dataset(key, data=image_arrays[key])
            images.create_dataset("mask_area", data=image_arrays["mask_area"])
            handle.create_dataset("features/mean", data=image_arrays["feature_mean"])
            handle.create_dataset("features/std", data=image_arrays["feature_std"])
            questions = handle.create_group("questions")
            for key, value in question_arrays.items():
                dtype = strings if value.dtype == object else None
                questions.create_dataset(key, data=value, dtype=dtype)
            handle.attrs["format_version"] = FORMAT_VERSION
            _write_json_attrs(
                handle, {"params": params.to_dict(), "split_stats": split.stats, **vocabularies}
            )
        progress.advance(task)

    console.print(format_split_report(split), markup=False, highlight=False, soft_wrap=True)
    console.print(prior_shift_summary(split.stats), markup=False, highlight=False, soft_wrap=True)
    num_images, num_proposals, feature_dim = image_arrays["features"].shape
    console.print(
        f"easy-VQA-CP store: {num_images:,} images x {num_proposals} proposals x "
        f"{feature_dim} features, {len(question_arrays['question_id']):,} questions, "
        f"built in {time.perf_counter() - began:.1f} s -> {path}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return Path(path)


def ensure_store(
    cache_dir: str | os.PathLike[str],
    params: EasyVQACPParams,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """The store for ``params`` in ``cache_dir``, built first if it does not exist yet.

    Args:
        cache_dir: Folder of the stores (created if needed).
        params: Build parameters (they choose the file name).
        source: The raw data; default :meth:`EasyVQASource.from_package`.
        console: Where messages go.

    Returns:
        Path of ``<cache_dir>/easyvqa_cp_<digest>.h5``.
    """
    path = Path(cache_dir) / params.filename()
    if path.is_file():
        (console or Console()).print(
            f"easy-VQA-CP store: reusing {path}", markup=False, highlight=False, soft_wrap=True
        )
        return path
    return build_store(path, params, source=source, console=console)


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    """A string dataset as an object array of str."""
    return np.array(dataset.asstr()[()], dtype=object)


def load_store(path: str | os.PathLike[str]) -> EasyVQACPArrays:
    """Loads a whole store into memory (about 60 MB for the default parameters).

    Args:
        path: A file written by :func:`build_store`.

    Returns:
        The arrays.

    Raises:
        ValueError: If the file has another :data:`FORMAT_VERSION`.
    """
    with h5py.File(path, "r") as handle:
        version = int(handle.attrs["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{path} has store format {version}, this code reads {FORMAT_VERSION}: "
                "delete it to rebuild"
            )
        images, questions = handle["images"], handle["questions"]
        attrs = {key: json.loads(handle.attrs[key]) for key in ("answers", "tokens", "templates")}
        return EasyVQACPArrays(
            image_id=images["image_id"][()],
            features=images["features"][()],
            boxes=images["boxes"][()],
            human_importance=images["human_importance"][()],
            question_id=questions["question_id"][()],
            image_index=questions["image_index"][()],
            tokens=questions["tokens"][()],
            answer=questions["answer"][()],
            answer_type=questions["answer_type"][()],
            template=questions["template"][()],
            question_type=_strings(questions["question_type"]),
            question=_strings(questions["question"]),
            split=questions["split"][()],
            answers=tuple(attrs["answers"]),
            tokens_vocab=tuple(attrs["tokens"]),
            templates=tuple(attrs["templates"]),
            split_stats=json.loads(handle.attrs["split_stats"]),
            params=json.loads(handle.attrs["params"]),
        )


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
