"""The HINT ranking loss (the HINT paper's equation 2, without the task term).

Over every pair of proposals ``(i, j)`` that humans rank ``i`` above ``j`` (``h_i > h_j``), the
network is penalized when it ranks them the other way, by how much it does:
``max(0, alpha_j - alpha_i)``. This equals the paper's sum of absolute differences of network
importance over the misranked pairs.

Two options of :class:`HintObjective` change what is ranked (defaults: the paper's loss):

* ``rank_on="abs"`` ranks ``|alpha|`` instead of the signed ``alpha`` (a proposal that pushes
  the answer *down* strongly is then as "important" as one that pushes it up).
* ``normalize="per_sample"`` (scale-invariant HINT) divides each sample's ranked importance by
  its scale, the mean ``|alpha|`` over the sample's real proposals, before ranking. The plain loss
  can be satisfied by shrinking every importance towards 0 (the loss is linear in the scale);
  after the division it cannot. The scale is *not* detached: its gradient is part of the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext
from hint_lightning.utils.masks import as_proposal_mask


def _ordered_pairs(human_importance: Tensor, proposal_mask: Tensor | None) -> Tensor:
    """``[B, N, N]`` bool: pair (i, j) with ``h_i > h_j`` and both proposals real."""
    proposal_mask = as_proposal_mask(proposal_mask, human_importance.shape)
    pairs = human_importance.unsqueeze(2) > human_importance.unsqueeze(1)
    if proposal_mask is not None:
        pairs = pairs & proposal_mask.unsqueeze(2) & proposal_mask.unsqueeze(1)
    return pairs


def hint_ranking_loss(
    network_importance: Tensor,
    human_importance: Tensor,
    proposal_mask: Tensor | None = None,
    margin: float = 0.0,
) -> Tensor:
    """Per-sample HINT ranking loss.

    Args:
        network_importance: ``[B, N]`` alpha, the network importance of each proposal.
        human_importance: ``[B, N]`` h, the human importance of each proposal.
        proposal_mask: ``[B, N]`` bool (or 0/1 numbers), False for padded proposals; pairs
            involving one of them don't count. None: every proposal is real.
        margin: ``m``: a pair costs unless ``alpha_i`` beats ``alpha_j`` by ``m`` (0: the paper;
            with ``m > 0`` tied importance is no longer free).

    Returns:
        ``[B]``: ``sum over (i, j) with h_i > h_j of max(0, alpha_j - alpha_i + m)``.

    Example:
        >>> alpha = torch.tensor([[0.1, 0.5, 0.2]])
        >>> human = torch.tensor([[0.9, 0.1, 0.5]])  # humans rank 0 > 2 > 1
        >>> hint_ranking_loss(alpha, human)  # pairs (0,1): 0.4, (2,1): 0.3, (0,2): 0.1
        tensor([0.8000])
    """
    if network_importance.shape != human_importance.shape or network_importance.ndim != 2:
        raise ValueError(
            "network_importance and human_importance must both be [B, N], got "
            f"{tuple(network_importance.shape)} and {tuple(human_importance.shape)}"
        )
    pairs = _ordered_pairs(human_importance, proposal_mask)
    # violation[b, i, j] = alpha_j - alpha_i, positive when the network ranks j above i.
    violation = torch.relu(
        network_importance.unsqueeze(1) - network_importance.unsqueeze(2) + margin
    )
    return (violation * pairs).sum(dim=(1, 2))


def importance_scale(
    importance: Tensor, proposal_mask: Tensor | None = None, eps: float = 1e-12
) -> Tensor:
    """``[B, 1]`` the mean ``|importance|`` over each sample's real proposals (at least ``eps``).

    Args:
        importance: ``[B, N]``.
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals; None: all real.
        eps: floor of the scale (a sample whose importance is all zero is left at zero).
    """
    proposal_mask = as_proposal_mask(proposal_mask, importance.shape)
    magnitude = importance.abs()
    if proposal_mask is None:
        scale = magnitude.mean(dim=1, keepdim=True)
    else:
        weights = proposal_mask.to(importance.dtype)
        scale = (magnitude * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(1)
    return scale.clamp(min=eps)


def count_ordered_pairs(human_importance: Tensor, proposal_mask: Tensor | None = None) -> Tensor:
    """``[B]`` the number of pairs ``(i, j)`` with ``h_i > h_j`` among real proposals."""
    return _ordered_pairs(human_importance, proposal_mask).sum(dim=(1, 2))


NORMALIZE_CHOICES = ("none", "per_sample")
RANK_ON_CHOICES = ("signed", "abs")


def _normalize_option(normalize: str | bool | None, pair_mean: bool) -> tuple[str, bool]:
    """``(normalize, pair_mean)`` from the option, accepting the legacy boolean spelling.

    Before the scale-invariant option, ``normalize`` was a bool meaning "divide by the number of
    ordered pairs"; that option is now ``pair_mean``. ``normalize: true`` still means it.
    """
    if normalize is None or normalize is False:
        return "none", pair_mean
    if normalize is True:
        return "none", True
    if isinstance(normalize, str) and normalize in NORMALIZE_CHOICES:
        return normalize, pair_mean
    raise ValueError(
        f"objective.normalize must be one of {', '.join(NORMALIZE_CHOICES)} "
        f"(or the legacy true/false), got {normalize!r}"
    )


class HintObjective(GroundingObjective):
    """HINT: align the ranking of network importance with the ranking of human importance.

    Selvaraju et al., "Taking a HINT", ICCV 2019, eq. 2: the ranking loss of the importance of
    the ground-truth decision (by the training importance method: the gradient of eq. 1 by
    default), on the rows that have human importance. Public code followed for the paper's
    definition: none is released; the loss is re-stated from eq. 2 (and, for the VQA wiring,
    erobic/negative_analysis_of_grounding).

    Args:
        weight: lambda.
        normalize: ``"none"`` (the paper) or ``"per_sample"``: scale-invariant HINT, the
            ranked importance divided by its per-sample scale (:func:`importance_scale`, not
            detached) before ranking. The legacy booleans are accepted: ``True`` means
            ``pair_mean=True``, ``False`` means ``"none"``.
        rank_on: ``"signed"`` (the paper) or ``"abs"``: rank ``|importance|``.
        pair_mean: divide each sample's loss by its number of ordered pairs (the paper sums;
            this makes lambda independent of the number of proposals). Formerly ``normalize``.
        margin: ranking margin (0: the paper). With ``normalize="per_sample"`` it is relative
            to the sample's importance scale; it makes uniform importance cost something.
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "hint"
    needs_network_importance = True

    def __init__(
        self,
        weight: float = 1.0,
        normalize: str | bool | None = "none",
        rank_on: str = "signed",
        pair_mean: bool = False,
        random_importance_per_batch: bool = False,
        margin: float = 0.0,
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        self.normalize, self.pair_mean = _normalize_option(normalize, bool(pair_mean))
        if rank_on not in RANK_ON_CHOICES:
            raise ValueError(
                f"objective.rank_on must be one of {', '.join(RANK_ON_CHOICES)}, got {rank_on!r}"
            )
        self.rank_on = rank_on
        if margin < 0:
            raise ValueError(f"objective.margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def ranked_importance(self, importance: Tensor, proposal_mask: Tensor | None) -> Tensor:
        """``[B, N]`` what is ranked: ``|alpha|`` or ``alpha``, divided by its scale or not."""
        if self.rank_on == "abs":
            importance = importance.abs()
        if self.normalize == "per_sample":
            importance = importance / importance_scale(importance, proposal_mask)
        return importance

    def sample_losses(self, ctx: GroundingContext) -> Tensor:
        """Per-row ranking losses ``[H]``."""
        ranked = self.ranked_importance(ctx.importance(), ctx.proposal_mask)
        losses = hint_ranking_loss(
            ranked, ctx.human_importance, ctx.proposal_mask, margin=self.margin
        )
        if self.pair_mean:
            pairs = count_ordered_pairs(ctx.human_importance, ctx.proposal_mask)
            losses = losses / pairs.clamp(min=1)
        return losses

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, normalize={self.normalize}, rank_on={self.rank_on}, "
            f"pair_mean={self.pair_mean}, margin={self.margin}"
        )
