"""The official VQA accuracy, as a string function, a vocabulary scorer and a torchmetrics Metric.

This module re-implements the behaviour of the official VQA evaluation script
(``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` of GT-Vision-Lab/VQA), quirks included:

* answers are cleaned (``"\\n"`` and ``"\\t"`` become spaces, then ``strip()``);
* only when the human answers of a question are not all identical (after cleaning) are the
  prediction and the human answers normalized (punctuation, number words, articles,
  contractions, lower case); when they are all identical nothing is normalized, not even case;
* the accuracy is the mean, over the human answers, of ``min(1, m / 3)`` where ``m`` counts the
  *other* human answers (leave that one out) equal to the prediction.

Evaluation during training never touches strings: data preparation stores, for every question,
the official accuracy of every candidate answer (:func:`official_answer_scores`, or
:class:`AnswerScorer` for a whole dataset) as a dense ``answer_scores[B, A]`` tensor, and
:class:`VQAAccuracy` gathers the score of the predicted answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import torch
from torch import Tensor
from torchmetrics import Metric

from hint_lightning.data.batch import ANSWER_TYPES

__all__ = [
    "AnswerScorer",
    "VQAAccuracy",
    "normalize_answer",
    "official_answer_scores",
    "vqa_accuracy",
    "vqa_accuracy_compute",
    "vqa_accuracy_from_scores",
    "vqa_accuracy_update",
]

# --------------------------------------------------------------------------------------------
# Tables of the official evaluation script (data, kept identical to the official ones).
# --------------------------------------------------------------------------------------------

CONTRACTIONS: Final[Mapping[str, str]] = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
"""Official contraction table (word without apostrophe -> with). Keys with capitals never match
because words are lower-cased first; ``"somebody'd" -> "somebodyd"`` is official too."""

NUMBER_WORDS: Final[Mapping[str, str]] = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
"""Official ``manualMap``: number words (and ``"none"``) to digits."""

ARTICLES: Final[frozenset[str]] = frozenset({"a", "an", "the"})
"""Words dropped by the official normalization."""

PUNCTUATION: Final[tuple[str, ...]] = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
"""Official punctuation list, in its order (apostrophes, colons and periods are not in it)."""

# A comma between two digits ("1,000"): when present anywhere, all punctuation is deleted.
_COMMA_BETWEEN_DIGITS: Final = re.compile(r"(\d)(,)(\d)")
# Official ``periodStrip``. Its ``(?!<=\d)`` was meant as a look-behind but is a look-ahead for
# the text "<=" plus a digit, so it never blocks: every period not followed by a digit matches.
_PERIOD_NOT_BEFORE_DIGIT: Final = re.compile(r"(?!<=\d)(\.)(?!\d)")
# The official code passes ``re.UNICODE`` (== 32) as the ``count`` argument of ``sub``, so at
# most 32 periods are removed.
_PERIOD_STRIP_COUNT: Final[int] = int(re.UNICODE)

_NUM_ANSWER_TYPES: Final[int] = len(ANSWER_TYPES)

# --------------------------------------------------------------------------------------------
# String-level accuracy.
# --------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Replace newlines and tabs by spaces and strip, as done to every official answer."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def _process_punctuation(text: str) -> str:
    """Official ``processPunctuation``.

    Each punctuation mark is deleted if it touches a space somewhere in the *input* text (or if
    the input has a comma between digits anywhere), otherwise it is replaced by a space. Then
    at most 32 periods that are not followed by a digit are deleted.
    """
    delete_all = _COMMA_BETWEEN_DIGITS.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if delete_all or f"{mark} " in text or f" {mark}" in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_STRIP_COUNT)


def _process_digit_article(text: str) -> str:
    """Official ``processDigitArticle``: lower-case, split on whitespace, number words to
    digits, drop articles, expand contractions, join with single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(answer: str) -> str:
    """Normalize an answer exactly like the official VQA evaluation.

    Cleaning (newlines and tabs to spaces, ``strip()``), then the official
    ``processPunctuation`` and ``processDigitArticle``.

    Args:
        answer: a raw answer string.

    Returns:
        The normalized answer.

    Examples:
        >>> normalize_answer("Two")
        '2'
        >>> normalize_answer("the dog.")
        'dog'
        >>> normalize_answer("isnt")
        "isn't"
        >>> normalize_answer("1,000")
        '1000'
        >>> normalize_answer("1.5")
        '1.5'
    """
    return _process_digit_article(_process_punctuation(_clean(answer)))


def _mean_leave_one_out_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Mean over the answers of ``min(1, #(other answers equal to prediction) / 3)``.

    Arithmetic in the same order as the official script (a list of per-answer values, then
    ``sum / len``), so the floats are the same.
    """
    matches = sum(answer == prediction for answer in answers)
    per_answer = [min(1.0, (matches - (answer == prediction)) / 3) for answer in answers]
    return float(sum(per_answer)) / len(per_answer)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one predicted answer against the human answers.

    Args:
        prediction: the predicted answer string.
        answers: the human answers of the question (usually 10), raw.

    Returns:
        The accuracy in [0, 1]. The prediction and the answers are normalized only when the
        cleaned human answers are not all identical (official quirk).

    Raises:
        ValueError: if ``answers`` is empty.

    Examples:
        >>> vqa_accuracy("two", ["2"] * 4 + ["3"] * 6)
        1.0
        >>> vqa_accuracy("2", ["2"] * 3 + ["3"] * 7)  # leave-one-out: 3 matches are not enough
        0.9
        >>> round(vqa_accuracy("2", ["2"] + ["3"] * 9), 6)
        0.3
        >>> vqa_accuracy("yes", ["Yes"] * 10)  # all identical: not even lower-cased
        0.0
    """
    if len(answers) == 0:
        raise ValueError("vqa_accuracy needs at least one human answer")
    cleaned = [_clean(answer) for answer in answers]
    prediction = _clean(prediction)
    if len(set(cleaned)) > 1:
        cleaned = [normalize_answer(answer) for answer in cleaned]
        prediction = normalize_answer(prediction)
    return _mean_leave_one_out_accuracy(prediction, cleaned)


# --------------------------------------------------------------------------------------------
# Scores of a whole answer vocabulary.
# --------------------------------------------------------------------------------------------


def _group_by(keys: Sequence[str], values: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """Map each distinct key to the values that have it."""
    groups: dict[str, list[int]] = {}
    for key, value in zip(keys, values, strict=True):
        groups.setdefault(key, []).append(value)
    return {key: tuple(group) for key, group in groups.items()}


class AnswerScorer:
    """The official accuracy of every candidate answer of a fixed vocabulary, fast.

    Building the scorer normalizes every vocabulary entry once (O(A)); each call then only
    looks up the candidates that can score above 0, so it costs O(len(answers)). A candidate
    scores above 0 only if its cleaned form equals a cleaned human answer (answers all
    identical) or its normalized form equals a normalized human answer (otherwise); both forms
    of every candidate are indexed, so vocabularies with non-normalized entries (``"The Dog"``)
    are scored exactly too.

    Args:
        answer_index: the vocabulary, answer string -> class index. Copied: later changes to
            the mapping are not seen.

    Examples:
        >>> scorer = AnswerScorer({"yes": 0, "no": 1, "2": 2})
        >>> scorer(["yes"] * 10)
        {0: 1.0}
        >>> scorer(["yes"] * 8 + ["no", "two"])
        {0: 1.0, 1: 0.3, 2: 0.3}
    """

    def __init__(self, answer_index: Mapping[str, int]) -> None:
        self.answer_index: dict[str, int] = dict(answer_index)
        strings = list(self.answer_index)
        indices = list(self.answer_index.values())
        self._by_cleaned = _group_by([_clean(s) for s in strings], indices)
        self._by_normalized = _group_by([normalize_answer(s) for s in strings], indices)

    def __call__(self, answers: Sequence[str]) -> dict[int, float]:
        """Score every candidate answer against the human answers of one question.

        Args:
            answers: the human answers of the question, raw.

        Returns:
            ``{class index: official accuracy}`` for the candidates that score above 0,
            equal to ``vqa_accuracy(candidate, answers)``. If several strings share a class
            index, the best score is kept.

        Raises:
            ValueError: if ``answers`` is empty.
        """
        if len(answers) == 0:
            raise ValueError("official_answer_scores needs at least one human answer")
        cleaned = [_clean(answer) for answer in answers]
        if len(set(cleaned)) > 1:
            forms, index = [normalize_answer(answer) for answer in cleaned], self._by_normalized
        else:
            forms, index = cleaned, self._by_cleaned
        scores: dict[int, float] = {}
        for form in Counter(forms):
            score = _mean_leave_one_out_accuracy(form, forms)
            if score <= 0.0:
                continue
            for class_index in index.get(form, ()):
                scores[class_index] = max(score, scores.get(class_index, 0.0))
        return scores


_scorer_cache: list[AnswerScorer] = []


def _scorer_for(answer_index: Mapping[str, int]) -> AnswerScorer:
    """The scorer of ``answer_index``, reused while the vocabulary stays equal to the last one."""
    if _scorer_cache and _scorer_cache[0].answer_index == answer_index:
        return _scorer_cache[0]
    scorer = AnswerScorer(answer_index)
    _scorer_cache[:] = [scorer]
    return scorer


def official_answer_scores(
    answers: Sequence[str], answer_index: Mapping[str, int]
) -> dict[int, float]:
    """Official accuracy of predicting each candidate of a vocabulary, nonzero entries only.

    Equal to ``{answer_index[c]: vqa_accuracy(c, answers)}`` over the candidates ``c`` with a
    nonzero accuracy, but computed by looking up only the candidates that can match. The
    :class:`AnswerScorer` of the most recent vocabulary is cached (and reused while the
    vocabulary compares equal), so calling this for every question of a dataset is fast.

    Args:
        answers: the human answers of one question (usually 10), raw.
        answer_index: the vocabulary, answer string -> class index.

    Returns:
        ``{class index: accuracy in (0, 1]}``.

    Raises:
        ValueError: if ``answers`` is empty.

    Examples:
        >>> official_answer_scores(["Two"] * 2 + ["2"] * 8, {"2": 0, "two": 1, "3": 2})
        {0: 1.0, 1: 1.0}
        >>> official_answer_scores(["Two"] * 10, {"2": 0, "two": 1, "Two": 2})  # no normalization
        {2: 1.0}
    """
    return _scorer_for(answer_index)(answers)


# --------------------------------------------------------------------------------------------
# Tensor-level accuracy (functional core and Metric).
# --------------------------------------------------------------------------------------------


def vqa_accuracy_update(
    preds: Tensor, answer_scores: Tensor, answer_type: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-answer-type sums of the official accuracy of the predictions, and counts.

    Args:
        preds: [B] long, predicted answer indices in ``[0, A)``.
        answer_scores: [B, A] float, official accuracy of each candidate answer.
        answer_type: [B] long, index into :data:`~hint_lightning.data.batch.ANSWER_TYPES`.

    Returns:
        ``(sums, counts)``: [3] float sums of accuracies in [0, 1] and [3] long numbers of
        questions, one entry per answer type.

    Raises:
        ValueError: if the shapes do not match.
    """
    if preds.ndim != 1 or answer_type.shape != preds.shape:
        raise ValueError(
            f"preds and answer_type must both be [B], got {tuple(preds.shape)} and "
            f"{tuple(answer_type.shape)}"
        )
    if answer_scores.ndim != 2 or answer_scores.shape[0] != preds.shape[0]:
        raise ValueError(f"answer_scores must be [B, A], got {tuple(answer_scores.shape)}")
    scores = answer_scores.gather(1, preds.long().unsqueeze(1)).squeeze(1)
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))  # no half-precision sums
    answer_type = answer_type.long()
    sums = scores.new_zeros(_NUM_ANSWER_TYPES).index_add_(0, answer_type, scores)
    counts = torch.zeros(_NUM_ANSWER_TYPES, dtype=torch.long, device=preds.device)
    counts.index_add_(0, answer_type, torch.ones_like(answer_type))
    return sums, counts


def vqa_accuracy_compute(sums: Tensor, counts: Tensor) -> dict[str, Tensor]:
    """Overall and per-answer-type accuracy in percent from per-type sums and counts.

    Args:
        sums: [3] float, summed accuracies per answer type.
        counts: [3] long, numbers of questions per answer type.

    Returns:
        ``{"overall": ..., "yes/no": ..., "number": ..., "other": ...}``, 0-dim tensors in
        percent (100 x mean accuracy); nan where there is no question.
    """
    per_type = 100.0 * sums / counts
    overall = 100.0 * sums.sum() / counts.sum()
    return {"overall": overall} | {name: per_type[i] for i, name in enumerate(ANSWER_TYPES)}


def vqa_accuracy_from_scores(
    preds: Tensor, answer_scores: Tensor, answer_type: Tensor
) -> dict[str, Tensor]:
    """Official VQA accuracy of a batch of predictions, overall and per answer type.

    Args:
        preds: [B] long, predicted answer indices.
        answer_scores: [B, A] float, official accuracy of each candidate answer.
        answer_type: [B] long, index into :data:`~hint_lightning.data.batch.ANSWER_TYPES`.

    Returns:
        ``{"overall", "yes/no", "number", "other"}`` -> 0-dim tensors in percent; nan for an
        answer type absent from the batch.

    Examples:
        >>> scores = torch.tensor([[1.0, 0.0], [0.3, 0.6]])
        >>> acc = vqa_accuracy_from_scores(torch.tensor([0, 1]), scores, torch.tensor([0, 2]))
        >>> {name: round(value.item(), 2) for name, value in acc.items()}
        {'overall': 80.0, 'yes/no': 100.0, 'number': nan, 'other': 60.0}
    """
    return vqa_accuracy_compute(*vqa_accuracy_update(preds, answer_scores, answer_type))


class VQAAccuracy(Metric):
    """Official VQA accuracy (percent), overall and per answer type, accumulated over batches.

    The accuracy of a prediction is read from the precomputed ``answer_scores`` (see
    :func:`official_answer_scores`), so the result equals the official evaluation script's.

    Examples:
        >>> metric = VQAAccuracy()
        >>> metric.update(torch.tensor([0]), torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
        >>> metric.update(torch.tensor([1]), torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
        >>> {name: round(value.item(), 2) for name, value in metric.compute().items()}
        {'overall': 50.0, 'yes/no': 100.0, 'number': 0.0, 'other': nan}
    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False

    sums: Tensor
    counts: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("sums", default=torch.zeros(_NUM_ANSWER_TYPES), dist_reduce_fx="sum")
        self.add_state(
            "counts", default=torch.zeros(_NUM_ANSWER_TYPES, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, answer_scores: Tensor, answer_type: Tensor) -> None:
        """Add a batch.

        Args:
            preds: [B] long, predicted answer indices.
            answer_scores: [B, A] float, official accuracy of each candidate answer.
            answer_type: [B] long, index into :data:`~hint_lightning.data.batch.ANSWER_TYPES`.
        """
        sums, counts = vqa_accuracy_update(preds, answer_scores.detach(), answer_type)
        self.sums += sums.to(self.sums.dtype)
        self.counts += counts

    def compute(self) -> dict[str, Tensor]:
        """Accuracy in percent: ``{"overall", "yes/no", "number", "other"}``; nan if absent."""
        return vqa_accuracy_compute(self.sums, self.counts)
