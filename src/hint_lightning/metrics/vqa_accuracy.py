"""The official VQA accuracy as a torchmetrics Metric (and the string functions it rests on).

Evaluation during training never touches strings: data preparation stores, for every question,
the official accuracy of every candidate answer (:func:`official_answer_scores`, or
:class:`AnswerScorer` for a whole dataset; both in :mod:`hint_lightning.text.answer_scores`) as a
dense ``answer_scores[B, A]`` tensor, and :class:`VQAAccuracy` gathers the score of the
predicted answer. :func:`vqa_accuracy` (one string against the human answers) and
:func:`normalize_answer` (:mod:`hint_lightning.text.answers`) re-implement the official VQA
evaluation script (``vqaEval.py`` of GT-Vision-Lab/VQA); they are exported here as well.
"""

from __future__ import annotations

from typing import Any, Final

import torch
from torch import Tensor
from torchmetrics import Metric

from hint_lightning.text.answer_scores import AnswerScorer, official_answer_scores, vqa_accuracy
from hint_lightning.text.answers import ANSWER_TYPES, normalize_answer

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

_NUM_ANSWER_TYPES: Final[int] = len(ANSWER_TYPES)

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
