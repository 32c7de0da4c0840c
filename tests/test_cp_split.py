"""Specification of the VQA-CP re-split: whole (question type, answer) groups, covered concepts."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from hint_lightning.data.cp_split import (
    DEFAULT_STOP_WORDS,
    CPSplit,
    format_split_report,
    make_cp_split,
    question_concepts,
)

Dataset = tuple[list[str], list[str], list[str]]

# Question types that share answers (so answer concepts can be covered by another type) and
# objects (so question concepts can be covered too).
COLORS = ["red", "blue", "white", "black"]
TEMPLATES: dict[str, tuple[str, list[str], list[float]]] = {
    "is there a": ("is there a {obj}?", ["yes", "no"], [0.6, 0.4]),
    "is this a": ("is this a {obj}?", ["yes", "no"], [0.5, 0.5]),
    "are there": ("are there {obj}s?", ["yes", "no"], [0.7, 0.3]),
    "what color is the": ("what color is the {obj}?", COLORS, [0.4, 0.3, 0.2, 0.1]),
    "what color are the": ("what color are the {obj}s?", COLORS[:3], [0.5, 0.3, 0.2]),
    "how many": ("how many {obj}s are there?", ["1", "2", "3", "4"], [0.4, 0.3, 0.2, 0.1]),
    "what number is": ("what number is on the {obj}?", ["1", "2", "3"], [0.5, 0.3, 0.2]),
}
OBJECTS = ["dog", "cat", "car", "ball", "tree"]


def synthetic_vqa(n: int = 1200, seed: int = 0) -> Dataset:
    """Questions from templates, with skewed answers per question type."""
    rng = np.random.default_rng(seed)
    qtypes = sorted(TEMPLATES)
    questions, types, answers = [], [], []
    for _ in range(n):
        qtype = qtypes[rng.integers(len(qtypes))]
        template, choices, probs = TEMPLATES[qtype]
        questions.append(template.format(obj=OBJECTS[rng.integers(len(OBJECTS))]))
        types.append(qtype)
        answers.append(choices[rng.choice(len(choices), p=probs)])
    return questions, types, answers


@pytest.fixture(scope="module")
def data() -> Dataset:
    return synthetic_vqa()


def groups_of(data: Dataset, indices: np.ndarray) -> set[tuple[str, str]]:
    _, types, answers = data
    return {(types[i], answers[i]) for i in indices}


def concepts_of(data: Dataset, indices: np.ndarray, with_answers: bool = True) -> set[str]:
    questions, _, answers = data
    found: set[str] = set()
    for i in indices:
        found |= question_concepts(questions[i])
        if with_answers:
            found.add("ANS:" + answers[i])
    return found


def triples(data: Dataset, indices: np.ndarray) -> Counter[tuple[str, str, str]]:
    questions, types, answers = data
    return Counter((questions[i], types[i], answers[i]) for i in indices)


# --- the split partitions the questions into whole groups ----------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_train_and_test_partition_the_indices(data: Dataset, seed: int) -> None:
    split = make_cp_split(*data, seed=seed)
    for part in (split.train, split.test):
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates
    assert np.array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(1200))


@pytest.mark.parametrize("seed", range(5))
def test_groups_are_whole_without_leak(data: Dataset, seed: int) -> None:
    split = make_cp_split(*data, seed=seed)
    assert groups_of(data, split.train).isdisjoint(groups_of(data, split.test))


@pytest.mark.parametrize("test_fraction", [0.2, 1 / 3, 0.45])
def test_test_fraction_reaches_the_target_and_overshoots_by_at_most_one_group(
    data: Dataset, test_fraction: float
) -> None:
    split = make_cp_split(*data, test_fraction=test_fraction, seed=0)
    _, types, answers = data
    largest_group = max(Counter(zip(types, answers, strict=True)).values())
    assert split.stats["reached_target"]
    assert len(split.test) >= math.ceil(test_fraction * 1200)
    assert len(split.test) < test_fraction * 1200 + largest_group


@pytest.mark.parametrize("seed", range(5))
def test_every_test_concept_is_covered_by_train(data: Dataset, seed: int) -> None:
    split = make_cp_split(*data, seed=seed)
    assert concepts_of(data, split.test) <= concepts_of(data, split.train)
    train_answers = {data[2][i] for i in split.train}
    assert all(data[2][i] in train_answers for i in split.test)
    assert split.stats["test_concept_coverage"] == 1.0
    assert split.stats["test_answer_in_train"] == 1.0


def test_yes_no_types_flip_their_prior(data: Dataset) -> None:
    """The point of VQA-CP: within a question type, train and test answers differ."""
    split = make_cp_split(*data, seed=0)
    per_type = split.stats["answers_per_question_type"]
    flipped = [t for t, sides in per_type.items() if sides["test"]]
    assert flipped
    for qtype in flipped:
        assert set(per_type[qtype]["train"]).isdisjoint(per_type[qtype]["test"])


# --- the greedy rule on hand-made inputs ---------------------------------------------------------


def test_hand_made_yes_no_example() -> None:
    # Groups: (is there a, no) 2, (is there a, yes) 2, (is this a, no) 2, (is this a, yes) 2,
    # (what color, brown) 4. Target ceil(12 / 3) = 4. Every question concept is "dog" (or
    # "color"/"dog"), shared; "ANS:brown" has a single group, so brown stays in train; keep_one
    # keeps one group per yes/no type, and ANS:yes / ANS:no must stay in train: exactly one
    # "yes" and one "no" group move, from different types.
    questions = ["is there a dog?"] * 4 + ["is this a dog?"] * 4 + ["what color is the dog?"] * 4
    types = ["is there a"] * 4 + ["is this a"] * 4 + ["what color"] * 4
    answers = ["yes", "yes", "no", "no"] * 2 + ["brown"] * 4
    for seed in range(10):
        split = make_cp_split(questions, types, answers, seed=seed)
        test_groups = {(types[i], answers[i]) for i in split.test}
        assert len(split.test) == 4
        assert len(test_groups) == 2
        assert {t for t, _ in test_groups} == {"is there a", "is this a"}
        assert {a for _, a in test_groups} == {"yes", "no"}


def test_a_group_with_a_concept_of_its_own_stays_in_train() -> None:
    # "zebra" occurs only in the (is there a, yes) group: that group can never go to test.
    questions = ["is there a zebra?"] * 3 + ["is there a dog?"] * 3 + ["is this a dog?"] * 6
    types = ["is there a"] * 6 + ["is this a"] * 6
    answers = ["yes"] * 3 + ["no"] * 3 + ["yes"] * 3 + ["no"] * 3
    for seed in range(10):
        split = make_cp_split(questions, types, answers, seed=seed, keep_one=False)
        assert ("is there a", "yes") not in {(types[i], answers[i]) for i in split.test}


def test_answer_as_concept_keeps_every_test_answer_in_train() -> None:
    # "cat" is the answer of a single group. Without answer concepts that group may go to test
    # (its question words are covered); with them it never does.
    questions = ["what animal is this?"] * 6 + ["what is this animal?"] * 6
    types = ["what animal is"] * 6 + ["what is"] * 6
    answers = ["dog"] * 3 + ["cat"] * 3 + ["dog"] * 6
    moved_cat = []
    for seed in range(10):
        loose = make_cp_split(questions, types, answers, seed=seed, answer_as_concept=False)
        strict = make_cp_split(questions, types, answers, seed=seed, answer_as_concept=True)
        moved_cat.append("cat" in {answers[i] for i in loose.test})
        assert "cat" not in {answers[i] for i in strict.test}
        assert strict.stats["test_answer_in_train"] in (1.0, None)
    assert any(moved_cat)


def test_stop_words_are_not_concepts() -> None:
    assert question_concepts("Is there a dog's bone in the yard?") == {"dog", "bone", "yard"}
    assert question_concepts("Is it NOT red? yes, 2 of them") == {"not", "red", "yes", "2"}
    assert question_concepts("what is it", stop_words={"WHAT"}) == {"is", "it"}
    assert {"the", "a", "is", "what", "s", "t"} <= DEFAULT_STOP_WORDS
    assert not {"not", "no", "yes"} & DEFAULT_STOP_WORDS


def test_custom_stop_words_change_what_must_be_covered() -> None:
    # With "zebra" as a stop word, the zebra group is no longer pinned to train.
    questions = ["is there a zebra?"] * 3 + ["is there a dog?"] * 3 + ["is this a dog?"] * 6
    types = ["is there a"] * 6 + ["is this a"] * 6
    answers = ["yes"] * 3 + ["no"] * 3 + ["yes"] * 3 + ["no"] * 3
    moved = [
        ("is there a", "yes")
        in groups_of(
            (questions, types, answers),
            make_cp_split(
                questions,
                types,
                answers,
                seed=seed,
                keep_one=False,
                stop_words=DEFAULT_STOP_WORDS | {"zebra"},
            ).test,
        )
        for seed in range(10)
    ]
    assert any(moved)


def test_keep_one_keeps_every_question_type_in_train(data: Dataset) -> None:
    all_types = set(data[1])
    lost_a_type = False
    for seed in range(20):
        kept = make_cp_split(*data, seed=seed, keep_one=True, test_fraction=0.45)
        assert {data[1][i] for i in kept.train} == all_types
        assert kept.stats["question_types_only_test"] == []
        loose = make_cp_split(*data, seed=seed, keep_one=False, test_fraction=0.45)
        lost_a_type |= bool(loose.stats["question_types_only_test"])
    assert lost_a_type  # without keep_one, some seed sends a whole question type to test


def test_unreachable_target_returns_what_the_walk_found() -> None:
    # One group per answer: with answer concepts nothing can move.
    split = make_cp_split(["what is it?"] * 3, ["what"] * 3, ["a", "b", "c"])
    assert split.test.tolist() == []
    assert split.stats["reached_target"] is False
    assert split.stats["test_fraction"] == 0.0
    assert split.stats["test_answer_in_train"] is None
    assert split.stats["test_concept_coverage"] is None


# --- determinism ---------------------------------------------------------------------------------


def test_fixed_seed_is_deterministic(data: Dataset) -> None:
    first = make_cp_split(*data, seed=3, leak=0.1)
    second = make_cp_split(*data, seed=3, leak=0.1)
    assert np.array_equal(first.train, second.train)
    assert np.array_equal(first.test, second.test)
    assert first.stats == second.stats


@pytest.mark.parametrize("leak", [0.0, 0.25])
def test_result_does_not_depend_on_input_order(data: Dataset, leak: float) -> None:
    perm = np.random.default_rng(7).permutation(len(data[0]))
    shuffled = tuple([column[i] for i in perm] for column in data)
    split = make_cp_split(*data, seed=1, leak=leak)
    split_shuffled = make_cp_split(*shuffled, seed=1, leak=leak)
    # Same (question, type, answer) multisets; identical questions are interchangeable.
    assert triples(data, split.test) == triples(shuffled, split_shuffled.test)
    assert triples(data, split.train) == triples(shuffled, split_shuffled.train)
    if leak == 0.0:  # whole groups: even the indices agree
        assert np.array_equal(np.sort(perm[split_shuffled.test]), split.test)
    stats, stats_shuffled = split.stats, split_shuffled.stats
    assert stats == stats_shuffled


def test_different_seeds_give_different_splits(data: Dataset) -> None:
    tests = {tuple(make_cp_split(*data, seed=seed).test.tolist()) for seed in range(5)}
    assert len(tests) > 1


# --- leak (soft CP) ------------------------------------------------------------------------------


@pytest.mark.parametrize("leak", [0.1, 0.3])
def test_leak_moves_the_rounded_fraction_of_each_test_group(data: Dataset, leak: float) -> None:
    strict = make_cp_split(*data, seed=2)
    soft = make_cp_split(*data, seed=2, leak=leak)
    # The walk is the same (the permutation is drawn first); leaking only removes from test.
    assert set(soft.test.tolist()) <= set(strict.test.tolist())
    leaked = np.setdiff1d(strict.test, soft.test)
    assert soft.stats["n_leaked"] == len(leaked)
    assert np.array_equal(np.union1d(soft.train, leaked), np.union1d(strict.train, leaked))
    _, types, answers = data
    strict_sizes = Counter((types[i], answers[i]) for i in strict.test)
    leaked_sizes = Counter((types[i], answers[i]) for i in leaked)
    for group, size in strict_sizes.items():
        assert leaked_sizes[group] == math.floor(leak * size + 0.5)
    assert len(leaked) == pytest.approx(leak * len(strict.test), abs=len(strict_sizes))
    # Leaked groups are now in both parts; coverage still holds.
    assert soft.stats["n_groups_shared"] == sum(1 for g in strict_sizes if leaked_sizes[g] > 0)
    assert soft.stats["n_groups_to_test"] == strict.stats["n_groups_to_test"]
    assert concepts_of(data, soft.test) <= concepts_of(data, soft.train)


def test_leak_gives_train_a_minority_answer_in_flipped_types(data: Dataset) -> None:
    split = make_cp_split(*data, seed=0, leak=0.2)
    per_type = split.stats["answers_per_question_type"]
    for sides in per_type.values():
        assert set(sides["test"]) <= set(sides["train"])


# --- statistics and report -----------------------------------------------------------------------


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_stats_are_consistent_and_json_serializable(data: Dataset, leak: float) -> None:
    split = make_cp_split(*data, seed=4, leak=leak)
    s = split.stats
    _, types, answers = data
    assert json.loads(json.dumps(s)) == s
    assert s["n_questions"] == 1200
    assert (s["n_train"], s["n_test"]) == (len(split.train), len(split.test))
    assert s["test_fraction"] == pytest.approx(len(split.test) / 1200)
    assert s["target_test_fraction"] == pytest.approx(1 / 3)
    assert s["n_groups"] == len(set(zip(types, answers, strict=True)))
    assert s["n_groups_train"] == len(groups_of(data, split.train))
    assert s["n_groups_test"] == len(groups_of(data, split.test))
    assert s["n_groups_train"] + s["n_groups_test"] - s["n_groups_shared"] == s["n_groups"]
    assert s["n_question_types"] == len(TEMPLATES)
    assert s["n_question_types_only_train"] == len(s["question_types_only_train"])
    assert s["n_question_types_only_test"] == len(s["question_types_only_test"])
    only_train = {types[i] for i in split.train} - {types[i] for i in split.test}
    assert s["question_types_only_train"] == sorted(only_train)
    per_type = s["answers_per_question_type"]
    assert list(per_type) == sorted(TEMPLATES)
    for side, indices in (("train", split.train), ("test", split.test)):
        expected = Counter((types[i], answers[i]) for i in indices)
        got = Counter({(t, a): c for t, v in per_type.items() for a, c in v[side].items()})
        assert got == expected
    for sides in per_type.values():  # answers listed by decreasing count
        for counts in sides.values():
            assert list(counts.values()) == sorted(counts.values(), reverse=True)
    assert s["params"] == {
        "test_fraction": 1 / 3,
        "seed": 4,
        "keep_one": True,
        "answer_as_concept": True,
        "leak": leak,
        "n_stop_words": len(DEFAULT_STOP_WORDS),
    }


def test_report_summarizes_the_split(data: Dataset) -> None:
    split = make_cp_split(*data, seed=0, leak=0.1)
    report = format_split_report(split)
    assert report.startswith(f"CP split: {len(split.train):,} train / {len(split.test):,} test")
    assert "test answers seen in train: 100.0%" in report
    assert "test concepts covered by train: 100.0%" in report
    for qtype in TEMPLATES:
        assert f"\n  {qtype}\n    train: " in report
    short = format_split_report(split, max_answers=1)
    assert "(+" in short and "more)" in short


def test_cp_split_is_a_frozen_dataclass() -> None:
    split = make_cp_split(["is it a dog?", "is it a dog?"], ["is"] * 2, ["yes", "no"])
    assert isinstance(split, CPSplit)
    with pytest.raises(AttributeError):
        split.train = np.arange(2)  # type: ignore[misc]


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((["q"], ["t"], []), {}, "same length"),
        (([], [], []), {}, "empty"),
        ((["q"], ["t"], [1]), {}, "answers must be a str"),
        ((["q"], [None], ["a"]), {}, "question_types must be a str"),
        ((["q"], ["t"], ["a"]), {"test_fraction": 0.0}, "test_fraction"),
        ((["q"], ["t"], ["a"]), {"test_fraction": 1.0}, "test_fraction"),
        ((["q"], ["t"], ["a"]), {"leak": 1.0}, "leak"),
        ((["q"], ["t"], ["a"]), {"leak": -0.1}, "leak"),
    ],
)
def test_invalid_arguments_raise(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_cp_split(*args, **kwargs)
