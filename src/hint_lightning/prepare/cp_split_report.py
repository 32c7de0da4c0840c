"""Statistics and the printed report of a VQA-CP re-split (:mod:`.cp_split`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from hint_lightning.prepare.cp_split import CPSplit

__all__ = ["ANSWER_CONCEPT_PREFIX", "answer_concept", "format_split_report", "split_stats"]

ANSWER_CONCEPT_PREFIX: Final = "ANS:"
"""Prefix of the answer concept of a group when ``answer_as_concept`` is on."""


def answer_concept(answer: str) -> str:
    """The concept that stands for an answer."""
    return ANSWER_CONCEPT_PREFIX + answer


def _share(part: int, whole: int) -> float | None:
    """``part / whole``, or None when ``whole`` is 0."""
    return part / whole if whole else None


def _union(concept_sets: Iterable[frozenset[str]]) -> set[str]:
    """Union of concept sets."""
    out: set[str] = set()
    for concepts in concept_sets:
        out |= concepts
    return out


def _sorted_counts(counter: Counter[str]) -> dict[str, int]:
    """Counts by decreasing count, then name."""
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _answers_per_question_type(
    question_types: Sequence[str], answers: Sequence[str], is_test: np.ndarray
) -> dict[str, dict[str, dict[str, int]]]:
    """Train and test answer counts per question type (qtypes sorted).

    Args:
        question_types: Length-n question types.
        answers: Length-n answers.
        is_test: Bool array of shape [n].

    Returns:
        ``{qtype: {"train": {answer: count}, "test": {answer: count}}}``.
    """
    counts: dict[str, dict[str, Counter[str]]] = {}
    for qtype, answer, test in zip(question_types, answers, is_test.tolist(), strict=True):
        side = counts.setdefault(qtype, {"train": Counter(), "test": Counter()})
        side["test" if test else "train"][answer] += 1
    return {
        qtype: {name: _sorted_counts(c) for name, c in counts[qtype].items()}
        for qtype in sorted(counts)
    }


def split_stats(
    question_types: Sequence[str],
    answers: Sequence[str],
    concept_sets: Sequence[frozenset[str]],
    is_test: np.ndarray,
    group_of: np.ndarray,
    is_test_group: np.ndarray,
    answer_as_concept: bool,
    *,
    target: int,
    n_leaked: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Coverage statistics of a split (keys documented in :func:`make_cp_split`).

    Args:
        question_types: Length-n question types.
        answers: Length-n answers.
        concept_sets: Length-n question concept sets (without answers).
        is_test: Bool array of shape [n], final assignment (after the leak).
        group_of: Int64 array of shape [n], group of each question.
        is_test_group: Bool array of shape [G], groups moved by the walk.
        answer_as_concept: Whether answers count as concepts.
        target: Test-size target of the walk, in questions.
        n_leaked: Number of questions leaked back to train.
        params: The split's arguments.

    Returns:
        The statistics dictionary.
    """
    n = len(is_test)
    test_idx = np.flatnonzero(is_test).tolist()
    train_idx = np.flatnonzero(~is_test).tolist()
    n_test = len(test_idx)

    def concepts_of(indices: list[int]) -> set[str]:
        found = _union(concept_sets[i] for i in indices)
        if answer_as_concept:
            found |= {answer_concept(answers[i]) for i in indices}
        return found

    train_answers = {answers[i] for i in train_idx}
    test_concepts = concepts_of(test_idx)
    covered = test_concepts & concepts_of(train_idx)
    train_qtypes = {question_types[i] for i in train_idx}
    test_qtypes = {question_types[i] for i in test_idx}
    groups_train = set(group_of[~is_test].tolist())
    groups_test = set(group_of[is_test].tolist())
    return {
        "n_questions": n,
        "n_train": n - n_test,
        "n_test": n_test,
        "n_groups": len(is_test_group),
        "n_groups_to_test": int(is_test_group.sum()),
        "n_groups_train": len(groups_train),
        "n_groups_test": len(groups_test),
        "n_groups_shared": len(groups_train & groups_test),
        "n_leaked": n_leaked,
        "target_test_fraction": params["test_fraction"],
        "test_fraction": n_test / n,
        "reached_target": n_test + n_leaked >= target,
        "test_answer_in_train": _share(sum(answers[i] in train_answers for i in test_idx), n_test),
        "n_test_concepts": len(test_concepts),
        "test_concept_coverage": _share(len(covered), len(test_concepts)),
        "n_question_types": len(train_qtypes | test_qtypes),
        "n_question_types_only_train": len(train_qtypes - test_qtypes),
        "n_question_types_only_test": len(test_qtypes - train_qtypes),
        "question_types_only_train": sorted(train_qtypes - test_qtypes),
        "question_types_only_test": sorted(test_qtypes - train_qtypes),
        "answers_per_question_type": _answers_per_question_type(question_types, answers, is_test),
        "params": params,
    }


def _percent(value: float | None) -> str:
    """A share as a percentage, or "n/a"."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _format_counts(counts: dict[str, int], max_answers: int) -> str:
    """``"yes 120, no 13"``, cut after ``max_answers`` answers, or ``"-"`` when empty."""
    if not counts:
        return "-"
    shown = [f"{answer} {count:,}" for answer, count in list(counts.items())[:max_answers]]
    rest = len(counts) - max_answers
    if rest > 0:
        shown.append(f"... (+{rest} more)")
    return ", ".join(shown)


def format_split_report(split: CPSplit, *, max_answers: int = 8) -> str:
    """A readable summary of a split's statistics (printed at prepare time).

    Args:
        split: A split from :func:`~hint_lightning.prepare.cp_split.make_cp_split`.
        max_answers: Most answers listed per question type and side.

    Returns:
        Multi-line text: sizes, coverage, question types only on one side, and each question
        type's train and test answer distributions.

    Example:
        >>> from hint_lightning.prepare.cp_split import make_cp_split
        >>> split = make_cp_split(["is it red?", "is it red?", "is it blue?"], ["is"] * 3,
        ...                       ["yes", "no", "no"], keep_one=False, answer_as_concept=False)
        >>> print(format_split_report(split))  # doctest: +NORMALIZE_WHITESPACE
        CP split: 2 train / 1 test questions (test 33.3%, target 33.3%, reached)
        groups: 2 total, 1 moved to test by the walk; leak 0.0%: 0 questions back to train
        test answers seen in train: 0.0% of test questions
        test concepts covered by train: 100.0% of 1
        question types: 1; only in train: 0; only in test: 0
        answers per question type (train | test):
          is
            train: no 2
            test:  yes 1
    """
    s = split.stats
    lines = [
        f"CP split: {s['n_train']:,} train / {s['n_test']:,} test questions "
        f"(test {_percent(s['test_fraction'])}, target {_percent(s['target_test_fraction'])}, "
        f"{'reached' if s['reached_target'] else 'NOT reached'})",
        f"groups: {s['n_groups']:,} total, {s['n_groups_to_test']:,} moved to test by the walk; "
        f"leak {_percent(s['params']['leak'])}: {s['n_leaked']:,} questions back to train",
        f"test answers seen in train: {_percent(s['test_answer_in_train'])} of test questions",
        f"test concepts covered by train: {_percent(s['test_concept_coverage'])} "
        f"of {s['n_test_concepts']:,}",
        f"question types: {s['n_question_types']}; "
        f"only in train: {s['n_question_types_only_train']}"
        + _name_list(s["question_types_only_train"])
        + f"; only in test: {s['n_question_types_only_test']}"
        + _name_list(s["question_types_only_test"]),
        "answers per question type (train | test):",
    ]
    for qtype, sides in s["answers_per_question_type"].items():
        lines.append(f"  {qtype}")
        lines.append(f"    train: {_format_counts(sides['train'], max_answers)}")
        lines.append(f"    test:  {_format_counts(sides['test'], max_answers)}")
    return "\n".join(lines)


def _name_list(names: Sequence[str], limit: int = 10) -> str:
    """`` (a, b, ...)`` for a non-empty list of names, else an empty string."""
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f" ({shown})"
