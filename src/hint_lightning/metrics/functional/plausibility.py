"""Plausibility: does the model's importance agree with people's? Per-question values.

Every function scores a batch of questions from importance ``[B, N]`` (one value per region
proposal, any method: gradient, attention, ...) and a ``[B, N]`` bool mask of the proposals
people found relevant, and returns ``[B]`` float with NaN where the value is undefined (no
relevant proposal, no real proposal, ...). Padded proposals (``proposal_mask`` False) take no
part. Human importance scores become the relevance mask with :func:`human_relevance_mask`
(VisFIS's per-dataset thresholds: :data:`VISFIS_THRESHOLDS`); the rank correlation
(:func:`~hint_lightning.metrics.grounding.spearman_rank_correlation`) uses the scores as they
are.

Each localisation metric equals Quantus 0.6's (Hedström et al. 2023) on the same box vectors
(``a_batch`` and ``s_batch`` shaped ``[B, 1, N]``, ``normalise=False``, ``abs=False``), which
``tests/test_plausibility_metrics.py`` checks with Quantus as the oracle; where we differ, the
docstring says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hint_lightning.metrics.functional.ranking import (
    check_fractions,
    check_importance,
    descending_positions,
    most_relevant_mask,
    visfis_top_mask,
)
from hint_lightning.metrics.grounding import rank_with_ties

__all__ = [
    "VISFIS_THRESHOLDS",
    "human_relevance_mask",
    "iou_at_k",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "roc_auc",
    "top_k_intersection",
]

VISFIS_THRESHOLDS: dict[str, float] = {"hat": 0.55, "clevr_xai": 0.85, "gqa": 0.3}
"""Human importance above which a proposal counts as relevant, per dataset (zfying/visfis,
``scripts/common.sh``: VQA-HAT 0.55, CLEVR-XAI 0.85, GQA 0.3)."""


def _inputs(
    importance: Tensor, relevant: Tensor, proposal_mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Validated ``(importance, relevant & real, real)``."""
    importance, real = check_importance(importance, proposal_mask)
    if not isinstance(relevant, Tensor) or tuple(relevant.shape) != tuple(importance.shape):
        shape = tuple(relevant.shape) if isinstance(relevant, Tensor) else type(relevant)
        raise ValueError(
            f"relevant must be a [B, N] mask shaped like importance {tuple(importance.shape)}, "
            f"got {shape}"
        )
    if relevant.dtype != torch.bool:
        raise ValueError(
            f"relevant must be a bool mask (use human_relevance_mask), got {relevant.dtype}"
        )
    return importance, relevant & real, real


def human_relevance_mask(
    human_importance: Tensor, threshold: float, proposal_mask: Tensor | None = None
) -> Tensor:
    """Proposals people found relevant: human importance strictly above ``threshold``.

    As VisFIS (``hint_scores > impt_threshold``); padded proposals are never relevant.

    Args:
        human_importance: ``[B, N]`` float, e.g. HINT's ``E+ / (E+ + E-)`` per proposal.
        threshold: see :data:`VISFIS_THRESHOLDS`.
        proposal_mask: ``[B, N]`` bool or 0/1; None: all real.

    Returns:
        ``[B, N]`` bool.

    Example:
        >>> human_relevance_mask(torch.tensor([[0.2, 0.55, 0.9]]), 0.55)
        tensor([[False, False,  True]])
    """
    human, real = check_importance(human_importance, proposal_mask, "human_importance")
    return real & (human > threshold)


def pointing_game(
    importance: Tensor, relevant: Tensor, proposal_mask: Tensor | None = None
) -> Tensor:
    """Whether the most important proposal is relevant (Zhang et al. 2018; Quantus PointingGame).

    A hit when any real proposal that attains the row's maximum importance is relevant (ties
    all count, as Quantus's ``a == a.max()``).

    Returns:
        ``[B]`` float: 1.0 hit, 0.0 miss, NaN without relevant proposal (Quantus 0.6 returns
        True there: it writes NaN into a bool array).

    Example:
        >>> imp = torch.tensor([[0.1, 0.9, 0.3], [0.9, 0.1, 0.3]])
        >>> pointing_game(imp, torch.tensor([[False, True, False], [False, True, False]]))
        tensor([1., 0.])
    """
    importance, relevant, real = _inputs(importance, relevant, proposal_mask)
    ranked = importance.masked_fill(~real, float("-inf"))
    at_max = real & (ranked == ranked.max(dim=1, keepdim=True).values)
    hit = (at_max & relevant).any(dim=1).to(importance.dtype)
    return hit.masked_fill(~relevant.any(dim=1), float("nan"))


def relevance_mass_accuracy(
    importance: Tensor,
    relevant: Tensor,
    proposal_mask: Tensor | None = None,
    positive_only: bool = True,
) -> Tensor:
    """Share of the importance mass on relevant proposals (Arras et al. 2022; energy pointing game).

    ``sum_{r relevant} a_r / sum_r a_r`` over real proposals. With ``positive_only`` (the
    default) ``a = max(importance, 0)``, as the energy pointing game of Model-Guidance
    (Rao et al. 2023, sukrutrao/Model-Guidance ``BoundingBoxEnergyMultiple``) and Score-CAM:
    the value lies in [0, 1], and a row without positive importance scores 0 (Model-Guidance's
    default, ``include_undefined=True``). With ``positive_only=False`` the signed sums are used
    as Quantus's ``RelevanceMassAccuracy`` does (the value can then leave [0, 1], even exceed
    1, when importance is negative); a zero total gives NaN.

    Returns:
        ``[B]`` float; NaN without relevant proposal.

    Example:
        >>> imp = torch.tensor([[3.0, 1.0, -2.0]])
        >>> rel = torch.tensor([[True, False, False]])
        >>> relevance_mass_accuracy(imp, rel)
        tensor([0.7500])
        >>> relevance_mass_accuracy(imp, rel, positive_only=False)
        tensor([1.5000])
    """
    importance, relevant, real = _inputs(importance, relevant, proposal_mask)
    mass = importance.clamp(min=0) if positive_only else importance
    mass = torch.where(real, mass, 0.0)
    within = torch.where(relevant, mass, 0.0).sum(dim=1)
    total = mass.sum(dim=1)
    if positive_only:
        share = torch.where(total > 0, within / total.clamp(min=torch.finfo(mass.dtype).tiny), 0.0)
    else:
        share = torch.where(total != 0, within / total, float("nan"))
    return share.masked_fill(~relevant.any(dim=1), float("nan"))


def relevance_rank_accuracy(
    importance: Tensor, relevant: Tensor, proposal_mask: Tensor | None = None
) -> Tensor:
    """Share of the ``K`` most important proposals that are relevant, ``K`` = number relevant.

    Arras et al. 2022, Quantus ``RelevanceRankAccuracy``. Ties are broken by the lower proposal
    index (a stable sort; Quantus's ``np.argsort(-a)`` leaves tie order to numpy).

    Returns:
        ``[B]`` float in [0, 1]; NaN without relevant proposal.

    Example:
        >>> imp = torch.tensor([[0.9, 0.8, 0.1, 0.7]])
        >>> relevance_rank_accuracy(imp, torch.tensor([[True, False, False, True]]))
        tensor([0.5000])
    """
    importance, relevant, real = _inputs(importance, relevant, proposal_mask)
    count = relevant.sum(dim=1)
    top = most_relevant_mask(descending_positions(importance, real), real, count)
    hits = (top & relevant).sum(dim=1).to(importance.dtype)
    return torch.where(count > 0, hits / count.clamp(min=1), float("nan"))


def top_k_intersection(
    importance: Tensor,
    relevant: Tensor,
    proposal_mask: Tensor | None = None,
    k: int = 3,
    concept_influence: bool = False,
) -> Tensor:
    """Share of the ``k`` most important proposals that are relevant (Theiner et al. 2021).

    Quantus ``TopKIntersection`` on proposals: with fewer than ``k`` real proposals all of them
    are the top set (Quantus slices ``[:k]``). ``concept_influence`` multiplies by
    ``n / number relevant`` (``n`` real proposals), Quantus's option of that name. Ties: the
    lower index first.

    Returns:
        ``[B]`` float; NaN without relevant proposal.

    Example:
        >>> imp = torch.tensor([[0.9, 0.8, 0.1, 0.7]])
        >>> top_k_intersection(imp, torch.tensor([[True, False, False, True]]), k=2)
        tensor([0.5000])
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    importance, relevant, real = _inputs(importance, relevant, proposal_mask)
    size = real.sum(dim=1).clamp(max=k)
    top = most_relevant_mask(descending_positions(importance, real), real, size)
    share = (top & relevant).sum(dim=1).to(importance.dtype) / size.clamp(min=1)
    count = relevant.sum(dim=1)
    if concept_influence:
        share = share * real.sum(dim=1) / count.clamp(min=1)
    return share.masked_fill(count == 0, float("nan"))


def roc_auc(importance: Tensor, relevant: Tensor, proposal_mask: Tensor | None = None) -> Tensor:
    """Area under the ROC curve of importance as a detector of relevant proposals.

    Quantus ``AUC`` (``sklearn.metrics.roc_curve`` then ``auc``), computed as the Mann-Whitney
    statistic: the probability that a relevant proposal outranks an irrelevant one, ties
    counting one half (average ranks, vectorized).

    Returns:
        ``[B]`` float in [0, 1]; NaN when a row has no relevant or no irrelevant proposal.

    Example:
        >>> imp = torch.tensor([[0.9, 0.5, 0.5, 0.1]])
        >>> roc_auc(imp, torch.tensor([[True, True, False, False]]))
        tensor([0.8750])
    """
    importance, relevant, real = _inputs(importance, relevant, proposal_mask)
    ranks = rank_with_ties(importance, real)
    positives = relevant.sum(dim=1).to(ranks.dtype)
    negatives = real.sum(dim=1).to(ranks.dtype) - positives
    rank_sum = torch.where(relevant, ranks, 0.0).sum(dim=1)
    auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return torch.where((positives > 0) & (negatives > 0), auc, float("nan"))


def iou_at_k(
    importance: Tensor,
    relevant: Tensor,
    proposal_mask: Tensor | None = None,
    fractions: Sequence[float] = (0.1, 0.25, 0.5),
) -> Tensor:
    """IoU of the model's top-k proposals with the relevant ones (VisFIS's ``plau_iou``).

    For every fraction ``f``, the top set is :func:`visfis_top_mask` (positive importance above
    the ``(int(n f) + 1)``-th largest value), and the value is ``|top & relevant| / |top |
    relevant|``. VisFIS (zfying/visfis, ``components/metrics.py``) reports the mean over
    ``f in (0.1, 0.25, 0.5)``.

    Returns:
        ``[F, B]`` float; NaN where the union is empty (no relevant proposal and an empty top
        set).

    Example:
        >>> imp = torch.tensor([[0.9, 0.8, 0.1, 0.7, -0.3, 0.2, 0.0, 0.3, 0.6, 0.4]])
        >>> rel = torch.tensor([[True, False, False, True] + [False] * 6])
        >>> iou_at_k(imp, rel, fractions=(0.2, 0.3))  # top {0, 1} then {0, 1, 3}
        tensor([[0.3333],
                [0.6667]])
    """
    importance, relevant, real = _inputs(importance, relevant, proposal_mask)
    rows = []
    for fraction in check_fractions(fractions):
        top = visfis_top_mask(importance, real, fraction)
        intersection = (top & relevant).sum(dim=1).to(importance.dtype)
        union = (top | relevant).sum(dim=1).to(importance.dtype)
        rows.append(torch.where(union > 0, intersection / union.clamp(min=1), float("nan")))
    return torch.stack(rows)
