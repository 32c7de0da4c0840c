"""Orders and top sets of proposals by importance, shared by plausibility and faithfulness.

Every function takes importance ``[B, N]`` padded to the largest image of the batch and a
``[B, N]`` proposal mask (True = a real proposal); padded proposals are never ranked, kept or
removed. Ties in importance are broken by the proposal's index (the lower index ranks first),
which is what a stable descending sort does (``numpy.argsort(-x, kind="stable")``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from hint_lightning.utils.masks import as_proposal_mask

__all__ = [
    "check_fractions",
    "check_importance",
    "descending_positions",
    "fraction_counts",
    "least_relevant_mask",
    "most_relevant_mask",
    "visfis_top_mask",
]


def check_importance(
    importance: Tensor, proposal_mask: Tensor | None, name: str = "importance"
) -> tuple[Tensor, Tensor]:
    """Validate importance ``[B, N]`` and its proposal mask.

    Args:
        importance: ``[B, N]`` float, finite on real proposals.
        proposal_mask: ``[B, N]`` bool or 0/1, or None (every proposal is real).
        name: the argument's name, for error messages.

    Returns:
        ``(importance detached, proposal mask as bool)``.

    Raises:
        ValueError: naming the argument, for a wrong shape, a non-float dtype or a non-finite
            value on a real proposal.
    """
    if not isinstance(importance, Tensor) or importance.ndim != 2:
        shape = tuple(importance.shape) if isinstance(importance, Tensor) else type(importance)
        raise ValueError(f"{name} must be a [B, N] tensor, got {shape}")
    if not importance.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {importance.dtype}")
    mask = as_proposal_mask(proposal_mask, importance.shape)
    if mask is None:
        mask = torch.ones(importance.shape, dtype=torch.bool, device=importance.device)
    importance = importance.detach()
    if not bool(torch.isfinite(importance[mask]).all()):
        raise ValueError(f"{name} has NaN or infinite values on real proposals")
    return importance, mask


def check_fractions(fractions: Sequence[float], name: str = "fractions") -> tuple[float, ...]:
    """Fractions of proposals: strictly increasing, each in ``(0, 1)``.

    Raises:
        ValueError: naming the option and the offending value.
    """
    values = tuple(float(f) for f in fractions)
    if not values:
        raise ValueError(f"{name} must not be empty")
    for value in values:
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")
    return values


def fraction_counts(proposal_mask: Tensor, fraction: float) -> Tensor:
    """``int(n * fraction)`` per row, ``n`` the number of real proposals (VisFIS's cut-off).

    Computed in float64 like Python's ``int(n * fraction)`` (e.g. 36 x 0.1 -> 3, 36 x 0.25 -> 9).

    Returns:
        ``[B]`` int64.
    """
    real = proposal_mask.sum(dim=1).to(torch.float64)
    return torch.floor(real * float(fraction)).to(torch.int64)


def descending_positions(importance: Tensor, proposal_mask: Tensor) -> Tensor:
    """Position of every proposal in its row's descending order of importance.

    Real proposals get positions ``0 .. n - 1`` (0 = most important; ties broken by the lower
    index); padded proposals get positions ``n .. N - 1``.

    Returns:
        ``[B, N]`` int64.

    Example:
        >>> descending_positions(torch.tensor([[0.1, 0.9, 0.5, 0.9]]), torch.ones(1, 4).bool())
        tensor([[3, 0, 2, 1]])
    """
    ranked = importance.masked_fill(~proposal_mask, float("-inf"))
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    positions = torch.empty_like(order)
    arange = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return positions.scatter_(1, order, arange)


def most_relevant_mask(positions: Tensor, proposal_mask: Tensor, count: Tensor) -> Tensor:
    """The ``count[b]`` most important real proposals of every row.

    Args:
        positions: ``[B, N]`` from :func:`descending_positions`.
        proposal_mask: ``[B, N]`` bool.
        count: ``[B]`` int.

    Returns:
        ``[B, N]`` bool.
    """
    return proposal_mask & (positions < count.unsqueeze(1))


def least_relevant_mask(positions: Tensor, proposal_mask: Tensor, count: Tensor) -> Tensor:
    """The ``count[b]`` least important real proposals of every row (``[B, N]`` bool)."""
    real = proposal_mask.sum(dim=1, keepdim=True)
    return proposal_mask & (positions >= real - count.unsqueeze(1))


def visfis_top_mask(importance: Tensor, proposal_mask: Tensor, fraction: float) -> Tensor:
    """VisFIS's top-k set: positive importance above the ``(k + 1)``-th largest value.

    With ``k = int(n * fraction)`` (``n`` real proposals), the set holds the real proposals
    whose importance is strictly greater than the ``(k + 1)``-th largest importance of the row
    and strictly positive: at most ``k`` proposals (fewer on ties at the cut-off or when fewer
    than ``k`` are positive). This is ``generate_mask(..., 'keep_top', fraction)`` of
    zfying/visfis (``components/metrics.py``), used there for sufficiency (keep the set),
    comprehensiveness (remove it) and the IoU with human importance.

    Args:
        importance: ``[B, N]`` float.
        proposal_mask: ``[B, N]`` bool.
        fraction: in ``[0, 1)``.

    Returns:
        ``[B, N]`` bool.

    Example:
        >>> imp = torch.tensor([[0.5, -0.2, 0.9, 0.1, 0.3, 0.0, -0.1, 0.2, 0.4, 0.05]])
        >>> visfis_top_mask(imp, torch.ones(1, 10).bool(), 0.25)  # k = 2: 0.9 and 0.5
        tensor([[ True, False,  True, False, False, False, False, False, False, False]])
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    count = fraction_counts(proposal_mask, fraction)
    ranked = importance.masked_fill(~proposal_mask, float("-inf"))
    ordered = torch.sort(ranked, dim=1, descending=True).values
    cutoff = ordered.gather(1, count.clamp(max=ordered.shape[1] - 1).unsqueeze(1))
    return proposal_mask & (importance > cutoff) & (importance > 0)
