"""Grounding metrics: does the network rely on the regions humans find important?

Importances are per proposal, ``[B, N]`` tensors padded to the largest image of the batch, with
a ``[B, N]`` boolean mask marking the real proposals. Everything here is vectorized over the
batch: ranks come from an ``[B, N, N]`` pairwise comparison, which is cheap for the ~100
proposals of an image.

* :func:`spearman_rank_correlation` and :class:`GroundingCorrelation`: rank correlation between
  network importance (or attention) and human importance, as reported by HINT.
* :func:`top_proposal_outside_human_topk` and :class:`MisgroundedRate`: how often a correct
  answer is "right for the wrong reasons", its most important proposal not being among the
  proposals humans found most important.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "GroundingCorrelation",
    "MisgroundedRate",
    "rank_with_ties",
    "spearman_rank_correlation",
    "top_proposal_outside_human_topk",
]


def _valid_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """The [B, N] bool mask of valid entries (all True when ``mask`` is None)."""
    if x.ndim != 2:
        raise ValueError(f"expected a [B, N] tensor, got shape {tuple(x.shape)}")
    if mask is None:
        return torch.ones_like(x, dtype=torch.bool)
    if mask.shape != x.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != {tuple(x.shape)}")
    return mask.bool()


def _float_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs, float32 otherwise (exact for ranks of up to 2**23 items)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def rank_with_ties(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """1-based average ranks per row among the valid entries, like ``scipy.stats.rankdata``.

    Tied values get the mean of the ranks they span (the "average" method). Computed with an
    ``[B, N, N]`` pairwise comparison, without a loop over rows.

    Args:
        x: [B, N] values to rank (finite on valid entries).
        mask: [B, N] bool, True for valid entries; None means all are valid.

    Returns:
        [B, N] float ranks in ``[1, n_valid]`` on valid entries, nan on invalid entries.

    Examples:
        >>> rank_with_ties(torch.tensor([[10.0, 30.0, 20.0, 20.0]]))
        tensor([[1.0000, 4.0000, 2.5000, 2.5000]])
        >>> rank_with_ties(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[True, False, True]]))
        tensor([[2., nan, 1.]])
    """
    valid = _valid_mask(x, mask)
    other = x.unsqueeze(1)  # [B, 1, N]: entry j of the row
    this = x.unsqueeze(2)  # [B, N, 1]: entry i of the row
    other_valid = valid.unsqueeze(1)
    dtype = _float_dtype(x)
    below = ((other < this) & other_valid).sum(dim=2).to(dtype)
    tied = ((other == this) & other_valid).sum(dim=2).to(dtype)  # includes i itself
    ranks = below + (tied + 1.0) / 2.0
    return ranks.masked_fill(~valid, float("nan"))


def _pearson(x: Tensor, y: Tensor, valid: Tensor) -> Tensor:
    """Per-row Pearson correlation over valid entries; nan for < 2 entries or zero variance.

    Args:
        x: [B, N] float, any value on invalid entries.
        y: [B, N] float, any value on invalid entries.
        valid: [B, N] bool.

    Returns:
        [B] float.
    """
    count = valid.sum(dim=1, keepdim=True)
    x = torch.where(valid, x, 0.0)
    y = torch.where(valid, y, 0.0)
    x_centered = torch.where(valid, x - x.sum(dim=1, keepdim=True) / count, 0.0)
    y_centered = torch.where(valid, y - y.sum(dim=1, keepdim=True) / count, 0.0)
    covariance = (x_centered * y_centered).sum(dim=1)
    x_variance = x_centered.square().sum(dim=1)
    y_variance = y_centered.square().sum(dim=1)
    rho = covariance / (x_variance * y_variance).sqrt()
    defined = (count.squeeze(1) >= 2) & (x_variance > 0) & (y_variance > 0)
    return torch.where(defined, rho.clamp(-1.0, 1.0), float("nan"))


def spearman_rank_correlation(x: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-row Spearman rank correlation over the valid entries, like ``scipy.stats.spearmanr``.

    The Pearson correlation of the average ranks (:func:`rank_with_ties`) of ``x`` and ``y``,
    both ranked among the valid entries of the row only.

    Args:
        x: [B, N] values, e.g. network importance per proposal.
        y: [B, N] values, e.g. human importance per proposal.
        mask: [B, N] bool, True for valid entries; None means all are valid.

    Returns:
        [B] float correlation in [-1, 1]; nan where undefined (fewer than 2 valid entries, or
        all valid values of ``x`` or of ``y`` equal), as scipy returns.

    Examples:
        >>> x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 1.0]])
        >>> y = torch.tensor([[10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
        >>> mask = torch.tensor([[True] * 4, [True] * 4, [True, True, True, False]])
        >>> spearman_rank_correlation(x, y, mask)
        tensor([ 1., -1., nan])
    """
    valid = _valid_mask(x, mask)
    if y.shape != x.shape:
        raise ValueError(f"x and y shapes differ: {tuple(x.shape)} != {tuple(y.shape)}")
    return _pearson(rank_with_ties(x, valid), rank_with_ties(y, valid), valid)


def top_proposal_outside_human_topk(
    network_importance: Tensor,
    human_importance: Tensor,
    mask: Tensor | None = None,
    k: int = 3,
) -> Tensor:
    """Whether the most important proposal for the network is not among the human top-k.

    The network's top proposal is the valid proposal with the largest network importance (the
    first one on ties). It counts as inside the human top-k if its human importance is at least
    the k-th largest human importance among the valid proposals, so proposals tied with the
    k-th one are inside too; a row with at most k valid proposals is never outside. A row
    without any valid proposal gives False.

    Args:
        network_importance: [B, N] float, network importance (or attention) per proposal.
        human_importance: [B, N] float, human importance per proposal.
        mask: [B, N] bool, True for real proposals; None means all are real.
        k: how many human-important proposals count as the right ones (>= 1).

    Returns:
        [B] bool, True where the network's top proposal is outside the human top-k.

    Examples:
        >>> network = torch.tensor([[0.9, 0.1, 0.2, 0.3], [0.1, 0.9, 0.2, 0.3]])
        >>> human = torch.tensor([[0.0, 0.4, 0.3, 0.2], [0.0, 0.4, 0.3, 0.2]])
        >>> top_proposal_outside_human_topk(network, human, k=3)
        tensor([ True, False])
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    valid = _valid_mask(network_importance, mask)
    if human_importance.shape != network_importance.shape:
        raise ValueError(
            f"importance shapes differ: {tuple(network_importance.shape)} != "
            f"{tuple(human_importance.shape)}"
        )
    neg_inf = float("-inf")
    top = network_importance.masked_fill(~valid, neg_inf).argmax(dim=1, keepdim=True)  # [B, 1]
    human = human_importance.masked_fill(~valid, neg_inf)
    kth_largest = human.topk(min(k, human.shape[1]), dim=1).values[:, -1]  # [B], -inf if few
    inside = human.gather(1, top).squeeze(1) >= kth_largest
    return ~inside & valid.any(dim=1)


class GroundingCorrelation(Metric):
    """Mean per-question Spearman correlation between network and human importance.

    Only questions with human importance count; among those, a question whose correlation is
    undefined (fewer than 2 proposals, or constant importance) is left out of the mean and
    counted in ``num_undefined`` instead. Use it for attention-vs-human correlation too, by
    passing attention as ``network_importance``.

    Examples:
        >>> metric = GroundingCorrelation()
        >>> network = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
        >>> human = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
        >>> mask = torch.ones(3, 3, dtype=torch.bool)
        >>> metric.update(network, human, mask, torch.tensor([True, False, True]))
        >>> metric.compute(), metric.num_undefined
        (tensor(1.), tensor(1))
    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False

    rho_sum: Tensor
    num_defined: Tensor
    num_undefined: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("rho_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("num_defined", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("num_undefined", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(
        self,
        network_importance: Tensor,
        human_importance: Tensor,
        proposal_mask: Tensor,
        has_importance: Tensor,
    ) -> None:
        """Add a batch.

        Args:
            network_importance: [B, N] float, network importance (or attention) per proposal.
            human_importance: [B, N] float, human importance per proposal.
            proposal_mask: [B, N] bool, True for real proposals.
            has_importance: [B] bool, whether the question has human importance.
        """
        rho = spearman_rank_correlation(
            network_importance.detach(), human_importance.detach(), proposal_mask
        )
        has_importance = has_importance.bool()
        defined = has_importance & ~rho.isnan()
        self.rho_sum += torch.where(defined, rho, 0.0).sum().to(self.rho_sum.dtype)
        self.num_defined += defined.sum()
        self.num_undefined += (has_importance & rho.isnan()).sum()

    def compute(self) -> Tensor:
        """Mean Spearman correlation (0-dim); nan if no question had a defined correlation."""
        return self.rho_sum / self.num_defined


class MisgroundedRate(Metric):
    """Percentage of correct answers whose top proposal is outside the human top-k.

    Among the correctly answered questions that have human importance, the share (in percent)
    where :func:`top_proposal_outside_human_topk` holds: the answer is right, but the proposal
    the network relies on most is not one of the ``k`` most important ones for humans.

    Args:
        k: size of the human top-k (3 in HINT).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Examples:
        >>> metric = MisgroundedRate(k=1)
        >>> network = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
        >>> human = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
        >>> mask = torch.ones(3, 2, dtype=torch.bool)
        >>> has = torch.tensor([True, True, True])
        >>> metric.update(network, human, mask, has, correct=torch.tensor([True, True, False]))
        >>> metric.compute()
        tensor(50.)
    """

    is_differentiable: bool = False
    higher_is_better: bool = False
    full_state_update: bool = False

    num_misgrounded: Tensor
    num_correct: Tensor

    def __init__(self, k: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.add_state("num_misgrounded", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("num_correct", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(
        self,
        network_importance: Tensor,
        human_importance: Tensor,
        proposal_mask: Tensor,
        has_importance: Tensor,
        correct: Tensor,
    ) -> None:
        """Add a batch.

        Args:
            network_importance: [B, N] float, network importance per proposal.
            human_importance: [B, N] float, human importance per proposal.
            proposal_mask: [B, N] bool, True for real proposals.
            has_importance: [B] bool, whether the question has human importance.
            correct: [B] bool, whether the question was answered correctly.
        """
        outside = top_proposal_outside_human_topk(
            network_importance.detach(), human_importance.detach(), proposal_mask, k=self.k
        )
        counted = has_importance.bool() & correct.bool()
        self.num_misgrounded += (counted & outside).sum()
        self.num_correct += counted.sum()

    def compute(self) -> Tensor:
        """Misgrounded share in percent (0-dim); nan if no question was counted."""
        return 100.0 * self.num_misgrounded / self.num_correct
