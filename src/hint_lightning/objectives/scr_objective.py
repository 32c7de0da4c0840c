"""Self-Critical Reasoning (Wu & Mooney, NeurIPS 2019) as an objective over the context.

The arithmetic is :func:`~hint_lightning.objectives.scr.scr_losses` (the public
``compute_scr_loss`` of jialinwu17/self_critical_vqa, as re-implemented in
erobic/negative_analysis_of_grounding); this class feeds it from the context:

- ``gt_importance``: ``ctx.importance()``, the importance of the ground-truth decision by the
  training method. The public code explains the sum of the logits of every right answer: set
  ``model.decision_score=all_answers`` (the ``*_scr`` experiments do);
- ``bucket_answers`` / ``bucket_importance``: the ``bucket`` most confident answers of the main
  pass (decisions ``predicted:0`` .. ``predicted:K-1``) and their importance, ``K`` more
  gradients of the same pass for gradient importance (no extra forward pass);
- ``logits`` / ``targets``: the main pass and the soft answer scores (a task with class labels
  gives one-hot targets).

The term is ``weight * (influence + compare + regulariser)``, the three public scalars, over the
rows with human importance (the public means divide by counts over the whole batch, where rows
without human importance count with a zero loss; on a fine-tuning batch where every row has
human importance the two agree). The three are logged as ``train/scr/<term>``. SCR needs wrong
answers to compare with: it is refused at start-up for captioning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import Decision, GroundingContext
from hint_lightning.objectives.scr import scr_losses

__all__ = ["SCRObjective", "dense_targets"]


def dense_targets(ctx: GroundingContext, classes: int) -> Tensor:
    """``[R, C]`` soft targets: the task's own (VQA scores) or the one-hot class labels."""
    targets = ctx.targets
    if targets.ndim == 2:
        return targets
    return F.one_hot(targets.long(), classes).to(ctx.logits.dtype)


class SCRObjective(GroundingObjective):
    """SCR's influence, self-critical and regulariser terms (module docstring).

    Args:
        weight: lambda, multiplies the sum of the three terms.
        num_sub: size of the human-important set (``--num_sub``, 5).
        bucket: how many of the most confident answers are compared (``--bucket``, 4).
        influence_weight: ``--scr_hint_loss_weight`` (SCR: 20; erobic's VQA-CP script: 3).
        compare_weight: ``--scr_compare_loss_weight`` (SCR: 1500; erobic: 1000).
        regulariser_weight: ``--reg_loss_weight`` (0 in both).
        compare_proposal: ``"public_code"`` or ``"chosen"`` (see ``scr_losses``).
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "scr"
    needs_network_importance = True
    extra_requires = frozenset({"wrong_answers"})

    def __init__(
        self,
        weight: float = 1.0,
        num_sub: int = 5,
        bucket: int = 4,
        influence_weight: float = 3.0,
        compare_weight: float = 1000.0,
        regulariser_weight: float = 0.0,
        compare_proposal: str = "public_code",
        random_importance_per_batch: bool = False,
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        if num_sub < 1 or bucket < 1:
            raise ValueError(f"num_sub and bucket must be >= 1, got {num_sub} and {bucket}")
        if compare_proposal not in ("public_code", "chosen"):
            raise ValueError(
                f"unknown compare_proposal {compare_proposal!r}: use 'public_code' or 'chosen'"
            )
        self.num_sub = num_sub
        self.bucket = bucket
        self.influence_weight = float(influence_weight)
        self.compare_weight = float(compare_weight)
        self.regulariser_weight = float(regulariser_weight)
        self.compare_proposal = compare_proposal

    def loss(self, ctx: GroundingContext) -> Tensor:
        """``influence + compare + regulariser`` (unweighted by ``weight``)."""
        logits = ctx.logits
        decisions = [Decision("predicted", rank) for rank in range(self.bucket)]
        answers = torch.stack([ctx.answer_index(d) for d in decisions], dim=1)
        bucket_importance = torch.stack([ctx.importance(d) for d in decisions], dim=1)
        terms = scr_losses(
            logits,
            dense_targets(ctx, logits.shape[1]),
            ctx.importance(),
            bucket_importance,
            ctx.human_importance,
            answers,
            num_sub=self.num_sub,
            influence_weight=self.influence_weight,
            compare_weight=self.compare_weight,
            regulariser_weight=self.regulariser_weight,
            proposal_mask=ctx.proposal_mask,
            compare_proposal=self.compare_proposal,
        )
        influence, compare, regulariser = terms.public()
        ctx.log("scr/influence", influence)
        ctx.log("scr/compare", compare)
        ctx.log("scr/regulariser", regulariser)
        return influence + compare + regulariser

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, num_sub={self.num_sub}, bucket={self.bucket}, "
            f"influence_weight={self.influence_weight}, compare_weight={self.compare_weight}"
        )
