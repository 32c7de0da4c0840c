"""Attention alignment (the HINT paper's "Attn. Align" baseline).

Supervise the model's attention weights directly with the human importance, normalized into a
distribution over proposals. Unlike HINT it only asks the model to *look* at the regions humans
used, not to *rely* on them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext
from hint_lightning.utils.masks import as_proposal_mask


def normalized_human_importance(
    human_importance: Tensor, proposal_mask: Tensor | None = None
) -> Tensor:
    """Human importance as a distribution over real proposals ``[B, N]``; NaN rows sum to 0."""
    proposal_mask = as_proposal_mask(proposal_mask, human_importance.shape)
    weights = human_importance.clamp(min=0)
    if proposal_mask is not None:
        weights = weights * proposal_mask
    return weights / weights.sum(dim=1, keepdim=True)


def attention_alignment_loss(
    attention: Tensor,
    human_importance: Tensor,
    proposal_mask: Tensor | None = None,
    kind: str = "kl",
) -> Tensor:
    """Per-sample distance between attention and normalized human importance.

    Args:
        attention: ``[B, N]`` attention weights (rows sum to 1).
        human_importance: ``[B, N]`` human importance (non-negative).
        proposal_mask: ``[B, N]`` bool (or 0/1), False for padded proposals.
        kind: ``"kl"`` for KL(human || attention) or ``"mse"`` for the squared error summed
            over proposals.

    Returns:
        ``[B]`` losses; NaN for samples whose human importance is zero everywhere.

    Example:
        >>> attention = torch.tensor([[0.5, 0.5]])
        >>> attention_alignment_loss(attention, torch.tensor([[1.0, 1.0]]))
        tensor([0.])
    """
    target = normalized_human_importance(human_importance, proposal_mask)
    if kind == "kl":
        log_attention = torch.log(attention.clamp(min=torch.finfo(attention.dtype).tiny))
        losses = (torch.xlogy(target, target) - target * log_attention).sum(dim=1)
    elif kind == "mse":
        losses = ((attention - target) ** 2).sum(dim=1)
    else:
        raise ValueError(f"unknown attention alignment loss {kind!r}: use 'kl' or 'mse'")
    undefined = torch.isnan(target).any(dim=1)
    return losses.masked_fill(undefined, float("nan"))


class AttnAlignObjective(GroundingObjective):
    """Attention alignment with human importance (the HINT paper's "Attn. Align" baseline).

    It reads the backbone's attention weights (``ctx.attention``): a backbone without
    attention is refused at start-up.

    Args:
        weight: lambda.
        kind: ``"kl"`` or ``"mse"``, see :func:`attention_alignment_loss`.
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "attn_align"
    needs_attention = True

    def __init__(
        self, weight: float = 1.0, kind: str = "kl", random_importance_per_batch: bool = False
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        if kind not in ("kl", "mse"):
            raise ValueError(f"unknown attention alignment loss {kind!r}: use 'kl' or 'mse'")
        self.kind = kind

    def sample_losses(self, ctx: GroundingContext) -> Tensor:
        """Per-row alignment losses ``[H]``."""
        if ctx.attention is None:
            raise ValueError("AttnAlignObjective needs the model's attention weights")
        return attention_alignment_loss(
            ctx.attention, ctx.human_importance, ctx.proposal_mask, self.kind
        )

    def extra_repr(self) -> str:
        return f"weight={self.weight}, kind={self.kind!r}"
