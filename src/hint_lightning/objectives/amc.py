"""AMC's attention mask consistency losses (Yang, Kafle, Dernoncourt & Ordonez, CVPR 2023,
"Improving Visual Grounding by Encouraging Consistent Gradient-based Explanations").

AMC takes Grad-CAM ``g`` of the decision (ALBEF's, on cross-attention: the
``attention_gradcam`` importance method here), keeps its positive part, min-max normalizes it
per sample to [0, 1], and asks the annotated region ``M`` to hold more of it than the rest of the
image, by two margins (public code uvavision/AMC-grounding, ``models/model_pretrain.py``)::

    L_mean = max(0, mean_out(g) - mean_in(g) + 0.1),   mean_in = sum(g M) / sum(M),
                                                       mean_out = sum(g (1 - M)) / sum(1 - M)
    L_max  = max(0, max(g (1 - M)) - max(g M) + 0.5)

Here the "pixels" are proposals (patch tokens or regions: it applies to both), ``M`` is the human
importance (soft, as AMC's interpolated masks; ``threshold`` binarizes it) and padded proposals
count nowhere. Deviation: the public code pools ``L_mean``'s sums over the whole batch; here
each row has its own terms, averaged over the rows where both sides are non-empty (NaN
otherwise). The two terms are logged (``train/amc/mean``, ``train/amc/max``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext

__all__ = ["AMCObjective", "amc_losses", "min_max_normalize"]


def min_max_normalize(values: Tensor, real: Tensor, eps: float = 1e-7) -> Tensor:
    """Per row ``(v - min) / (max - min + eps)`` over the real entries; 0 at the others."""
    big = torch.finfo(values.dtype).max
    low = values.masked_fill(~real, big).amin(dim=1, keepdim=True)
    high = values.masked_fill(~real, -big).amax(dim=1, keepdim=True)
    low, high = (
        torch.where(real.any(1, keepdim=True), low, 0.0),
        torch.where(real.any(1, keepdim=True), high, 0.0),
    )
    return ((values - low) / (high - low + eps)).masked_fill(~real, 0.0)


def amc_losses(
    importance: Tensor,
    human_importance: Tensor,
    proposal_mask: Tensor,
    mean_margin: float = 0.1,
    max_margin: float = 0.5,
    threshold: float | None = None,
) -> tuple[Tensor, Tensor]:
    """``(L_mean [R], L_max [R])`` (module docstring); NaN where a side is empty.

    Example:
        >>> g = torch.tensor([[0.0, 1.0, 0.5]])  # normalized already
        >>> mean, top = amc_losses(g, torch.tensor([[1.0, 0.0, 0.0]]), torch.ones(1, 3).bool())
        >>> mean.round(decimals=4), top.round(decimals=4)  # in: 0; out: mean 0.75, max 1
        (tensor([0.8500]), tensor([1.5000]))
    """
    real = proposal_mask.bool()
    weight = real.to(importance.dtype)
    grad_cam = min_max_normalize(importance.clamp(min=0), real)
    inside = (
        human_importance
        if threshold is None
        else (human_importance > threshold).to(importance.dtype)
    )
    inside = inside * weight
    outside = (1 - inside) * weight
    in_mass, out_mass = inside.sum(1), outside.sum(1)
    mean_in = (grad_cam * inside).sum(1) / in_mass.clamp(min=1e-12)
    mean_out = (grad_cam * outside).sum(1) / out_mass.clamp(min=1e-12)
    max_in = (grad_cam * inside).amax(1)
    max_out = (grad_cam * outside).amax(1)
    undefined = (in_mass <= 0) | (out_mass <= 0)
    mean = (mean_out - mean_in + mean_margin).clamp(min=0).masked_fill(undefined, float("nan"))
    top = (max_out - max_in + max_margin).clamp(min=0).masked_fill(undefined, float("nan"))
    return mean, top


class AMCObjective(GroundingObjective):
    """AMC's two margin losses on the training importance (module docstring).

    Use it with ``model.train_importance=attention_gradcam`` (AMC's Grad-CAM, needs a backbone
    with internals) or any other method (it reads ``ctx.importance()``).

    Args:
        weight: lambda of the sum of the two terms.
        mean_weight: weight of ``L_mean``.
        max_weight: weight of ``L_max``.
        mean_margin: AMC's 0.1.
        max_margin: AMC's 0.5.
        threshold: binarize the human importance at it (None: soft mask).
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "amc"
    needs_network_importance = True

    def __init__(
        self,
        weight: float = 1.0,
        mean_weight: float = 1.0,
        max_weight: float = 1.0,
        mean_margin: float = 0.1,
        max_margin: float = 0.5,
        threshold: float | None = None,
        random_importance_per_batch: bool = False,
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        self.mean_weight, self.max_weight = float(mean_weight), float(max_weight)
        self.mean_margin, self.max_margin = float(mean_margin), float(max_margin)
        self.threshold = None if threshold is None else float(threshold)

    def sample_losses(self, ctx: GroundingContext) -> Tensor:
        """``[R]`` ``mean_weight * L_mean + max_weight * L_max``."""
        mean, top = amc_losses(
            ctx.importance(),
            ctx.human_importance,
            ctx.proposal_mask,
            self.mean_margin,
            self.max_margin,
            self.threshold,
        )
        for name, value in (("amc/mean", mean), ("amc/max", top)):
            defined = value[~torch.isnan(value)]
            if defined.numel():
                ctx.log(name, defined.mean().detach())
        return self.mean_weight * mean + self.max_weight * top

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, margins=({self.mean_margin}, {self.max_margin}), "
            f"threshold={self.threshold}"
        )
