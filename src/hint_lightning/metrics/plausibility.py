"""Plausibility metrics over an evaluation: the means of the per-question values.

The functional core is :mod:`hint_lightning.metrics.functional.plausibility`; this module adds
the state (sums and counts, exact under DDP: :class:`QuestionMeans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from hint_lightning.metrics.functional.plausibility import (
    human_relevance_mask,
    iou_at_k,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    roc_auc,
    top_k_intersection,
)
from hint_lightning.metrics.functional.ranking import check_fractions, check_importance
from hint_lightning.metrics.grounding import spearman_rank_correlation
from hint_lightning.metrics.question_means import QuestionMeans, fraction_name

__all__ = ["Plausibility"]


class Plausibility(QuestionMeans):
    """Pointing game, relevance mass and rank accuracy, top-k intersection, ROC-AUC, IoU@k, rho.

    Metric names (each a mean over the questions with human importance where it is defined):
    ``pointing_game``, ``relevance_mass``, ``relevance_rank``, ``top_k_intersection``,
    ``roc_auc``, ``iou_<k%>`` per fraction and ``iou`` (their mean, VisFIS's ``plau_iou``), and
    ``rho`` (Spearman correlation with the continuous human importance, as
    :class:`~hint_lightning.metrics.grounding.GroundingCorrelation`).

    Args:
        threshold: human importance above which a proposal is relevant (VisFIS: VQA-HAT 0.55,
            CLEVR-XAI 0.85, GQA 0.3).
        top_k: ``k`` of the top-k intersection (proposals).
        iou_fractions: the fractions of proposals of IoU@k.
        positive_mass: relevance mass over the positive part of importance (energy pointing
            game; see :func:`relevance_mass_accuracy`).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> import torch
        >>> metric = Plausibility(threshold=0.5, top_k=1, iou_fractions=(0.5,))
        >>> imp = torch.tensor([[0.9, 0.1, 0.3, 0.2], [0.1, 0.9, 0.3, 0.2]])
        >>> human = torch.tensor([[0.8, 0.1, 0.6, 0.0], [0.8, 0.1, 0.6, 0.0]])
        >>> values = metric.per_question(imp, human)
        >>> values["pointing_game"], values["relevance_rank"]
        (tensor([1., 0.]), tensor([1.0000, 0.5000]))
        >>> metric.update(values)
        >>> round(float(metric.compute()["pointing_game"]), 2)
        0.5
    """

    higher_is_better: bool = True

    def __init__(
        self,
        threshold: float = 0.55,
        top_k: int = 3,
        iou_fractions: Sequence[float] = (0.1, 0.25, 0.5),
        positive_mass: bool = True,
        **kwargs: Any,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.threshold = float(threshold)
        self.top_k = int(top_k)
        self.iou_fractions = check_fractions(iou_fractions, "iou_fractions")
        self.positive_mass = bool(positive_mass)
        iou_names = [fraction_name("iou", f) for f in self.iou_fractions]
        names = ["pointing_game", "relevance_mass", "relevance_rank", "top_k_intersection"]
        super().__init__([*names, "roc_auc", *iou_names, "iou", "rho"], **kwargs)

    def per_question(
        self,
        importance: Tensor,
        human_importance: Tensor,
        proposal_mask: Tensor | None = None,
        has_importance: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Every metric of every question of a batch (no state change).

        Args:
            importance: ``[B, N]`` the model's importance (any method).
            human_importance: ``[B, N]`` human importance scores.
            proposal_mask: ``[B, N]`` bool or 0/1; None: all real.
            has_importance: ``[B]`` bool, whether the question has human importance (None:
                all have); the others get NaN everywhere.

        Returns:
            name -> ``[B]`` float (NaN: undefined for that question).
        """
        importance, mask = check_importance(importance, proposal_mask)
        human, _ = check_importance(human_importance, mask, "human_importance")
        relevant = human_relevance_mask(human, self.threshold, mask)
        ious = iou_at_k(importance, relevant, mask, self.iou_fractions)
        values = {
            "pointing_game": pointing_game(importance, relevant, mask),
            "relevance_mass": relevance_mass_accuracy(
                importance, relevant, mask, positive_only=self.positive_mass
            ),
            "relevance_rank": relevance_rank_accuracy(importance, relevant, mask),
            "top_k_intersection": top_k_intersection(importance, relevant, mask, self.top_k),
            "roc_auc": roc_auc(importance, relevant, mask),
            **{
                fraction_name("iou", f): iou
                for f, iou in zip(self.iou_fractions, ious, strict=True)
            },
            "iou": ious.mean(dim=0),
            "rho": spearman_rank_correlation(importance, human, mask),
        }
        if has_importance is not None:
            missing = ~has_importance.bool().to(importance.device)
            values = {
                name: value.masked_fill(missing, float("nan")) for name, value in values.items()
            }
        return values
