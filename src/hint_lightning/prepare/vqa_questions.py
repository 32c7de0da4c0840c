"""VQA v2 / VQA-CP v2 questions and annotations -> vocabularies and split stores.

Reading (formats of ``/work/shared/design`` section 2, as officially distributed):

* **VQA-CP v2** (``layout="vqacp"``): the top level of ``vqacp_v2_*_questions.json`` and
  ``vqacp_v2_*_annotations.json`` is a plain JSON *list*; every item also carries
  ``"coco_split"`` (``"train2014"`` or ``"val2014"``).
* **VQA v2** (``layout="vqa_v2"``): the top level is a dict whose ``"questions"`` (resp.
  ``"annotations"``) entry is the list of items, next to ``"info"``, ``"license"``,
  ``"data_type"``, ``"data_subtype"`` (and ``"task_type"`` in question files).

A file of one layout given where the other is expected fails with a message that names the file
and the layout it looks like. An item without a required key fails with a message that names
the file, the question id and the missing keys.

Writing: :func:`write_split_store` writes the split store of the prepared-data contract
(:mod:`hint_lightning.prepare`), atomically. Per question it stores

* ``target_ids`` / ``target_scores``: the soft training target of the common UpDn code
  (:func:`soft_target_scores`: 0.3 / 0.6 / 0.9 / 1.0 for 1 / 2 / 3 / 4+ matching human answers);
* ``score_ids`` / ``score_values``: the *official* accuracy of every candidate answer that
  scores above 0 (:class:`hint_lightning.metrics.vqa_accuracy.AnswerScorer`), which is what
  evaluation reports.

Both are padded with id ``-1`` (score 0) to ``K = 10`` columns (the number of human answers);
should some question have more than ``K`` nonzero candidates (only possible with more than 10
human answers or a vocabulary with several spellings of one normalized answer) ``K`` grows to
fit.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import h5py
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.text.answer_scores import AnswerScorer
from hint_lightning.text.answers import ANSWER_TYPES, normalize_answer
from hint_lightning.text.tokenize import encode_questions
from hint_lightning.text.tokens import PAD_INDEX
from hint_lightning.utils.io import atomic_path

__all__ = [
    "ANNOTATION_KEYS",
    "MAX_LISTED",
    "NUM_TARGET_COLUMNS",
    "QUESTION_KEYS",
    "SPLIT_STORE_VERSION",
    "ImageIndex",
    "Layout",
    "build_answer_vocab",
    "check_images",
    "describe_sources",
    "join",
    "load_annotations",
    "load_glove",
    "load_questions",
    "soft_target_scores",
    "write_split_store",
]

Layout = Literal["vqacp", "vqa_v2"]
"""``"vqacp"``: plain JSON lists (VQA-CP v2); ``"vqa_v2"``: the official wrapper dicts."""

SPLIT_STORE_VERSION: Final = 1
"""``format_version`` attribute of the split stores written here."""
NUM_TARGET_COLUMNS: Final = 10
"""K, the columns of ``target_*`` and ``score_*`` (at most 10 distinct human answers)."""
MAX_LISTED: Final = 5
"""How many offending ids an error message lists (followed by the total count)."""

QUESTION_KEYS: Final[tuple[str, ...]] = ("question_id", "image_id", "question")
"""Keys every question item has (VQA-CP items also have ``"coco_split"``)."""
ANNOTATION_KEYS: Final[tuple[str, ...]] = (
    "question_id",
    "image_id",
    "question_type",
    "answer_type",
    "multiple_choice_answer",
    "answers",
)
"""Keys every annotation item has (VQA-CP items also have ``"coco_split"``)."""

_VQACP_EXTRA_KEYS: Final[tuple[str, ...]] = ("coco_split",)
_LAYOUT_NAMES: Final[Mapping[str, str]] = {
    "vqacp": "VQA-CP v2 (a plain JSON list of items with 'coco_split')",
    "vqa_v2": "VQA v2 (a JSON dict with 'info', 'data_subtype', ... and the list of items)",
}
_SOFT_SCORES: Final[Mapping[int, float]] = {1: 0.3, 2: 0.6, 3: 0.9}
"""Soft target of an answer given by 1, 2 or 3 humans; 4 or more give 1.0."""


class ImageIndex(Protocol):
    """What :func:`check_images` needs of a feature store."""

    @property
    def image_ids(self) -> Any:
        """The image ids of the store (an array or a sequence of ints)."""
        ...


# --------------------------------------------------------------------------------------------
# Reading and validating the raw files.
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    """Parses a JSON file, naming the file when it is not valid JSON."""
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def _check_layout(payload: Any, path: Path, layout: Layout, list_key: str) -> list[Any]:
    """Returns the item list of a raw file after checking its top-level layout.

    Args:
        payload: The parsed JSON.
        path: The file (for messages).
        layout: The expected layout.
        list_key: ``"questions"`` or ``"annotations"``: the item list of the VQA v2 wrapper.

    Returns:
        The list of items.

    Raises:
        ValueError: If the file has the other layout or neither.
    """
    if layout not in _LAYOUT_NAMES:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(_LAYOUT_NAMES)}")
    other_key = "annotations" if list_key == "questions" else "questions"
    if layout == "vqacp":
        if isinstance(payload, list):
            return payload
        if isinstance(payload, dict) and list_key in payload:
            raise ValueError(
                f"{path}: expected the VQA-CP v2 layout (a plain JSON list of {list_key}), but "
                f"the file looks like {_LAYOUT_NAMES['vqa_v2']}; use layout='vqa_v2' for it"
            )
    else:
        if isinstance(payload, dict) and isinstance(payload.get(list_key), list):
            return payload[list_key]
        if isinstance(payload, list):
            raise ValueError(
                f"{path}: expected the VQA v2 layout (a dict with a {list_key!r} list), but the "
                f"file looks like {_LAYOUT_NAMES['vqacp']}; use layout='vqacp' for it"
            )
    if isinstance(payload, dict) and other_key in payload:
        raise ValueError(
            f"{path}: expected a {list_key} file but it looks like an {other_key} file "
            f"(top-level keys {sorted(payload)})"
        )
    found = f"a dict with keys {sorted(payload)}" if isinstance(payload, dict) else type(payload)
    raise ValueError(f"{path}: expected {_LAYOUT_NAMES[layout]}, found {found}")


def _check_items(items: list[Any], path: Path, required: Sequence[str], kind: str) -> None:
    """Checks that every item is a dict with the required keys.

    Raises:
        ValueError: Naming the file, the first offending question id (or item position) and
            the missing keys.
    """
    required_set = set(required)
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: {kind} item #{position} is not a JSON object: {item!r:.80}")
        if required_set <= item.keys():
            continue
        missing = [key for key in required if key not in item]
        where = (
            f"question_id {item['question_id']}"
            if "question_id" in item
            else f"item #{position} (no question_id)"
        )
        raise ValueError(f"{path}: {kind} of {where} lacks the keys {missing}")


def _load_items(path: str | os.PathLike[str], layout: Layout, list_key: str) -> list[dict]:
    """Reads the items of a question or annotation file and validates their keys."""
    path = Path(path)
    items = _check_layout(_read_json(path), path, layout, list_key)
    base = QUESTION_KEYS if list_key == "questions" else ANNOTATION_KEYS
    required = base + _VQACP_EXTRA_KEYS if layout == "vqacp" else base
    kind = "question" if list_key == "questions" else "annotation"
    _check_items(items, path, required, kind)
    return items


def load_questions(path: str | os.PathLike[str], layout: Layout) -> list[dict]:
    """Reads a raw question file.

    Args:
        path: ``vqacp_v2_{train,test}_questions.json`` (``layout="vqacp"``) or
            ``v2_OpenEnded_mscoco_{train2014,val2014}_questions.json`` (``layout="vqa_v2"``).
        layout: The layout the file must have.

    Returns:
        The question items as in the file (dicts with at least ``question_id``, ``image_id``,
        ``question``; plus ``coco_split`` for VQA-CP).

    Raises:
        ValueError: If the file is not valid JSON, has the other layout (the message says which
            layout it looks like), is an annotation file, or an item lacks a key (the message
            names the file and the question id).
    """
    return _load_items(path, layout, "questions")


def load_annotations(path: str | os.PathLike[str], layout: Layout) -> list[dict]:
    """Reads a raw annotation file.

    Args:
        path: ``vqacp_v2_{train,test}_annotations.json`` (``layout="vqacp"``) or
            ``v2_mscoco_{train2014,val2014}_annotations.json`` (``layout="vqa_v2"``).
        layout: The layout the file must have.

    Returns:
        The annotation items as in the file (dicts with at least :data:`ANNOTATION_KEYS`;
        plus ``coco_split`` for VQA-CP).

    Raises:
        ValueError: As :func:`load_questions`.
    """
    return _load_items(path, layout, "annotations")


def _listed(values: Sequence[Any]) -> str:
    """``"1, 2, 3, 4, 5, ... (7 in all)"``: at most :data:`MAX_LISTED` values and the count."""
    shown = ", ".join(str(v) for v in values[:MAX_LISTED])
    more = ", ..." if len(values) > MAX_LISTED else ""
    return f"{shown}{more} ({len(values)} in all)"


def _human_answers(annotation: Mapping[str, Any], path: Path) -> list[str]:
    """The raw human answer strings of one annotation item.

    Raises:
        ValueError: If ``answers`` is not a non-empty list of objects with an ``"answer"``.
    """
    answers = annotation["answers"]
    qid = annotation["question_id"]
    if not isinstance(answers, list) or not answers:
        raise ValueError(f"{path}: annotation of question_id {qid}: 'answers' is not a list")
    try:
        return [str(answer["answer"]) for answer in answers]
    except (TypeError, KeyError) as error:
        raise ValueError(
            f"{path}: annotation of question_id {qid}: every answer needs an 'answer' key"
        ) from error


def _index_by_question(items: Sequence[Mapping[str, Any]], path: Path, kind: str) -> dict:
    """``{question_id: item}``; duplicated ids are an error naming them."""
    index = {item["question_id"]: item for item in items}
    if len(index) != len(items):
        counts = Counter(item["question_id"] for item in items)
        duplicated = sorted(qid for qid, count in counts.items() if count > 1)
        raise ValueError(f"{path}: duplicated {kind} question ids {_listed(duplicated)}")
    return index


def join(
    questions: Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
    questions_path: str | os.PathLike[str],
    annotations_path: str | os.PathLike[str],
) -> list[dict]:
    """Joins questions with their annotations by ``question_id``.

    Annotations without a question are ignored (a question file may be a subset).

    Args:
        questions: Items from :func:`load_questions`.
        annotations: Items from :func:`load_annotations`.
        questions_path: The question file (for messages).
        annotations_path: The annotation file (for messages).

    Returns:
        One entry per question, in question-file order: ``{"question_id": int, "image_id": int,
        "question": str, "question_type": str, "answer_type": str,
        "multiple_choice_answer": str, "answers": list[str] (raw human answers),
        "coco_split": str | None}``.

    Raises:
        ValueError: If questions lack annotations (names up to 5 ids, the count and both
            files), ids are duplicated, the image ids of a question and its annotation differ,
            or an annotation's ``answers`` are malformed.
    """
    questions_path, annotations_path = Path(questions_path), Path(annotations_path)
    _index_by_question(questions, questions_path, "question")
    by_id = _index_by_question(annotations, annotations_path, "annotation")
    missing = [q["question_id"] for q in questions if q["question_id"] not in by_id]
    if missing:
        raise ValueError(
            f"no annotation for question ids {_listed(missing)} of {questions_path} in "
            f"{annotations_path}"
        )
    entries = []
    for question in questions:
        annotation = by_id[question["question_id"]]
        if annotation["image_id"] != question["image_id"]:
            raise ValueError(
                f"question_id {question['question_id']}: image_id {question['image_id']} in "
                f"{questions_path} but {annotation['image_id']} in {annotations_path}"
            )
        entries.append(
            {
                "question_id": int(question["question_id"]),
                "image_id": int(question["image_id"]),
                "question": str(question["question"]),
                "question_type": str(annotation["question_type"]),
                "answer_type": str(annotation["answer_type"]),
                "multiple_choice_answer": str(annotation["multiple_choice_answer"]),
                "answers": _human_answers(annotation, annotations_path),
                "coco_split": question.get("coco_split"),
            }
        )
    return entries


# --------------------------------------------------------------------------------------------
# Answers: vocabulary and targets.
# --------------------------------------------------------------------------------------------


def build_answer_vocab(
    annotations: Iterable[Mapping[str, Any]], min_count: int = 9
) -> tuple[str, ...]:
    """The answer vocabulary: normalized ``multiple_choice_answer`` of at least ``min_count``
    questions.

    Each answer is normalized with the official
    :func:`~hint_lightning.metrics.vqa_accuracy.normalize_answer`; a question id seen twice
    (e.g. the same annotations passed twice) counts once; empty normalized answers are
    dropped. With the annotations of VQA v2 train + val and ``min_count=9`` (the common UpDn
    recipe) this gives the 3,129 answers of the literature.

    Args:
        annotations: Annotation items (or joined entries) with ``question_id`` and
            ``multiple_choice_answer``.
        min_count: Keep answers that are the multiple-choice answer of at least this many
            questions.

    Returns:
        The answers ordered by count (descending), ties alphabetically: deterministic and
        independent of the order of the annotations.

    Raises:
        ValueError: If ``min_count < 1``.

    Example:
        >>> items = [
        ...     {"question_id": i, "multiple_choice_answer": a}
        ...     for i, a in enumerate(["Yes", "yes", "no", "two", "2", "cat", "dog"])
        ... ]
        >>> build_answer_vocab(items, min_count=1)
        ('2', 'yes', 'cat', 'dog', 'no')
        >>> build_answer_vocab(items, min_count=2)
        ('2', 'yes')
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    seen: set[int] = set()
    counts: Counter[str] = Counter()
    normalized: dict[str, str] = {}
    for item in annotations:
        qid = item["question_id"]
        if qid in seen:
            continue
        seen.add(qid)
        raw = item["multiple_choice_answer"]
        answer = normalized.get(raw)
        if answer is None:
            answer = normalized.setdefault(raw, normalize_answer(raw))
        counts[answer] += 1
    kept = [(-count, answer) for answer, count in counts.items() if count >= min_count and answer]
    return tuple(answer for _, answer in sorted(kept))


def _soft_score(count: int) -> float:
    """0.3 / 0.6 / 0.9 / 1.0 for 1 / 2 / 3 / 4+ matching human answers."""
    return _SOFT_SCORES.get(count, 1.0)


def soft_target_scores(
    answers: Sequence[str],
    answer_index: Mapping[str, int],
    normalized: dict[str, str] | None = None,
) -> dict[int, float]:
    """Soft training target of one question, as in the common UpDn code.

    Every human answer is normalized (:func:`normalize_answer`, always: unlike the official
    metric there is no all-identical exception); each in-vocabulary answer given ``c`` times
    gets ``{1: 0.3, 2: 0.6, 3: 0.9}.get(c, 1.0)`` (the UpDn ``get_score``, i.e.
    ``min(1, 0.3 * c)`` with exact decimals).

    Args:
        answers: The raw human answers (usually 10).
        answer_index: The vocabulary, normalized answer -> class index.
        normalized: Optional cache raw answer -> normalized answer, filled as a side effect
            (makes a pass over a whole dataset several times faster).

    Returns:
        ``{class index: score}`` for the in-vocabulary answers, ordered by class index.

    Example:
        >>> index = {"2": 0, "red": 1, "yes": 2}
        >>> soft_target_scores(["two", "2", "Two", "red", "blue", "2."], index)
        {0: 1.0, 1: 0.3}
        >>> soft_target_scores(["Yes"] * 3 + ["no"], index)
        {2: 0.9}
    """
    cache: dict[str, str] = {} if normalized is None else normalized
    counts: Counter[int] = Counter()
    for raw in answers:
        answer = cache.get(raw)
        if answer is None:
            answer = cache.setdefault(raw, normalize_answer(raw))
        class_index = answer_index.get(answer)
        if class_index is not None:
            counts[class_index] += 1
    return {class_index: _soft_score(counts[class_index]) for class_index in sorted(counts)}


# --------------------------------------------------------------------------------------------
# The split store.
# --------------------------------------------------------------------------------------------


def describe_sources(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Name, size and modification time of input files, for up-to-date checks.

    Args:
        paths: Files or folders (a folder is described by the total size and the latest
            modification time of the files below it).

    Returns:
        ``[{"name": str, "size": int, "mtime": float}, ...]`` in the order given.

    Raises:
        FileNotFoundError: If a path does not exist.
    """
    described = []
    for path in map(Path, paths):
        if path.is_dir():
            stats = [p.stat() for p in path.rglob("*") if p.is_file()]
            size = sum(s.st_size for s in stats)
            mtime = max((s.st_mtime for s in stats), default=path.stat().st_mtime)
        else:
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime
        described.append({"name": path.name, "size": int(size), "mtime": float(mtime)})
    return described


def _category_codes(
    values: Sequence[str], categories: Sequence[str], what: str, qids: Sequence[int], dtype: Any
) -> np.ndarray:
    """Indices of ``values`` in ``categories``; unknown values are an error naming them."""
    lookup = {name: i for i, name in enumerate(categories)}
    codes = np.fromiter((lookup.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        unknown = sorted({values[i] for i in bad})
        examples = [qids[i] for i in bad]
        raise ValueError(
            f"unknown {what} {unknown[:MAX_LISTED]} (known: {list(categories)[:8]}...) in "
            f"question ids {_listed(examples)}"
        )
    return codes.astype(dtype)


def _padded_rows(rows: Sequence[Mapping[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Pads ``{id: value}`` rows into ``[Q, K]`` id (-1 padded) and value (0 padded) arrays.

    ``K`` is :data:`NUM_TARGET_COLUMNS`, or the longest row if longer.
    """
    width = max(NUM_TARGET_COLUMNS, max((len(r) for r in rows), default=0))
    ids = np.full((len(rows), width), -1, dtype=np.int32)
    values = np.zeros((len(rows), width), dtype=np.float32)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    flat_ids = np.fromiter((k for r in rows for k in r), dtype=np.int32, count=int(lengths.sum()))
    flat_values = np.fromiter(
        (v for r in rows for v in r.values()), dtype=np.float32, count=int(lengths.sum())
    )
    row_index = np.repeat(np.arange(len(rows)), lengths)
    starts = np.cumsum(lengths) - lengths
    column_index = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)
    ids[row_index, column_index] = flat_ids
    values[row_index, column_index] = flat_values
    return ids, values


def _answer_rows(
    entries: Sequence[Mapping[str, Any]],
    answer_index: Mapping[str, int],
    progress: Progress | None,
) -> tuple[list[dict[int, float]], list[dict[int, float]]]:
    """Soft targets and official candidate scores of every question (the slow per-question
    part: about 30 us per question, with caches of repeated answer lists)."""
    scorer = AnswerScorer(answer_index)
    normalized: dict[str, str] = {}
    score_cache: dict[tuple[str, ...], dict[int, float]] = {}
    targets: list[dict[int, float]] = []
    scores: list[dict[int, float]] = []
    task = progress.add_task("answers", total=len(entries)) if progress is not None else None
    for i, entry in enumerate(entries):
        answers = tuple(entry["answers"])
        targets.append(soft_target_scores(answers, answer_index, normalized))
        cached = score_cache.get(answers)
        if cached is None:
            cached = dict(sorted(scorer(answers).items()))
            if len(score_cache) < 200_000:
                score_cache[answers] = cached
        scores.append(cached)
        if progress is not None and task is not None and (i + 1) % 10_000 == 0:
            progress.update(task, completed=i + 1)
    if progress is not None and task is not None:
        progress.update(task, completed=len(entries))
    return targets, scores


def _progress_bar() -> Progress:
    """A rich progress bar for the prepare steps."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def write_split_store(
    out_path: str | os.PathLike[str],
    entries: list[dict],
    *,
    answers: Sequence[str],
    token_index: Mapping[str, int],
    question_types: Sequence[str],
    dataset: str,
    split: str,
    feature_store_name: str,
    sources: Sequence[str | os.PathLike[str]],
    max_length: int = 14,
    progress: bool = True,
) -> dict[str, Any]:
    """Writes the split store of one split (layout: :mod:`hint_lightning.prepare`), atomically.

    Arrays (``Q = len(entries)``, ``T = max_length``, ``K`` = :data:`NUM_TARGET_COLUMNS`):
    ``question_id [Q] int64``, ``image_id [Q] int64``, ``tokens [Q, T] int32``,
    ``answer_type [Q] int8``, ``question_type [Q] int16``, ``target_ids [Q, K] int32``,
    ``target_scores [Q, K] float32``, ``score_ids [Q, K] int32``, ``score_values [Q, K]
    float32`` (ids padded with -1, values with 0, both sorted by class id within a row).
    Attributes: ``format_version``, ``dataset``, ``split``, ``question_types`` (JSON list),
    ``feature_store``, ``sources`` (JSON, see :func:`describe_sources`).

    Args:
        out_path: The ``.h5`` file to write (replaced atomically; no temporary file remains).
        entries: Joined questions (:func:`join`), in the order to store.
        answers: The answer vocabulary; class index ``a`` is ``answers[a]``.
        token_index: Question token -> id (``<pad>`` 0, ``<unk>`` 1).
        question_types: The question-type list (e.g.
            :func:`hint_lightning.text.question_types.load_question_types`); every entry's
            ``question_type`` must be in it.
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        split: ``"train"``, ``"test"`` or ``"val"``.
        feature_store_name: Name of the feature store the questions' images are in.
        sources: The raw files the entries come from (recorded with size and mtime).
        max_length: T, tokens per question.
        progress: Show a rich progress bar.

    Returns:
        ``{"path", "questions", "images", "with_target", "without_target", "target_columns"}``:
        ``with_target`` counts questions with at least one in-vocabulary human answer.

    Raises:
        ValueError: If an answer type or question type is unknown (naming question ids).
    """
    out_path = Path(out_path)
    qids = [entry["question_id"] for entry in entries]
    answer_type = _category_codes(
        [e["answer_type"] for e in entries], ANSWER_TYPES, "answer types", qids, np.int8
    )
    question_type = _category_codes(
        [e["question_type"] for e in entries], question_types, "question types", qids, np.int16
    )
    tokens = encode_questions([e["question"] for e in entries], token_index, max_length)
    answer_index = {answer: i for i, answer in enumerate(answers)}
    bar = _progress_bar() if progress else None
    if bar is not None:
        bar.start()
    try:
        targets, scores = _answer_rows(entries, answer_index, bar)
    finally:
        if bar is not None:
            bar.stop()
    target_ids, target_scores = _padded_rows(targets)
    score_ids, score_values = _padded_rows(scores)
    arrays = {
        "question_id": np.asarray(qids, dtype=np.int64).reshape(len(entries)),
        "image_id": np.fromiter((e["image_id"] for e in entries), np.int64, len(entries)),
        "tokens": tokens.astype(np.int32),
        "answer_type": answer_type,
        "question_type": question_type,
        "target_ids": target_ids,
        "target_scores": target_scores,
        "score_ids": score_ids,
        "score_values": score_values,
    }
    attrs = {
        "format_version": SPLIT_STORE_VERSION,
        "dataset": dataset,
        "split": split,
        "question_types": json.dumps(list(question_types)),
        "feature_store": feature_store_name,
        "sources": json.dumps(describe_sources(sources)),
    }
    _write_h5(out_path, arrays, attrs)
    with_target = int((target_ids[:, 0] >= 0).sum())
    return {
        "path": str(out_path),
        "questions": len(entries),
        "images": int(np.unique(arrays["image_id"]).size),
        "with_target": with_target,
        "without_target": len(entries) - with_target,
        "target_columns": int(max(target_ids.shape[1], score_ids.shape[1])),
    }


def _write_h5(path: Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """Writes arrays and root attributes to an HDF5 file atomically (temp file + rename)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name, array in arrays.items():
            handle.create_dataset(name, data=array)
        for name, value in attrs.items():
            handle.attrs[name] = value


# --------------------------------------------------------------------------------------------
# GloVe and images.
# --------------------------------------------------------------------------------------------


def _parse_glove_line(line: str, dim: int, path: Path, number: int) -> tuple[str, list[str]]:
    """Splits a GloVe line into its word and ``dim`` number fields (the word may hold spaces).

    Raises:
        ValueError: Naming the file and the line if the field count is wrong.
    """
    parts = line.rstrip().rsplit(" ", dim)
    if len(parts) != dim + 1 or not parts[0]:
        raise ValueError(
            f"{path}, line {number}: expected a word and {dim} numbers separated by spaces, "
            f"got {len(parts) - 1} fields: {line[:60]!r}"
        )
    return parts[0], parts[1:]


def load_glove(
    path: str | os.PathLike[str], tokens: Sequence[str], dim: int = 300, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Initial word embeddings of a token vocabulary from a GloVe text file (streamed).

    Every line is ``word v_1 ... v_dim`` separated by single spaces; blank lines are skipped;
    the first occurrence of a word wins. Every line's field count is checked, and the
    numbers of the words in ``tokens`` are parsed.

    Args:
        path: E.g. ``glove.6B.300d.txt``.
        tokens: The vocabulary (index 0 is padding).
        dim: The vector size of the file.
        seed: Seed of the random vectors of the tokens not in the file.

    Returns:
        ``(matrix, found)``: float32 ``[V, dim]``; row ``i`` is the GloVe vector of
        ``tokens[i]``, or, when the file lacks it, a small random vector (uniform in
        [-0.1, 0.1) from ``numpy.random.default_rng(seed)``, drawn for all rows first so a
        row does not depend on which others are found); row 0 (padding) is zeros. ``found``
        counts the tokens found in the file.

    Raises:
        ValueError: If a line is malformed (naming the file and the line number).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.1, 0.1, size=(len(tokens), dim)).astype(np.float32)
    wanted: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        wanted.setdefault(token, []).append(i)
    found: set[str] = set()
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            word, fields = _parse_glove_line(line, dim, path, number)
            if word not in wanted or word in found:
                continue
            try:
                vector = np.array(fields, dtype=np.float32)
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: not a number in {line[:60]!r}") from error
            found.add(word)
            matrix[wanted[word]] = vector
    if len(tokens):
        matrix[PAD_INDEX] = 0.0
    return matrix, sum(1 for t in tokens if t in found)


def check_images(
    entries: Sequence[Mapping[str, Any]],
    store: ImageIndex,
    questions_path: str | os.PathLike[str],
) -> None:
    """Checks that the image of every question is in the feature store.

    Args:
        entries: Questions or joined entries with ``question_id`` and ``image_id``.
        store: The feature store (anything with ``image_ids``; its ``path`` is named in the
            message when it has one).
        questions_path: The question file (for the message).

    Raises:
        ValueError: Naming up to 5 (question id, image id) pairs, their count, the question
            file and the feature store file.
    """
    image_ids = np.fromiter((e["image_id"] for e in entries), np.int64, len(entries))
    known = np.asarray(store.image_ids, dtype=np.int64)
    missing = np.flatnonzero(~np.isin(image_ids, known))
    if missing.size == 0:
        return
    pairs = [
        f"question {entries[i]['question_id']} (image {entries[i]['image_id']})" for i in missing
    ]
    store_name = getattr(store, "path", None) or repr(store)
    raise ValueError(
        f"images of {_listed(pairs)} of {questions_path} are not in the feature store "
        f"{store_name}; convert the features of these images (trainval covers COCO train2014 "
        "and val2014)"
    )
