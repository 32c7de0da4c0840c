"""Model-Guidance energy loss (Rao, Böhle, Parchami-Araghi & Schiele, ICCV 2023), per proposal.

Rao et al. guide a classifier with bounding boxes: the *energy* loss is one minus the share of
the positive attribution that falls inside the boxes of the explained class,
``1 - sum_{p in box} max(a_p, 0) / sum_p max(a_p, 0)`` (the paper's energy-based pointing game
turned into a loss; sukrutrao/Model-Guidance ``losses.py`` lines 30-47,
``EnergyPointingGameBBMultipleLoss``).

Translation to region proposals: the attribution map becomes the network importance vector of
the proposals (one "pixel" per proposal), and the box mask becomes the set of human-important
proposals, ``h_r > threshold``. On a ``1 x N`` attribution map with one ``1 x 1`` box per
human-important proposal, the public function gives exactly this module's value (see
``tests/test_objective_energy.py``). The default threshold 0.5 reads HINT's human importance
``s_r = E+ / (E+ + E-)``: above 0.5, human attention is denser inside the proposal than outside.

Kept from the public code: only the positive part of the importance counts (negative importance
is neither rewarded nor penalized), and when the positive importance sums to less than ``1e-7``
the loss is ``1 - (positive importance inside)`` instead of the ratio. Samples without any
human-important proposal have no box: NaN here, skipped by the public training loop (``train.py``
lines 221-230), which *sums* the loss over the annotated images of a batch
(``reduction="sum"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext
from hint_lightning.utils.masks import as_proposal_mask

SMALL_ENERGY = 1e-7
"""Below this total positive importance the public code returns ``1 - inside``."""
REDUCTIONS = ("none", "sum", "mean")
"""``none``: ``[B]``; ``sum``: Model-Guidance's batch sum; ``mean``: over defined samples."""


def energy_loss(
    importance: Tensor,
    human_importance: Tensor,
    threshold: float = 0.5,
    proposal_mask: Tensor | None = None,
    reduction: str = "none",
) -> Tensor:
    """One minus the share of positive importance on human-important proposals.

    Args:
        importance: ``[B, N]`` network importance (signed), with ``create_graph=True`` when
            training.
        human_importance: ``[B, N]``; proposals with ``h > threshold`` form the "box".
        threshold: see above.
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals (never counted).
        reduction: one of :data:`REDUCTIONS`; ``sum`` and ``mean`` skip NaN samples.

    Returns:
        ``[B]`` in ``[0, 1]``, NaN for samples without a human-important proposal; or a scalar.

    Example:
        >>> importance = torch.tensor([[2.0, -1.0, 1.0, 1.0]])  # positive part [2, 0, 1, 1]
        >>> human = torch.tensor([[0.9, 0.9, 0.1, 0.0]])  # the box: proposals 0 and 1
        >>> energy_loss(importance, human)  # 1 - 2 / 4
        tensor([0.5000])
    """
    if importance.ndim != 2 or human_importance.shape != importance.shape:
        raise ValueError(
            "importance and human_importance must both be [B, N], got "
            f"{tuple(importance.shape)} and {tuple(human_importance.shape)}"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}: use one of {', '.join(REDUCTIONS)}")
    real = as_proposal_mask(proposal_mask, tuple(importance.shape))
    if real is None:
        real = torch.ones_like(importance, dtype=torch.bool)
    positive = importance.clamp(min=0) * real.to(importance.dtype)
    box = (human_importance > threshold) & real
    inside = (positive * box.to(importance.dtype)).sum(dim=1)
    total = positive.sum(dim=1)
    small = total < SMALL_ENERGY
    share = inside / torch.where(small, torch.ones_like(total), total)
    losses = torch.where(small, 1 - inside, 1 - share)
    losses = losses.masked_fill(~box.any(dim=1), float("nan"))
    if reduction == "none":
        return losses
    defined = losses[~torch.isnan(losses)]
    if reduction == "sum":
        return defined.sum()
    return defined.mean() if defined.numel() else losses.new_zeros(())


class EnergyObjective(GroundingObjective):
    """Model-Guidance's energy loss (Rao et al., ICCV 2023) over the context.

    ``weight * energy_loss(ctx.importance(), h, threshold, mask, reduction)`` on the rows with
    human importance: one minus the share of the ground-truth decision's positive importance
    that falls on the human-important proposals (``h > threshold``). No extra forward pass.

    Args:
        weight: lambda (Model-Guidance's ``--localization_loss_lambda``; README example 1e-3
            with ``reduction="sum"``).
        threshold: proposals with human importance above it form the "box".
        reduction: ``"mean"`` over the rows with a box (as the other objectives here) or
            ``"sum"`` (Model-Guidance's batch sum).
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "energy"
    needs_network_importance = True

    def __init__(
        self,
        weight: float = 1.0,
        threshold: float = 0.5,
        reduction: str = "mean",
        random_importance_per_batch: bool = False,
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"unknown reduction {reduction!r}: use 'mean' or 'sum'")
        self.threshold = float(threshold)
        self.reduction = reduction

    def loss(self, ctx: GroundingContext) -> Tensor:
        """The reduced energy loss (unweighted by ``weight``)."""
        return energy_loss(
            ctx.importance(),
            ctx.human_importance,
            self.threshold,
            ctx.proposal_mask,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return f"weight={self.weight}, threshold={self.threshold}, reduction={self.reduction!r}"
