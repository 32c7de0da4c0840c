"""Right for the Right Reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017), per proposal.

Ross et al. penalize the input gradient of the summed log-probabilities on the regions an
annotation marks irrelevant: ``lambda * || A * d(sum_k log p_k) / dx ||^2``. Here the gradient
is the mixin's network importance (the input gradient summed over each proposal's features) and
``A`` marks the proposals with zero human importance. For a patch of uniform shade (the decoy of
decoy digits) the summed gradient is exactly the derivative with respect to that shade, so the
penalty is what Ross et al. ask for on it. Pair it with ``model.decision_score=sum_log_prob``
(Ross et al.'s score); with the ground-truth logit it penalizes that logit's gradient instead.
"""

from __future__ import annotations

from torch import Tensor

from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext
from hint_lightning.utils.masks import as_proposal_mask


def rrr_penalty(
    network_importance: Tensor,
    human_importance: Tensor,
    proposal_mask: Tensor | None = None,
    threshold: float = 0.0,
) -> Tensor:
    """Per-sample squared network importance on the irrelevant proposals.

    Args:
        network_importance: ``[B, N]`` input gradient of the decision, summed per proposal.
        human_importance: ``[B, N]``; proposals with ``h <= threshold`` are irrelevant (A = 1).
        proposal_mask: ``[B, N]`` bool (or 0/1), False for padded proposals (never penalized).
        threshold: the largest human importance that still counts as irrelevant.

    Returns:
        ``[B]``: ``sum_r A_r * alpha_r ** 2``.

    Example:
        >>> import torch
        >>> alpha = torch.tensor([[1.0, 2.0, 3.0]])
        >>> rrr_penalty(alpha, torch.tensor([[0.0, 1.0, 0.0]]))  # 1 ** 2 + 3 ** 2
        tensor([10.])
    """
    if network_importance.shape != human_importance.shape or network_importance.ndim != 2:
        raise ValueError(
            "network_importance and human_importance must both be [B, N], got "
            f"{tuple(network_importance.shape)} and {tuple(human_importance.shape)}"
        )
    proposal_mask = as_proposal_mask(proposal_mask, human_importance.shape)
    irrelevant = human_importance <= threshold
    if proposal_mask is not None:
        irrelevant = irrelevant & proposal_mask
    return (network_importance.square() * irrelevant).sum(dim=1)


class RRRObjective(GroundingObjective):
    """Right for the Right Reasons: no gradient on what humans mark irrelevant.

    Args:
        weight: lambda.
        threshold: proposals with human importance at most this are irrelevant.
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "rrr"
    needs_network_importance = True

    def __init__(
        self, weight: float = 1.0, threshold: float = 0.0, random_importance_per_batch: bool = False
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        self.threshold = float(threshold)

    def sample_losses(self, ctx: GroundingContext) -> Tensor:
        """Per-row penalties ``[H]``."""
        return rrr_penalty(
            ctx.importance(), ctx.human_importance, ctx.proposal_mask, self.threshold
        )

    def extra_repr(self) -> str:
        return f"weight={self.weight}, threshold={self.threshold}"
