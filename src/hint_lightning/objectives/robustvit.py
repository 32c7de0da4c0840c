"""RobustViT's relevance losses (Chefer, Schwartz & Wolf, NeurIPS 2022, "Optimizing Relevance
Maps of Vision Transformers Improves Robustness"; public code hila-chefer/RobustViT).

The relevance map ``R`` of the decision (Chefer et al.'s, the ``chefer_relevance`` importance
method here), min-max normalized per sample to [0, 1], is pushed off the background and onto
the foreground ``S`` (the segmentation mask)::

    L_bg = MSE(R * (1 - S), 0)          L_fg = MSE(R * S, S)
    L    = lambda_bg * L_bg + lambda_fg * L_fg        (the paper: lambda_bg = 2, lambda_fg = 0.3)

means over the proposals (patch tokens or regions: it applies to both; padded ones are left
out). ``S`` is the human importance (soft; ``threshold`` binarizes it as a segmentation mask
would be). The paper adds its classification loss with its own weight: here that is the task
loss and ``weight``. Components logged as ``train/robustvit/bg`` and ``train/robustvit/fg``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.objectives.amc import min_max_normalize
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext

__all__ = ["RobustViTObjective", "robustvit_losses"]


def robustvit_losses(
    relevance: Tensor,
    human_importance: Tensor,
    proposal_mask: Tensor,
    threshold: float | None = None,
    normalize: bool = True,
) -> tuple[Tensor, Tensor]:
    """``(L_bg [R], L_fg [R])`` (module docstring); NaN for a row without real proposals.

    Example:
        >>> r = torch.tensor([[1.0, 0.0, 0.5]])
        >>> bg, fg = robustvit_losses(r, torch.tensor([[1.0, 0.0, 0.0]]), torch.ones(1, 3).bool())
        >>> bg.round(decimals=4), fg.round(decimals=4)  # bg: 0.25 / 3; fg: the foreground is at 1
        (tensor([0.0833]), tensor([0.]))
    """
    real = proposal_mask.bool()
    weight = real.to(relevance.dtype)
    values = min_max_normalize(relevance, real) if normalize else relevance * weight
    mask = (
        human_importance
        if threshold is None
        else (human_importance > threshold).to(relevance.dtype)
    )
    mask = mask * weight
    count = weight.sum(1)
    background = ((values * (1 - mask) * weight) ** 2).sum(1) / count
    foreground = ((values * mask - mask) ** 2).sum(1) / count
    return background, foreground


class RobustViTObjective(GroundingObjective):
    """RobustViT's background and foreground losses (module docstring).

    Use it with ``model.train_importance=chefer_relevance`` (RobustViT's relevance; needs a
    backbone with internals) or any other method (it reads ``ctx.importance()``).

    Args:
        weight: lambda of the grounding term.
        bg_weight: lambda_bg (2.0).
        fg_weight: lambda_fg (0.3).
        threshold: binarize the human importance at it (None: soft mask).
        normalize: min-max normalize the relevance per sample first (RobustViT does).
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "robustvit"
    needs_network_importance = True

    def __init__(
        self,
        weight: float = 1.0,
        bg_weight: float = 2.0,
        fg_weight: float = 0.3,
        threshold: float | None = None,
        normalize: bool = True,
        random_importance_per_batch: bool = False,
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        self.bg_weight, self.fg_weight = float(bg_weight), float(fg_weight)
        self.threshold = None if threshold is None else float(threshold)
        self.normalize = bool(normalize)

    def sample_losses(self, ctx: GroundingContext) -> Tensor:
        """``[R]`` ``bg_weight * L_bg + fg_weight * L_fg``."""
        background, foreground = robustvit_losses(
            ctx.importance(),
            ctx.human_importance,
            ctx.proposal_mask,
            self.threshold,
            self.normalize,
        )
        for name, value in (("robustvit/bg", background), ("robustvit/fg", foreground)):
            defined = value[~torch.isnan(value)]
            if defined.numel():
                ctx.log(name, defined.mean().detach())
        return self.bg_weight * background + self.fg_weight * foreground

    def extra_repr(self) -> str:
        return f"weight={self.weight}, bg={self.bg_weight}, fg={self.fg_weight}"
