"""The interface every grounding objective implements.

A grounding objective turns the model's view of the proposals (network importance and/or
attention) and the human view (human importance) into one extra loss term. Objectives know
nothing about a particular model or task: a LightningModule computes their inputs through
:class:`hint_lightning.modules.hint_mixin.HintMixin` and adds the returned term to its task loss.

A new method is one subclass (one file) plus one YAML file in ``conf/objective/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class GroundingInputs:
    """The inputs of a grounding objective, for the ``H`` samples that have human importance.

    Attributes:
        human_importance: ``[H, N]`` human importance of each proposal.
        proposal_mask: ``[H, N]`` bool, False for padded proposals.
        attention: ``[H, N]`` the model's attention weights (None if the model has none).
        network_importance: ``[H, N]`` differentiable network importance, or None when the
            objective does not ask for it (``needs_network_importance`` False).
    """

    human_importance: Tensor
    proposal_mask: Tensor
    attention: Tensor | None = None
    network_importance: Tensor | None = None


class GroundingObjective(nn.Module):
    """Base class: ``forward`` returns ``weight`` times the mean per-sample loss.

    Args:
        weight: lambda, the weight of the term relative to the task loss. A weight of 0 skips
            the term entirely (and with it the double backward).
        random_importance_per_batch: control experiment: replace the human importance of every
            batch with fresh uniform noise (for fixed random importance, use the data option).
    """

    needs_network_importance: bool = False

    def __init__(self, weight: float = 1.0, random_importance_per_batch: bool = False) -> None:
        super().__init__()
        self.weight = float(weight)
        self.random_importance_per_batch = random_importance_per_batch

    @property
    def active(self) -> bool:
        """Whether the term contributes at all (a zero weight turns it off)."""
        return self.weight != 0.0

    def sample_losses(self, inputs: GroundingInputs) -> Tensor:
        """Per-sample unweighted losses ``[H]``; NaN marks a sample without a defined loss."""
        raise NotImplementedError

    def forward(self, inputs: GroundingInputs) -> Tensor:
        """The weighted term: ``weight * mean`` of the defined per-sample losses (scalar)."""
        if self.random_importance_per_batch:
            noise = torch.rand_like(inputs.human_importance)
            inputs = GroundingInputs(
                human_importance=noise,
                proposal_mask=inputs.proposal_mask,
                attention=inputs.attention,
                network_importance=inputs.network_importance,
            )
        losses = self.sample_losses(inputs)
        defined = ~torch.isnan(losses)
        if not bool(defined.any()):
            return losses.new_zeros(())
        return self.weight * losses[defined].mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
