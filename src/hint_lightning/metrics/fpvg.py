"""FPVG over an evaluation: category shares and FPVG+, overall and by correctness.

The functional core is :mod:`hint_lightning.metrics.functional.fpvg`; this module adds the
state (sums and counts, exact under DDP: :class:`QuestionMeans`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hint_lightning.importance.replacement import check_replacement
from hint_lightning.metrics.functional.fpvg import (
    CATEGORIES,
    CorrectFn,
    PredictFn,
    fpvg_outcome,
    fpvg_proposal_sets,
)
from hint_lightning.metrics.question_means import QuestionMeans

__all__ = ["FPVG"]


class FPVG(QuestionMeans):
    """FPVG+ and the four categories (Reich et al. 2023), as shares of the evaluated questions.

    Metric names: ``fpvg_plus`` (good grounding: GGC + GGW), ``ggc``, ``ggw``, ``bgc``, ``bgw``
    (shares of all evaluated questions, summing to 1), ``fpvg_plus_correct`` and
    ``fpvg_plus_wrong`` (good grounding among the questions answered correctly / wrongly with
    every proposal), and ``accuracy_all``, ``accuracy_relevant``, ``accuracy_irrelevant`` (the
    script's three accuracies on the evaluated questions).

    Args:
        relevant_threshold: human importance above which a proposal is relevant.
        irrelevant_threshold: human importance at or below which it is irrelevant (None: the
            same threshold).
        replacement: how the other proposals are removed (``drop``: FPVG's own choice).
        max_rows: at most this many rows per forward call.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> def predict_fn(proposals, mask):  # answer 1 when proposal 0 is there, else 0
        ...     return mask[:, 0].long()
        >>> metric = FPVG(relevant_threshold=0.5)
        >>> human = torch.tensor([[0.9, 0.1, 0.2]])
        >>> values = metric.per_question(
        ...     predict_fn, lambda p: p == 1, torch.zeros(1, 3, 2), human)
        >>> values["fpvg_plus"], values["ggc"], values["fpvg_plus_correct"]
        (tensor([1.]), tensor([1.]), tensor([1.]))
    """

    higher_is_better: bool = True

    def __init__(
        self,
        relevant_threshold: float = 0.55,
        irrelevant_threshold: float | None = None,
        replacement: str = "drop",
        max_rows: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.relevant_threshold = float(relevant_threshold)
        self.irrelevant_threshold = (
            self.relevant_threshold if irrelevant_threshold is None else float(irrelevant_threshold)
        )
        if self.irrelevant_threshold > self.relevant_threshold:
            raise ValueError(
                f"irrelevant_threshold ({self.irrelevant_threshold}) must not exceed "
                f"relevant_threshold ({self.relevant_threshold})"
            )
        self.replacement = check_replacement(replacement)
        self.max_rows = max_rows
        names = ["fpvg_plus", *CATEGORIES, "fpvg_plus_correct", "fpvg_plus_wrong"]
        names += ["accuracy_all", "accuracy_relevant", "accuracy_irrelevant"]
        super().__init__(names, **kwargs)

    def per_question(
        self,
        predict_fn: PredictFn,
        correct_fn: CorrectFn,
        proposals: Tensor,
        human_importance: Tensor,
        proposal_mask: Tensor | None = None,
        has_importance: Tensor | None = None,
        predictions: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Every FPVG value of every question of a batch (no state change).

        Args:
            predict_fn: predicted labels of copy-major perturbed batches.
            correct_fn: ``[K, B]`` predictions -> ``[K, B]`` bool.
            proposals: ``[B, N, D]``.
            human_importance: ``[B, N]``.
            proposal_mask: ``[B, N]`` bool or 0/1; None: all real.
            has_importance: ``[B]`` bool (None: all have human importance).
            predictions: ``[B]`` the labels with all proposals, if known.

        Returns:
            name -> ``[B]`` float: 1.0 / 0.0 indicators; NaN for the questions FPVG does not
            evaluate (no human importance, or no relevant or no irrelevant proposal), and for
            ``fpvg_plus_correct`` (``_wrong``) on wrong (correct) questions.
        """
        relevant, irrelevant = fpvg_proposal_sets(
            human_importance, proposal_mask, self.relevant_threshold, self.irrelevant_threshold
        )
        outcome = fpvg_outcome(
            predict_fn, correct_fn, proposals, relevant, irrelevant, proposal_mask,
            predictions=predictions, replacement=self.replacement, max_rows=self.max_rows,
        )  # fmt: skip
        evaluated = outcome.evaluated
        if has_importance is not None:
            evaluated = evaluated & has_importance.bool().to(evaluated.device)
        nan = torch.tensor(float("nan"), device=evaluated.device)
        correct_all = outcome.correct[0]
        good = outcome.categories["good"].float()
        values = {
            "fpvg_plus": good,
            **{name: outcome.categories[name].float() for name in CATEGORIES},
            "fpvg_plus_correct": torch.where(correct_all, good, nan),
            "fpvg_plus_wrong": torch.where(~correct_all, good, nan),
            "accuracy_all": outcome.correct[0].float(),
            "accuracy_relevant": outcome.correct[1].float(),
            "accuracy_irrelevant": outcome.correct[2].float(),
        }
        return {name: torch.where(evaluated, value, nan) for name, value in values.items()}
