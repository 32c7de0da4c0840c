"""Specification of the official VQA accuracy (GT-Vision-Lab/VQA ``vqaEval.py``) and its metric."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
import torch

from hint_lightning.metrics.vqa_accuracy import (
    AnswerScorer,
    VQAAccuracy,
    normalize_answer,
    official_answer_scores,
    vqa_accuracy,
    vqa_accuracy_from_scores,
)
from hint_lightning.text.answers import ANSWER_TYPES, CONTRACTIONS, NUMBER_WORDS

YES_NO, NUMBER, OTHER = range(3)

# ---------------------------------------------------------------------------------------------
# normalize_answer: processPunctuation then processDigitArticle.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        # number words become digits ("none" too), after lower-casing
        ("Two", "2"),
        ("ten", "10"),
        ("None", "0"),
        ("eleven", "eleven"),
        # articles are dropped
        ("a cat", "cat"),
        ("An apple", "apple"),
        ("the the", ""),
        # a period not followed by a digit is deleted
        ("the dog.", "dog"),
        ("e.g.", "eg"),
        ("5.", "5"),
        ("1.5", "1.5"),
        ("3.14.", "3.14"),
        (".5", ".5"),
        # contractions without apostrophe get one; capitalized table keys never match
        ("isnt", "isn't"),
        ("Dont", "don't"),
        ("Im", "im"),
        ("somebody'd", "somebodyd"),
        # apostrophes and colons are not punctuation
        ("it's", "it's"),
        ("10:30", "10:30"),
        # punctuation touching a space is deleted, otherwise it becomes a space
        ("yes!", "yes"),
        ("what?", "what"),
        ("x-ray", "x ray"),
        ("T-shirt", "t shirt"),
        ("yes/no", "yes no"),
        ("left - right", "left right"),
        ("hello, world", "hello world"),
        ("hello,world", "hello world"),
        # a comma between digits anywhere deletes all punctuation, without spaces
        ("1,000", "1000"),
        ("1,000(approx)", "1000approx"),
        ("100(approx)", "100 approx"),
        # cleaning: newlines and tabs become spaces, then strip, then words re-joined
        ("  Yes\n", "yes"),
        ("red\tcar", "red car"),
        ("big   dog", "big dog"),
    ],
)
def test_normalize_answer_matches_official_behaviour(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_period_strip_removes_at_most_32_periods() -> None:
    """The official code passes ``re.UNICODE`` (32) as the ``count`` argument of ``sub``."""
    assert normalize_answer("." * 40) == "." * 8
    assert normalize_answer("a." * 33) == "a" * 32 + "a."


def test_official_tables() -> None:
    assert len(CONTRACTIONS) == 120
    assert CONTRACTIONS["whatll"] == "what'll"
    assert CONTRACTIONS["twas"] == "'twas"
    assert NUMBER_WORDS == {
        **{"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4"},
        **{"five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"},
    }


# ---------------------------------------------------------------------------------------------
# vqa_accuracy: mean over the human answers of min(1, #matches among the *other* answers / 3).
# ---------------------------------------------------------------------------------------------


def _answers(matching: int, prediction: str = "2", other: str = "3") -> list[str]:
    return [prediction] * matching + [other] * (10 - matching)


@pytest.mark.parametrize(
    ("matching", "expected"),
    [
        (0, 0.0),
        (1, 0.3),  # 9 of the 10 leave-one-out subsets contain it: (9 * 1/3 + 1 * 0) / 10
        (2, 0.6),  # (8 * 2/3 + 2 * 1/3) / 10
        (3, 0.9),  # (7 * 1 + 3 * 2/3) / 10: three matches are not quite enough
        (4, 1.0),
        (9, 1.0),
    ],
)
def test_vqa_accuracy_leave_one_out(matching: int, expected: float) -> None:
    assert vqa_accuracy("2", _answers(matching)) == pytest.approx(expected, abs=1e-12)


def test_vqa_accuracy_ten_identical_matching_answers() -> None:
    assert vqa_accuracy("2", ["2"] * 10) == 1.0


def test_vqa_accuracy_normalizes_when_answers_differ() -> None:
    answers = ["Yes"] * 4 + ["yes."] * 2 + ["no"] * 4
    assert vqa_accuracy("YES!", answers) == 1.0
    assert vqa_accuracy("two", ["2"] * 5 + ["3"] * 5) == 1.0
    assert vqa_accuracy("the dog", ["dog"] * 2 + ["cat"] * 8) == pytest.approx(0.6)


def test_vqa_accuracy_all_identical_answers_are_not_normalized() -> None:
    """Official quirk: identical human answers skip normalization, not even lower-casing."""
    assert vqa_accuracy("yes", ["Yes"] * 10) == 0.0
    assert vqa_accuracy("Yes", ["Yes"] * 10) == 1.0
    assert vqa_accuracy(" Yes\n", ["Yes"] * 10) == 1.0  # cleaning still happens
    assert vqa_accuracy("Yes.", ["Yes"] * 10) == 0.0
    assert vqa_accuracy("2", ["two"] * 10) == 0.0


def test_vqa_accuracy_cleans_answers_before_the_identical_check() -> None:
    assert vqa_accuracy("yes", ["Yes", "Yes\t"] * 5) == 0.0
    assert vqa_accuracy("Yes", [" Yes", "Yes\n"] * 5) == 1.0


def test_vqa_accuracy_other_numbers_of_answers() -> None:
    assert vqa_accuracy("a", ["a"]) == 0.0  # nobody else gave it
    assert vqa_accuracy("a", ["a", "b", "a"]) == pytest.approx((2 * 1 / 3 + 1 * 2 / 3) / 3)


def test_vqa_accuracy_needs_answers() -> None:
    with pytest.raises(ValueError, match="at least one"):
        vqa_accuracy("yes", [])


def _reference_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Literal definition: clean, maybe normalize, leave each answer out in turn."""
    cleaned = [a.replace("\n", " ").replace("\t", " ").strip() for a in answers]
    prediction = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len(set(cleaned)) > 1:
        cleaned = [normalize_answer(a) for a in cleaned]
        prediction = normalize_answer(prediction)
    per_answer = []
    for left_out in range(len(cleaned)):
        others = [a for j, a in enumerate(cleaned) if j != left_out]
        per_answer.append(min(1.0, sum(a == prediction for a in others) / 3))
    return sum(per_answer) / len(per_answer)


# Raw answer strings exercising every normalization rule; many normalize to the same form.
ANSWER_POOL = (
    "yes",
    "Yes",
    "yes!",
    "YES.",
    " yes\n",
    "no",
    "No",
    "2",
    "two",
    "Two",
    "3",
    "three",
    "none",
    "0",
    "dog",
    "the dog",
    "Dog.",
    "a dog",
    "cat",
    "A Cat",
    "isnt",
    "isn't",
    "1,000",
    "1000",
    "1.5",
    "x-ray",
    "x ray",
    "red",
    "Red!",
    "red\tcar",
    "red car",
)


def _random_answers(rng: random.Random) -> list[str]:
    """10 human answers: all identical a fifth of the time, else from 2 to 4 distinct ones."""
    if rng.random() < 0.2:
        return [rng.choice(ANSWER_POOL)] * 10
    distinct = rng.sample(ANSWER_POOL, rng.randint(2, 4))
    return [rng.choice(distinct) for _ in range(10)]


def test_vqa_accuracy_matches_literal_definition() -> None:
    rng = random.Random(0)
    for _ in range(300):
        answers = _random_answers(rng)
        for prediction in rng.sample(ANSWER_POOL, 5):
            assert vqa_accuracy(prediction, answers) == pytest.approx(
                _reference_accuracy(prediction, answers), abs=1e-12
            )


# ---------------------------------------------------------------------------------------------
# official_answer_scores: the accuracy of every candidate of a vocabulary, nonzero only.
# ---------------------------------------------------------------------------------------------


def _brute_force_scores(answers: Sequence[str], vocab: dict[str, int]) -> dict[int, float]:
    scores = {index: vqa_accuracy(candidate, answers) for candidate, index in vocab.items()}
    return {index: score for index, score in scores.items() if score > 0}


def test_official_answer_scores_equal_brute_force_over_the_vocabulary() -> None:
    rng = random.Random(1234)
    # normalized entries plus raw, non-normalized ones ("The Dog" can still be predicted)
    strings = sorted({normalize_answer(a) for a in ANSWER_POOL} | set(ANSWER_POOL) | {"The Dog"})
    vocab = {s: i for i, s in enumerate(rng.sample(strings, len(strings)))}
    for _ in range(500):
        answers = _random_answers(rng)
        assert official_answer_scores(answers, vocab) == _brute_force_scores(answers, vocab)


def test_official_answer_scores_hand_example() -> None:
    vocab = {"yes": 0, "no": 1, "2": 2, "dog": 3, "The Dog": 4}
    answers = ["yes"] * 6 + ["No", "two", "the dog", "dog."]
    assert official_answer_scores(answers, vocab) == pytest.approx(
        {0: 1.0, 1: 0.3, 2: 0.3, 3: 0.6, 4: 0.6}
    )


def test_official_answer_scores_identical_answers_quirk() -> None:
    vocab = {"yes": 0, "Yes": 1, "Yes.": 2}
    assert official_answer_scores(["Yes"] * 10, vocab) == {1: 1.0}
    assert official_answer_scores(["Yes."] * 10, vocab) == {2: 1.0}


def test_official_answer_scores_sees_vocabulary_changes() -> None:
    vocab = {"yes": 0}
    answers = ["yes"] * 5 + ["no"] * 5
    assert official_answer_scores(answers, vocab) == {0: 1.0}
    vocab["no"] = 1
    assert official_answer_scores(answers, vocab) == {0: 1.0, 1: 1.0}
    assert official_answer_scores(answers, {"no": 7}) == {7: 1.0}


def test_answer_scorer_matches_function() -> None:
    rng = random.Random(7)
    vocab = {s: i for i, s in enumerate(ANSWER_POOL)}
    scorer = AnswerScorer(vocab)
    for _ in range(100):
        answers = _random_answers(rng)
        assert scorer(answers) == official_answer_scores(answers, vocab)


# ---------------------------------------------------------------------------------------------
# VQAAccuracy: gathers answer_scores[b, preds[b]], averages per answer type, in percent.
# ---------------------------------------------------------------------------------------------


def _hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    answer_scores = torch.tensor(
        [
            [1.0, 0.0, 0.0],  # yes/no, predicts 0 -> 1.0
            [0.0, 0.3, 1.0],  # yes/no, predicts 1 -> 0.3
            [0.6, 0.0, 0.0],  # number, predicts 0 -> 0.6
            [0.0, 0.0, 0.9],  # other, predicts 1 -> 0.0
        ]
    )
    preds = torch.tensor([0, 1, 0, 1])
    answer_type = torch.tensor([YES_NO, YES_NO, NUMBER, OTHER])
    return preds, answer_scores, answer_type


EXPECTED_HAND = {"overall": 47.5, "yes/no": 65.0, "number": 60.0, "other": 0.0}


def _as_floats(result: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: value.item() for name, value in result.items()}


def test_vqa_accuracy_metric_per_type_percentages() -> None:
    metric = VQAAccuracy()
    metric.update(*_hand_batch())
    result = metric.compute()
    assert list(result) == ["overall", *ANSWER_TYPES]
    assert _as_floats(result) == pytest.approx(EXPECTED_HAND)


def test_vqa_accuracy_metric_accumulates_over_updates() -> None:
    preds, scores, types = _hand_batch()
    metric = VQAAccuracy()
    metric.update(preds[:1], scores[:1], types[:1])
    metric.update(preds[1:], scores[1:], types[1:])
    assert _as_floats(metric.compute()) == pytest.approx(EXPECTED_HAND)
    metric.reset()
    metric.update(preds[:1], scores[:1], types[:1])
    assert metric.compute()["overall"].item() == pytest.approx(100.0)


def test_vqa_accuracy_metric_absent_types_are_nan() -> None:
    metric = VQAAccuracy()
    metric.update(torch.tensor([0, 0]), torch.tensor([[1.0], [0.3]]), torch.tensor([OTHER] * 2))
    result = _as_floats(metric.compute())
    assert result["overall"] == pytest.approx(65.0)
    assert result["other"] == pytest.approx(65.0)
    assert torch.isnan(torch.tensor([result["yes/no"], result["number"]])).all()


def test_vqa_accuracy_functional_matches_metric() -> None:
    assert _as_floats(vqa_accuracy_from_scores(*_hand_batch())) == pytest.approx(EXPECTED_HAND)


def test_vqa_accuracy_metric_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[B, A\]"):
        VQAAccuracy().update(torch.tensor([0]), torch.tensor([1.0]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[B\]"):
        VQAAccuracy().update(torch.tensor([0, 1]), torch.ones(2, 2), torch.tensor([0]))


def test_vqa_accuracy_metric_equals_string_accuracy_end_to_end() -> None:
    """answer_scores built with official_answer_scores make the metric the official accuracy."""
    rng = random.Random(3)
    vocab = {s: i for i, s in enumerate(sorted({normalize_answer(a) for a in ANSWER_POOL}))}
    strings = list(vocab)
    questions = [_random_answers(rng) for _ in range(64)]
    answer_scores = torch.zeros(len(questions), len(vocab))
    for row, answers in enumerate(questions):
        for index, score in official_answer_scores(answers, vocab).items():
            answer_scores[row, index] = score
    preds = torch.randint(len(vocab), (len(questions),), generator=torch.Generator().manual_seed(0))
    metric = VQAAccuracy()
    metric.update(preds, answer_scores, torch.full((len(questions),), OTHER))
    expected = [vqa_accuracy(strings[p], a) for p, a in zip(preds.tolist(), questions, strict=True)]
    assert metric.compute()["overall"].item() == pytest.approx(100 * sum(expected) / len(expected))
