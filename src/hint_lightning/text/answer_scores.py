"""The official VQA accuracy of answer strings: one prediction, or every candidate of a vocabulary.

Behaviour of the official VQA evaluation script (``vqaEval.py`` of GT-Vision-Lab/VQA), quirks
included:

* answers are cleaned (``"\\n"`` and ``"\\t"`` become spaces, then ``strip()``);
* only when the human answers of a question are not all identical (after cleaning) are the
  prediction and the human answers normalized (:func:`~hint_lightning.text.answers.
  normalize_answer`); when they are all identical nothing is normalized, not even case;
* the accuracy is the mean, over the human answers, of ``min(1, m / 3)`` where ``m`` counts the
  *other* human answers (leave that one out) equal to the prediction.

The prepare step stores, for every question, the accuracy of every candidate answer
(:class:`AnswerScorer`), so evaluation during training is a gather
(:class:`hint_lightning.metrics.vqa_accuracy.VQAAccuracy`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from hint_lightning.text.answers import clean_answer, normalize_answer

__all__ = ["AnswerScorer", "official_answer_scores", "vqa_accuracy"]


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
    cleaned = [clean_answer(answer) for answer in answers]
    prediction = clean_answer(prediction)
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
        self._by_cleaned = _group_by([clean_answer(s) for s in strings], indices)
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
        cleaned = [clean_answer(answer) for answer in answers]
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
