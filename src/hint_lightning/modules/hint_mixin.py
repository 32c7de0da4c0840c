"""The mixin a LightningModule uses to add a grounding objective to its training step.

Usage inside ``training_step`` (see :class:`hint_lightning.modules.vqa_module.VQAModule`)::

    features = self.proposals_for_grounding(batch["features"], batch["has_importance"])
    logits, attention = self.net(features, ...)
    term = self.grounding_term(
        decision_scores=..., proposals=features, attention=attention,
        human_importance=..., has_importance=..., proposal_mask=...,
    )
    loss = task_loss + term.loss

The term is computed inside ``training_step``, i.e. inside the DDP-wrapped forward, so the final
backward's all-reduce sees the second-order gradients of every rank. Always keep the task loss
in the total: a loss made only of gradient terms leaves parameters without gradients under DDP.

When the objective is off (None or weight 0) or no sample of the batch has human importance,
``proposals_for_grounding`` returns the features untouched and ``grounding_term`` returns a
zero, so the batch costs exactly what plain training costs (no double backward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from hint_lightning.objectives.base import GroundingInputs, GroundingObjective
from hint_lightning.objectives.importance import (
    network_importance,
    network_importance_from_shift,
)


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


class HintMixin:
    """Adds a :class:`GroundingObjective` term to a LightningModule's training step.

    The host class sets ``self.objective`` (a :class:`GroundingObjective` or None).
    """

    objective: GroundingObjective | None

    def check_precision(self, precision: str) -> None:
        """Refuse float16 mixed precision when the objective differentiates importance.

        Lightning scales only the returned loss for float16; the inner ``autograd.grad`` of the
        network importance would run unscaled and underflow. bfloat16 has float32's range and
        needs no scaling.

        Raises:
            ValueError: for ``16-mixed`` / ``16`` with an objective that needs network importance.
        """
        objective = self.objective
        needs_importance = objective is not None and objective.needs_network_importance
        if needs_importance and str(precision) in ("16-mixed", "16", "16-true"):
            raise ValueError(
                f"precision={precision} is refused with {type(objective).__name__}: float16 needs "
                "the inner gradient of the network importance scaled and unscaled by hand "
                "(Lightning scales only the final loss). Use trainer.precision=bf16-mixed (same "
                "speed on recent GPUs, no scaling needed) or 32-true."
            )

    def grounding_active(self, has_importance: Tensor) -> bool:
        """Whether this batch gets a grounding term at all.

        Args:
            has_importance: ``[B]`` bool, whether each sample has human importance.
        """
        objective = self.objective
        return objective is not None and objective.active and bool(has_importance.any())

    def proposals_for_grounding(self, features: Tensor, has_importance: Tensor) -> Tensor:
        """The proposal tensor to feed the model: a leaf requiring grad when HINT needs it.

        Args:
            features: ``[B, N, D]`` proposal features from the batch.
            has_importance: ``[B]`` bool.

        Returns:
            ``features`` itself, or a detached copy that requires grad (so that network
            importance can be taken with respect to it).
        """
        objective = self.objective
        if (
            objective is not None
            and objective.needs_network_importance
            and self.grounding_active(has_importance)
        ):
            return features.detach().requires_grad_(True)
        return features

    def proposal_shift_for_grounding(
        self, features: Tensor, has_importance: Tensor
    ) -> Tensor | None:
        """The fast path's probe: zeros ``[B, N]`` requiring grad, or None when not needed.

        Feed it to a model that supports ``proposal_shift`` (e.g. ``UpDnVQA``) and pass it to
        :meth:`grounding_term`: the network importance is then its gradient, the same numbers
        as the gradient with respect to the features summed over D, without the ``[B, N, D]``
        input gradient (see ``network_importance_from_shift``).

        Args:
            features: ``[B, N, D]`` proposal features from the batch.
            has_importance: ``[B]`` bool.
        """
        objective = self.objective
        if (
            objective is not None
            and objective.needs_network_importance
            and self.grounding_active(has_importance)
        ):
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
        """Compute the objective's weighted term on the samples with human importance.

        Args:
            decision_scores: ``[B]`` the ground-truth decision score of each sample.
            proposals: ``[B, N, D]`` what :meth:`proposals_for_grounding` returned and the model
                consumed.
            attention: ``[B, N]`` the model's attention, or None.
            human_importance: ``[B, N]``.
            has_importance: ``[B]`` bool.
            proposal_mask: ``[B, N]`` bool.
            proposal_shift: what :meth:`proposal_shift_for_grounding` returned and the model
                consumed (fast path), or None to differentiate with respect to ``proposals``.

        Returns:
            The :class:`GroundingTerm`; its ``loss`` is a zero scalar when the term is off.
        """
        zero = decision_scores.new_zeros(())
        batch_size = has_importance.shape[0]
        if not self.grounding_active(has_importance):
            return GroundingTerm(zero, logs={"loss_grounding": 0.0, "hinted_frac": 0.0})
        objective = self.objective
        assert objective is not None  # for type checkers: grounding_active checked it
        hinted = has_importance.nonzero(as_tuple=True)[0]
        importance = None
        if objective.needs_network_importance:
            scores = decision_scores[hinted]
            if proposal_shift is not None:
                importance = network_importance_from_shift(scores, proposal_shift)[hinted]
            else:
                importance = network_importance(scores, proposals, create_graph=True)[hinted]
        inputs = GroundingInputs(
            human_importance=human_importance[hinted],
            proposal_mask=proposal_mask[hinted],
            attention=None if attention is None else attention[hinted],
            network_importance=importance,
        )
        loss = objective(inputs)
        logs = {
            "loss_grounding": float(loss.detach()),
            "hinted_frac": hinted.numel() / max(batch_size, 1),
        }
        return GroundingTerm(loss, hinted.numel(), importance, logs)


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
