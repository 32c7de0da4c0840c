"""A mixin that adds grounding objectives to the training step of any LightningModule.

The framework's own modules derive from :class:`~hint_lightning.modules.base.GroundedModule`
(one skeleton, tasks as adapters). This mixin is the lighter way for a module of your own (see
``notebooks/02_hint_on_your_own_model.ipynb``): three calls inside ``training_step``::

    features = self.proposals_for_grounding(batch["features"], batch["has_importance"])
    logits, attention = self.net(features, ...)
    term = self.grounding_term(
        decision_scores=..., proposals=features, attention=attention,
        human_importance=..., has_importance=..., proposal_mask=...,
    )
    loss = task_loss + term.loss

``self.objective`` is one :class:`~hint_lightning.objectives.base.GroundingObjective`, a
mapping of named ones, an :class:`~hint_lightning.objectives.combination.ObjectiveSet`, or None.
The objectives see the same lazy context as in the framework's modules, its importance being
the gradient of ``decision_scores`` with respect to the probe (HINT's network importance).

The term is computed inside ``training_step``, i.e. inside the DDP-wrapped forward, so the final
backward's all-reduce sees the second-order gradients of every rank. Always keep the task loss
in the total: a loss made only of gradient terms leaves parameters without gradients under DDP.

When no objective is on (None or weight 0) or no sample of the batch has human importance,
``proposals_for_grounding`` returns the features untouched and ``grounding_term`` returns a
zero, so the batch costs exactly what plain training costs (no double backward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hint_lightning.objectives.combination import ObjectiveSet, total
from hint_lightning.objectives.context import DecisionTargets, GroundingContext, PassOutput
from hint_lightning.objectives.importance import (
    network_importance,
    network_importance_from_shift,
)

__all__ = [
    "GroundingTerm",
    "HintMixin",
    "evaluation_importance",
    "network_importance",
    "network_importance_from_shift",
]


@dataclass
class GroundingTerm:
    """The grounding term of one batch.

    Attributes:
        loss: scalar, already weighted; zero when the term is off for this batch.
        hinted: number of samples that contributed.
        network_importance: ``[H, N]`` importance of the hinted samples (None if not computed).
        logs: scalars to log (``loss_grounding``, ``hinted_frac``).
    """

    loss: Tensor
    hinted: int = 0
    network_importance: Tensor | None = None
    logs: dict[str, float] = field(default_factory=dict)


def _given_scores(logits: Tensor, targets: Tensor) -> Tensor:
    """The decision scores the host computed, carried as ``[B, 1]`` logits."""
    return logits[:, 0]


class HintMixin:
    """Adds grounding objectives to a LightningModule's training step.

    The host class sets ``self.objective`` (module docstring).
    """

    objective: Any

    def _objective_set(self) -> ObjectiveSet | None:
        objective = getattr(self, "objective", None)
        return ObjectiveSet.build(objective) if objective is not None else None

    def check_precision(self, precision: str) -> None:
        """Refuse float16 mixed precision when an objective differentiates importance.

        Lightning scales only the returned loss for float16; the inner ``autograd.grad`` of the
        network importance would run unscaled and underflow. bfloat16 has float32's range and
        needs no scaling.

        Raises:
            ValueError: for ``16-mixed`` / ``16`` with an objective that needs network importance.
        """
        objectives = self._objective_set()
        needs_importance = objectives is not None and "importance" in objectives.requires
        if needs_importance and str(precision) in ("16-mixed", "16", "16-true"):
            names = ", ".join(type(obj).__name__ for _, obj in objectives.items())  # type: ignore[union-attr]
            raise ValueError(
                f"precision={precision} is refused with {names}: float16 needs "
                "the inner gradient of the network importance scaled and unscaled by hand "
                "(Lightning scales only the final loss). Use trainer.precision=bf16-mixed (same "
                "speed on recent GPUs, no scaling needed) or 32-true."
            )

    def _needed(self, has_importance: Tensor) -> dict[str, Any]:
        objectives = self._objective_set()
        return objectives.needed_for(has_importance) if objectives is not None else {}

    def grounding_active(self, has_importance: Tensor) -> bool:
        """Whether this batch gets a grounding term at all.

        Args:
            has_importance: ``[B]`` bool, whether each sample has human importance.
        """
        return bool(self._needed(has_importance))

    def _needs_importance(self, has_importance: Tensor) -> bool:
        return any("importance" in obj.requires for obj in self._needed(has_importance).values())

    def proposals_for_grounding(self, features: Tensor, has_importance: Tensor) -> Tensor:
        """The proposal tensor to feed the model: a leaf requiring grad when HINT needs it.

        Args:
            features: ``[B, N, D]`` proposal features from the batch.
            has_importance: ``[B]`` bool.

        Returns:
            ``features`` itself, or a detached copy that requires grad (so that network
            importance can be taken with respect to it).
        """
        if self._needs_importance(has_importance):
            return features.detach().requires_grad_(True)
        return features

    def proposal_shift_for_grounding(
        self, features: Tensor, has_importance: Tensor
    ) -> Tensor | None:
        """The fast path's probe: zeros ``[B, N]`` requiring grad, or None when not needed.

        Feed it to a model that supports ``proposal_shift`` (e.g. ``UpDnVQA``) and pass it to
        :meth:`grounding_term`: the network importance is then its gradient, the same numbers
        as the gradient with respect to the features summed over D (see
        ``network_importance_from_shift``).

        Args:
            features: ``[B, N, D]`` proposal features from the batch.
            has_importance: ``[B]`` bool.
        """
        if self._needs_importance(has_importance):
            return features.new_zeros(features.shape[:2]).requires_grad_(True)
        return None

    def grounding_term(
        self,
        *,
        decision_scores: Tensor,
        proposals: Tensor,
        attention: Tensor | None,
        human_importance: Tensor,
        has_importance: Tensor,
        proposal_mask: Tensor,
        proposal_shift: Tensor | None = None,
    ) -> GroundingTerm:
        """Compute the objectives' weighted terms on the samples with human importance.

        Args:
            decision_scores: ``[B]`` the ground-truth decision score of each sample.
            proposals: ``[B, N, D]`` what :meth:`proposals_for_grounding` returned and the model
                consumed.
            attention: ``[B, N]`` the model's attention, or None.
            human_importance: ``[B, N]``.
            has_importance: ``[B]`` bool.
            proposal_mask: ``[B, N]`` bool (or 0/1).
            proposal_shift: what :meth:`proposal_shift_for_grounding` returned and the model
                consumed (fast path), or None to differentiate with respect to ``proposals``.

        Returns:
            The :class:`GroundingTerm`; its ``loss`` is a zero scalar when the term is off.
        """
        zero = decision_scores.new_zeros(())
        batch_size = has_importance.shape[0]
        objectives = self._objective_set()
        if objectives is None or not objectives.needed_for(has_importance):
            return GroundingTerm(zero, logs={"loss_grounding": 0.0, "hinted_frac": 0.0})
        probe = proposal_shift if proposal_shift is not None else proposals
        ctx = GroundingContext(
            proposals=proposals.detach(),
            proposal_mask=proposal_mask.bool(),
            human_importance=human_importance,
            has_importance=has_importance,
            decisions=DecisionTargets(decision_scores.new_zeros(batch_size), _given_scores),
            base=PassOutput(decision_scores[:, None], attention),
            probe=probe if probe.requires_grad else None,
            create_graph=True,
        )
        loss = total(objectives.terms(ctx), zero)
        hinted_ctx = ctx.hinted()
        hinted = len(hinted_ctx)
        importance = None
        if any("importance" in obj.requires for obj in objectives.active().values()):
            importance = hinted_ctx.importance()
        logs = {
            "loss_grounding": float(loss.detach()),
            "hinted_frac": hinted / max(batch_size, 1),
        }
        return GroundingTerm(loss, hinted, importance, logs)


def evaluation_importance(decision_scores: Tensor, probe: Tensor) -> Tensor:
    """Network importance for metrics and pictures (no graph kept).

    Args:
        decision_scores: ``[B]`` computed under ``torch.enable_grad()`` from ``probe``.
        probe: ``[B, N, D]`` proposal features requiring grad, or the ``[B, N]`` proposal shift
            of the fast path.

    Returns:
        ``[B, N]`` detached importance.
    """
    with torch.enable_grad():
        if probe.ndim == 2:
            importance = network_importance_from_shift(decision_scores, probe, create_graph=False)
        else:
            importance = network_importance(decision_scores, probe, create_graph=False)
    return importance.detach()
