"""The interface every grounding objective implements.

A grounding objective turns the model's view of the proposals (network importance, attention,
outputs on changed proposals) and the human view (human importance) into one extra loss term.
It receives a lazy :class:`~hint_lightning.objectives.context.GroundingContext` and asks it for
what it needs; it declares those needs up front (:attr:`GroundingObjective.requires`), so that
the LightningModule prepares only what is asked for and refuses, at start-up, a backbone or an
importance method that cannot serve them. Objectives know nothing about a particular model or
task.

A new objective is one subclass (one file) plus one YAML file in ``conf/objective/``; see
``docs/toolkit.md``.

Capabilities an objective may require (:data:`CAPABILITIES`):

- ``human_importance``: only the rows with human importance are given (the default); a batch
  without any then skips the objective at the cost of a plain step;
- ``importance``: ``ctx.importance(...)`` (the training importance method);
- ``attention``: ``ctx.attention`` (the backbone must return attention weights);
- ``forward``: ``ctx.forward(...)``, extra passes of the model;
- ``mask``: extra passes that switch proposals off through the proposal mask;
- ``wrong_answers``: decisions ``predicted:K`` / ``wrong:K`` (a task with answers to compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from hint_lightning.objectives.context import DecisionTargets, GroundingContext
from hint_lightning.utils.masks import as_proposal_mask

__all__ = ["CAPABILITIES", "GroundingInputs", "GroundingObjective", "context_from_inputs"]

CAPABILITIES = (
    "human_importance",
    "importance",
    "attention",
    "forward",
    "mask",
    "wrong_answers",
)
"""What an objective can require (module docstring)."""


@dataclass(frozen=True)
class GroundingInputs:
    """Precomputed inputs of a grounding objective (the interface before the context).

    Still accepted by every objective: it becomes a context whose ground-truth importance is
    ``network_importance``.

    Attributes:
        human_importance: ``[H, N]`` human importance of each proposal.
        proposal_mask: ``[H, N]`` bool (or 0/1), False for padded proposals.
        attention: ``[H, N]`` the model's attention weights (None if the model has none).
        network_importance: ``[H, N]`` differentiable network importance, or None.
    """

    human_importance: Tensor
    proposal_mask: Tensor
    attention: Tensor | None = None
    network_importance: Tensor | None = None


def _no_ground_truth(logits: Tensor, targets: Tensor) -> Tensor:
    raise ValueError("these grounding inputs carry no model outputs")


def context_from_inputs(inputs: GroundingInputs, name: str = "objective") -> GroundingContext:
    """A context over precomputed inputs: ``importance()`` is their network importance.

    Raises (when asked): ``ValueError`` naming ``name`` when the inputs have no network
    importance, or for anything else that needs the model.
    """
    human = inputs.human_importance
    mask = as_proposal_mask(inputs.proposal_mask, human.shape)
    rows = human.shape[0]
    ctx = GroundingContext(
        proposals=human.new_zeros(rows, human.shape[1], 0),
        proposal_mask=mask,
        human_importance=human,
        has_importance=torch.ones(rows, dtype=torch.bool, device=human.device),
        decisions=DecisionTargets(human.new_zeros(rows), _no_ground_truth),
        attention=inputs.attention,
    )
    if inputs.network_importance is not None:
        from hint_lightning.objectives.context import GROUND_TRUTH

        ctx._cache[(GROUND_TRUTH, id(None))] = inputs.network_importance
    else:

        def missing(*args: object, **kwargs: object) -> Tensor:
            raise ValueError(f"{name} needs network importance, and these inputs have none")

        ctx._compute_importance = missing  # type: ignore[method-assign]
    return ctx


class GroundingObjective(nn.Module):
    """Base class: ``forward(ctx)`` returns ``weight`` times the objective's loss.

    Subclasses implement :meth:`sample_losses` (per-row losses, averaged over the rows where
    they are defined) or, for another reduction, :meth:`loss`; and declare what they need with
    the class attributes below (or :attr:`extra_requires`).

    Args:
        weight: lambda, the weight of the term relative to the task loss. A weight of 0 skips
            the term entirely (and with it every pass it would need).
        random_importance_per_batch: control experiment: replace the human importance of every
            batch with fresh uniform noise (for fixed random or one-minus importance, use the
            data option ``data.importance_source``). Works with every objective.

    Attributes:
        name: the objective's name in logs (``train/loss_<name>``) and messages.
        needs_human_importance: only rows with human importance (default True).
        needs_network_importance: asks ``ctx.importance(...)``.
        needs_attention: reads ``ctx.attention``.
        extra_requires: further capabilities (``forward``, ``mask``, ``wrong_answers``).
    """

    name: ClassVar[str] = "grounding"
    needs_human_importance: ClassVar[bool] = True
    needs_network_importance: ClassVar[bool] = False
    needs_attention: ClassVar[bool] = False
    extra_requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, weight: float = 1.0, random_importance_per_batch: bool = False) -> None:
        super().__init__()
        self.weight = float(weight)
        self.random_importance_per_batch = random_importance_per_batch

    @property
    def requires(self) -> frozenset[str]:
        """The capabilities this objective needs (:data:`CAPABILITIES`)."""
        needs = set(self.extra_requires)
        if self.needs_human_importance:
            needs.add("human_importance")
        if self.needs_network_importance:
            needs.add("importance")
        if self.needs_attention:
            needs.add("attention")
        return frozenset(needs)

    @property
    def active(self) -> bool:
        """Whether the term contributes at all (a zero weight turns it off)."""
        return self.weight != 0.0

    def sample_losses(self, ctx: GroundingContext) -> Tensor:
        """Per-row unweighted losses ``[R]``; NaN marks a row without a defined loss."""
        raise NotImplementedError

    def loss(self, ctx: GroundingContext) -> Tensor:
        """The unweighted loss (scalar): the mean of the defined :meth:`sample_losses`."""
        losses = self.sample_losses(ctx)
        defined = ~torch.isnan(losses)
        if not bool(defined.any()):
            return losses.new_zeros(())
        return losses[defined].mean()

    def forward(self, ctx: GroundingContext | GroundingInputs) -> Tensor:
        """The weighted term ``weight * loss(ctx)`` (scalar)."""
        if isinstance(ctx, GroundingInputs):
            ctx = context_from_inputs(ctx, type(self).__name__)
        if self.random_importance_per_batch:
            ctx = ctx.with_human_importance(torch.rand_like(ctx.human_importance))
        return self.weight * self.loss(ctx)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
