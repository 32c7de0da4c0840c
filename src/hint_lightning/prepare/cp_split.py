"""VQA-CP re-splitting (Agrawal et al. 2018, "Don't Just Assume; Look and Answer") of any VQA data.

VQA under Changing Priors gives train and test different answer distributions per question
type. :func:`make_cp_split` builds such a split for any list of (question, question type,
answer) triples, with every choice explicit and seeded:

1. **Groups.** Questions are grouped by ``(question_type, answer)``. Groups are sorted by that
   key (plain string order: first the type, then the answer).
2. **Concepts.** A question's concepts are its words that are not stop words (see
   :func:`question_concepts`: lowercased, split into runs of ``[a-z0-9]``, minus
   ``stop_words``; question-type words are *not* removed). A group's concepts are the union over
   its questions, plus, with ``answer_as_concept``, the answer itself as ``"ANS:<answer>"``
   (so that every test answer is also a train answer).
3. **Order.** The sorted groups are permuted with ``numpy.random.default_rng(seed)``: the first
   draw of that generator is ``permutation(number_of_groups)``. The result therefore depends on
   the seed and the data, never on the input order.
4. **Greedy walk.** All groups start in train. Walking once through the permuted groups, a
   group moves to test when

   a. every concept of the group is *covered*: at least one *other* group still in train has it;
   b. with ``keep_one``, at least one other group of its question type is still in train (so no
      question type disappears from train).

   The walk stops as soon as test holds at least ``ceil(test_fraction * n)`` questions (checked
   before each group, so the last group moved may overshoot the target by its size). Ties are
   broken by the order alone: of several eligible groups the first in the permuted order moves.
   One pass is enough: the train counts behind (a) and (b) only ever decrease, so a group that
   is not eligible when the walk reaches it never becomes eligible later. If the walk ends
   before reaching the target, the split is returned as is and ``stats["reached_target"]`` is
   False. Invariant: every concept of a test group is a concept of some train group.
5. **Leak (soft CP; our documented deviation from VQA-CP).** A strict split leaves each yes/no
   question type with a single train answer and the other answer in test, which makes yes/no
   meaningless (see the easy-VQA-CP feasibility study). With ``leak > 0``, from every test group
   (in key order) ``round(leak * size)`` questions (halves round up) move back to train, chosen
   uniformly without replacement by the same generator, continuing after the permutation. The
   members of a group are ordered by question text first (ties by index), so the choice is
   independent of the input order too. Leaking only adds train questions, so coverage is kept.

``DEFAULT_STOP_WORDS`` is a small, explicit English list: articles, forms of *be*, *do*,
*have* and the modal verbs, pronouns and demonstratives, question words, common prepositions
and conjunctions, *any* / *some*, and the remnants ``s`` and ``t`` of ``'s`` and ``n't``.
Negations (*not*, *no*) and *yes* are concepts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from hint_lightning.prepare.cp_split_report import (
    ANSWER_CONCEPT_PREFIX,
    answer_concept,
    format_split_report,
    split_stats,
)

__all__ = [
    "ANSWER_CONCEPT_PREFIX",
    "DEFAULT_STOP_WORDS",
    "CPSplit",
    "format_split_report",
    "make_cp_split",
    "question_concepts",
]

DEFAULT_STOP_WORDS: Final[frozenset[str]] = frozenset(
    {
        # articles
        "a", "an", "the",
        # be, do, have, modal verbs
        "am", "is", "are", "was", "were", "be", "been", "being",
        "do", "does", "did", "has", "have", "had",
        "can", "could", "will", "would", "shall", "should", "may", "might", "must",
        # pronouns, demonstratives, possessives
        "i", "me", "my", "you", "your", "he", "him", "his", "she", "her", "it", "its",
        "we", "us", "our", "they", "them", "their",
        "this", "that", "these", "those", "there", "here",
        # question words
        "what", "which", "who", "whom", "whose", "where", "when", "why", "how",
        # prepositions and conjunctions
        "in", "on", "of", "at", "to", "for", "with", "by", "from", "into", "onto", "about",
        "and", "or", "as", "than", "if", "so",
        # quantifiers
        "any", "some",
        # remnants of 's and n't after splitting on non-alphanumerics
        "s", "t",
    }
)  # fmt: skip
"""Words that are not concepts (lowercase). See the module docstring for the rationale."""

_WORD_RE: Final = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class CPSplit:
    """A VQA-CP split of a question list.

    Attributes:
        train: Int64 array of shape [N_train], sorted indices into the input sequences.
        test: Int64 array of shape [N_test], sorted indices; ``train`` and ``test`` partition
            ``range(n)``.
        stats: Coverage statistics (JSON-serializable), see :func:`make_cp_split`.
    """

    train: np.ndarray
    test: np.ndarray
    stats: dict[str, Any]


def question_concepts(
    question: str, stop_words: Collection[str] = DEFAULT_STOP_WORDS
) -> frozenset[str]:
    """The concepts of a question: its lowercased alphanumeric words that are not stop words.

    Args:
        question: Question text.
        stop_words: Words to drop (compared in lowercase).

    Returns:
        The set of concept words.

    Example:
        >>> sorted(question_concepts("What color is the man's shirt?"))
        ['color', 'man', 'shirt']
    """
    return frozenset(_WORD_RE.findall(question.lower())) - _lowercase(stop_words)


def _lowercase(words: Collection[str]) -> frozenset[str]:
    """The words in lowercase (a no-op for the default list)."""
    if words is DEFAULT_STOP_WORDS:
        return DEFAULT_STOP_WORDS
    return frozenset(word.lower() for word in words)


def _check_inputs(
    questions: Sequence[str],
    question_types: Sequence[str],
    answers: Sequence[str],
    test_fraction: float,
    leak: float,
) -> None:
    """Validates the arguments of :func:`make_cp_split`.

    Raises:
        ValueError: On empty or unequal-length inputs, non-string entries or parameters out of
            range (``0 < test_fraction < 1``, ``0 <= leak < 1``).
    """
    lengths = {len(questions), len(question_types), len(answers)}
    if len(lengths) != 1:
        raise ValueError(
            "questions, question_types and answers must have the same length, got "
            f"{len(questions)}, {len(question_types)} and {len(answers)}"
        )
    if len(questions) == 0:
        raise ValueError("cannot split an empty question list")
    for name, values in (("questions", questions), ("question_types", question_types)):
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"every entry of {name} must be a str")
    if not all(isinstance(v, str) for v in answers):
        raise ValueError("every entry of answers must be a str")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not 0.0 <= leak < 1.0:
        raise ValueError(f"leak must be in [0, 1), got {leak}")


def _group_questions(
    question_types: Sequence[str], answers: Sequence[str]
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Groups questions by (question type, answer), groups sorted by key.

    Args:
        question_types: Length-n question types.
        answers: Length-n answers.

    Returns:
        ``(keys, group_of)``: the G sorted keys, and an int64 array of shape [n] with each
        question's group index into ``keys``.
    """
    pairs = list(zip(question_types, answers, strict=True))
    keys = sorted(set(pairs))
    index = {key: g for g, key in enumerate(keys)}
    group_of = np.fromiter((index[p] for p in pairs), dtype=np.int64, count=len(pairs))
    return keys, group_of


def _concepts_per_question(
    questions: Sequence[str], stop_words: frozenset[str]
) -> list[frozenset[str]]:
    """Concepts of every question (computed once per distinct question text).

    Args:
        questions: Length-n questions.
        stop_words: Lowercase stop words.

    Returns:
        Length-n list of concept sets.
    """
    cache: dict[str, frozenset[str]] = {}
    out = []
    for question in questions:
        concepts = cache.get(question)
        if concepts is None:
            concepts = cache[question] = question_concepts(question, stop_words)
        out.append(concepts)
    return out


def _group_concepts(
    keys: Sequence[tuple[str, str]],
    group_of: np.ndarray,
    question_concept_sets: Sequence[frozenset[str]],
    answer_as_concept: bool,
) -> list[frozenset[str]]:
    """Concepts of every group: union of its questions' concepts (plus its answer).

    Args:
        keys: The G group keys (question type, answer).
        group_of: Int64 array of shape [n], group of each question.
        question_concept_sets: Length-n concept sets.
        answer_as_concept: Whether to add ``"ANS:<answer>"`` to each group.

    Returns:
        Length-G list of concept sets.
    """
    merged: list[set[str]] = [set() for _ in keys]
    for g, concepts in zip(group_of.tolist(), question_concept_sets, strict=True):
        merged[g] |= concepts
    if answer_as_concept:
        for (_, answer), concepts in zip(keys, merged, strict=True):
            concepts.add(answer_concept(answer))
    return [frozenset(c) for c in merged]


def _greedy_test_groups(
    order: np.ndarray,
    keys: Sequence[tuple[str, str]],
    group_sizes: np.ndarray,
    group_concepts: Sequence[frozenset[str]],
    target: int,
    keep_one: bool,
) -> np.ndarray:
    """The greedy walk: which groups go to test (see the module docstring, step 4).

    Args:
        order: Int64 array of shape [G], the walk order (a permutation of the group indices).
        keys: The G group keys (question type, answer).
        group_sizes: Int64 array of shape [G], questions per group.
        group_concepts: Length-G concept sets.
        target: Minimum number of test questions at which the walk stops.
        keep_one: Whether every question type must keep a group in train.

    Returns:
        Bool array of shape [G], True for the groups moved to test.
    """
    concept_train_groups = Counter(c for concepts in group_concepts for c in concepts)
    qtype_train_groups = Counter(qtype for qtype, _ in keys)
    is_test = np.zeros(len(keys), dtype=bool)
    n_test = 0
    for g in order.tolist():
        if n_test >= target:
            break
        qtype = keys[g][0]
        if keep_one and qtype_train_groups[qtype] < 2:
            continue
        if any(concept_train_groups[c] < 2 for c in group_concepts[g]):
            continue
        is_test[g] = True
        n_test += int(group_sizes[g])
        qtype_train_groups[qtype] -= 1
        concept_train_groups.subtract(group_concepts[g])
    return is_test


def _leak_questions(
    rng: np.random.Generator,
    questions: Sequence[str],
    group_of: np.ndarray,
    is_test_group: np.ndarray,
    leak: float,
) -> np.ndarray:
    """Picks the test questions that leak back to train (module docstring, step 5).

    Args:
        rng: Generator to draw from (continues after the group permutation).
        questions: Length-n questions (orders the members of each group).
        group_of: Int64 array of shape [n], group of each question.
        is_test_group: Bool array of shape [G].
        leak: Fraction of each test group to move, in [0, 1).

    Returns:
        Sorted int64 array of the leaked question indices.
    """
    if leak == 0.0:
        return np.zeros(0, dtype=np.int64)
    text = np.asarray(questions, dtype=str)
    by_group = np.lexsort((text, group_of))  # stable: equal texts keep index order
    starts = np.searchsorted(group_of[by_group], np.arange(len(is_test_group) + 1))
    leaked = []
    for g in np.flatnonzero(is_test_group).tolist():
        members = by_group[starts[g] : starts[g + 1]]
        count = math.floor(leak * len(members) + 0.5)
        leaked.append(members[rng.choice(len(members), size=count, replace=False)])
    return np.sort(np.concatenate(leaked)) if leaked else np.zeros(0, dtype=np.int64)


def make_cp_split(
    questions: Sequence[str],
    question_types: Sequence[str],
    answers: Sequence[str],
    *,
    test_fraction: float = 1 / 3,
    seed: int = 0,
    keep_one: bool = True,
    answer_as_concept: bool = True,
    leak: float = 0.0,
    stop_words: Collection[str] = DEFAULT_STOP_WORDS,
) -> CPSplit:
    """Builds a VQA-CP split: whole (question type, answer) groups go to train or test.

    The procedure (grouping, concepts, seeded order, greedy walk, leak) is specified in the
    module docstring.

    Args:
        questions: Length-n question texts (give the concepts).
        question_types: Length-n question types (e.g. from
            :func:`hint_lightning.text.question_types.question_type`).
        answers: Length-n answers, one per question (e.g. ``multiple_choice_answer``).
        test_fraction: Target share of questions in test, in (0, 1); the walk stops once test
            holds at least ``ceil(test_fraction * n)`` questions.
        seed: Seed of ``numpy.random.default_rng`` for the group order and the leak.
        keep_one: Never move the last train group of a question type.
        answer_as_concept: Count the answer as a concept of its group (``"ANS:<answer>"``), so
            every test answer is also a train answer.
        leak: Fraction of each test group moved back to train after the walk, in [0, 1)
            (0 gives a strict VQA-CP split).
        stop_words: Words that are not concepts (default :data:`DEFAULT_STOP_WORDS`).

    Returns:
        The split. ``stats`` holds (all JSON-serializable):

        * ``n_questions``, ``n_train``, ``n_test``: question counts;
        * ``n_groups``; ``n_groups_to_test`` (moved by the walk); ``n_groups_train`` /
          ``n_groups_test`` (groups with at least one train / test question after the leak);
          ``n_groups_shared`` (groups in both, only through the leak); ``n_leaked``;
        * ``target_test_fraction``, ``test_fraction`` (achieved, after the leak),
          ``reached_target`` (whether the walk reached its target, before the leak);
        * ``test_answer_in_train``: share of test questions whose answer is a train answer;
        * ``n_test_concepts`` and ``test_concept_coverage``: distinct concepts of the test
          questions (with ``ANS:`` answers when ``answer_as_concept``) and the share of them
          that some train question has (shares are None when test is empty);
        * ``n_question_types``, ``question_types_only_train``,
          ``question_types_only_test`` (sorted lists) and their ``n_...`` counts;
        * ``answers_per_question_type``: ``{qtype: {"train": {answer: count}, "test": {...}}}``
          (qtypes sorted; answers by decreasing count, then name);
        * ``params``: the arguments (stop words as their count).

    Raises:
        ValueError: On empty or unequal-length inputs, non-string entries, or
            ``test_fraction`` / ``leak`` out of range.

    Example:
        Each yes/no question type keeps one answer in train and the other in test; the
        "brown" group stays in train because no other group has the concept ``ANS:brown``:

        >>> questions = ["is there a dog?"] * 4 + ["is this a dog?"] * 4 + ["what color?"] * 4
        >>> qtypes = ["is there a"] * 4 + ["is this a"] * 4 + ["what color"] * 4
        >>> answers = ["yes", "yes", "no", "no"] * 2 + ["brown"] * 4
        >>> split = make_cp_split(questions, qtypes, answers, seed=0)
        >>> [(qtypes[i], answers[i]) for i in split.test]
        [('is there a', 'yes'), ('is there a', 'yes'), ('is this a', 'no'), ('is this a', 'no')]
        >>> split.stats["test_fraction"], split.stats["test_answer_in_train"]
        (0.3333333333333333, 1.0)
    """
    _check_inputs(questions, question_types, answers, test_fraction, leak)
    stop_words = _lowercase(stop_words)
    keys, group_of = _group_questions(question_types, answers)
    group_sizes = np.bincount(group_of, minlength=len(keys))
    concept_sets = _concepts_per_question(questions, stop_words)
    group_concepts = _group_concepts(keys, group_of, concept_sets, answer_as_concept)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    target = math.ceil(round(test_fraction * len(questions), 9))
    is_test_group = _greedy_test_groups(order, keys, group_sizes, group_concepts, target, keep_one)
    leaked = _leak_questions(rng, questions, group_of, is_test_group, leak)

    is_test = is_test_group[group_of]
    is_test[leaked] = False
    params = {
        "test_fraction": float(test_fraction),
        "seed": int(seed),
        "keep_one": bool(keep_one),
        "answer_as_concept": bool(answer_as_concept),
        "leak": float(leak),
        "n_stop_words": len(stop_words),
    }
    stats = split_stats(
        question_types,
        answers,
        concept_sets,
        is_test,
        group_of,
        is_test_group,
        answer_as_concept,
        target=target,
        n_leaked=len(leaked),
        params=params,
    )
    train = np.flatnonzero(~is_test).astype(np.int64)
    test = np.flatnonzero(is_test).astype(np.int64)
    return CPSplit(train=train, test=test, stats=stats)
