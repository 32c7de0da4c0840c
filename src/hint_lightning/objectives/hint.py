"""The HINT ranking loss (the HINT paper's equation 2, without the task term).

Over every pair of proposals ``(i, j)`` that humans rank ``i`` above ``j`` (``h_i > h_j``), the
network is penalized when it ranks them the other way, by how much it does:
``max(0, alpha_j - alpha_i)``. This equals the paper's sum of absolute differences of network
importance over the misranked pairs.
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
    network_importance: Tensor, human_importance: Tensor, proposal_mask: Tensor | None = None
) -> Tensor:
    """Per-sample HINT ranking loss.

    Args:
        network_importance: ``[B, N]`` alpha, the network importance of each proposal.
        human_importance: ``[B, N]`` h, the human importance of each proposal.
        proposal_mask: ``[B, N]`` bool (or 0/1 numbers), False for padded proposals; pairs
            involving one of them don't count. None: every proposal is real.

    Returns:
        ``[B]``: ``sum over (i, j) with h_i > h_j of max(0, alpha_j - alpha_i)``.

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
    violation = torch.relu(network_importance.unsqueeze(1) - network_importance.unsqueeze(2))
    return (violation * pairs).sum(dim=(1, 2))


def count_ordered_pairs(human_importance: Tensor, proposal_mask: Tensor | None = None) -> Tensor:
    """``[B]`` the number of pairs ``(i, j)`` with ``h_i > h_j`` among real proposals."""
    return _ordered_pairs(human_importance, proposal_mask).sum(dim=(1, 2))


class HintObjective(GroundingObjective):
    """HINT: align the ranking of network importance with the ranking of human importance.

    Selvaraju et al., "Taking a HINT", ICCV 2019, eq. 2: the ranking loss of the importance of
    the ground-truth decision (by the training importance method: the gradient of eq. 1 by
    default), on the rows that have human importance.

    Args:
        weight: lambda.
        normalize: divide each sample's loss by its number of ordered pairs (the paper sums;
            normalizing makes lambda independent of the number of proposals).
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "hint"
    needs_network_importance = True

    def __init__(
        self,
        weight: float = 1.0,
        normalize: bool = False,
        random_importance_per_batch: bool = False,
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        self.normalize = normalize

    def sample_losses(self, ctx: GroundingContext) -> Tensor:
        """Per-row ranking losses ``[H]``."""
        losses = hint_ranking_loss(ctx.importance(), ctx.human_importance, ctx.proposal_mask)
        if self.normalize:
            pairs = count_ordered_pairs(ctx.human_importance, ctx.proposal_mask)
            losses = losses / pairs.clamp(min=1)
        return losses

    def extra_repr(self) -> str:
        return f"weight={self.weight}, normalize={self.normalize}"
