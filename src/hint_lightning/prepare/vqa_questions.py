"""VQA v2 / VQA-CP v2 questions and annotations -> vocabularies and split stores.

Reading the raw files: :mod:`hint_lightning.prepare.vqa_raw`. Writing:
:func:`write_split_store` writes the split store (:mod:`hint_lightning.stores.vqa_questions`),
atomically. Per question it stores

* ``target_ids`` / ``target_scores``: the soft training target of the common UpDn code
  (:func:`soft_target_scores`: 0.3 / 0.6 / 0.9 / 1.0 for 1 / 2 / 3 / 4+ matching human answers);
* ``score_ids`` / ``score_values``: the *official* accuracy of every candidate answer that
  scores above 0 (:class:`hint_lightning.text.answer_scores.AnswerScorer`), which is what
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
from typing import Any, Final

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.prepare.vqa_raw import MAX_LISTED, listed
from hint_lightning.stores.prepare_state import describe_sources
from hint_lightning.stores.vqa_questions import NUM_TARGET_COLUMNS, write_split_arrays
from hint_lightning.text.answer_scores import AnswerScorer
from hint_lightning.text.answers import ANSWER_TYPES, normalize_answer
from hint_lightning.text.tokenize import encode_questions

__all__ = [
    "build_answer_vocab",
    "soft_target_scores",
    "write_split_store",
]

_SOFT_SCORES: Final[Mapping[int, float]] = {1: 0.3, 2: 0.6, 3: 0.9}
"""Soft target of an answer given by 1, 2 or 3 humans; 4 or more give 1.0."""


# --------------------------------------------------------------------------------------------
# Answers: vocabulary and targets.
# --------------------------------------------------------------------------------------------


def build_answer_vocab(
    annotations: Iterable[Mapping[str, Any]], min_count: int = 9
) -> tuple[str, ...]:
    """The answer vocabulary: normalized ``multiple_choice_answer`` of at least ``min_count``
    questions.

    Each answer is normalized with the official
    :func:`~hint_lightning.text.answers.normalize_answer`; a question id seen twice
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
            f"question ids {listed(examples)}"
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
    part, with caches of repeated answer lists)."""
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
    """Writes the split store of one split (:mod:`hint_lightning.stores.vqa_questions`).

    Arrays (``Q = len(entries)``, ``T = max_length``, ``K`` = :data:`NUM_TARGET_COLUMNS`):
    ``question_id [Q] int64``, ``image_id [Q] int64``, ``tokens [Q, T] int32``,
    ``answer_type [Q] int8``, ``question_type [Q] int16``, ``target_ids [Q, K] int32``,
    ``target_scores [Q, K] float32``, ``score_ids [Q, K] int32``, ``score_values [Q, K]
    float32`` (ids padded with -1, values with 0, both sorted by class id within a row).
    Attributes: ``format_version``, ``dataset``, ``split``, ``question_types`` (JSON list),
    ``feature_store``, ``sources`` (JSON, see :func:`describe_sources`).

    Args:
        out_path: The ``.h5`` file to write (replaced atomically; no temporary file remains).
        entries: Joined questions (:func:`hint_lightning.prepare.vqa_raw.join`), in the order
            to store.
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
        "dataset": dataset,
        "split": split,
        "question_types": json.dumps(list(question_types)),
        "feature_store": feature_store_name,
        "sources": json.dumps(describe_sources(sources)),
    }
    write_split_arrays(out_path, arrays, attrs)
    with_target = int((target_ids[:, 0] >= 0).sum())
    return {
        "path": str(out_path),
        "questions": len(entries),
        "images": int(np.unique(arrays["image_id"]).size),
        "with_target": with_target,
        "without_target": len(entries) - with_target,
        "target_columns": int(max(target_ids.shape[1], score_ids.shape[1])),
    }
