"""VisFIS (Ying, Hase & Bansal, NeurIPS 2022) as an objective over the context.

The arithmetic is :mod:`hint_lightning.objectives.visfis` and
:mod:`hint_lightning.objectives.visfis_fi` (zfying/visfis ``components/losses.py`` and
``components/feature_impt.py``); this class feeds them from the context and sums the terms
with their weights, each the mean over the rows where it is defined:

- **sufficiency** and **uncertainty**: one extra forward of ``2R`` rows (``ctx.forward``), the
  important proposals alone, then the unimportant ones alone (hidden by ``replacement``:
  VisFIS's ``negative_ones`` by default; ``drop`` needs a backbone that honours the mask);
- **output invariance** (0 by default, as in VisFIS's best objective): one more forward, a
  random subset of the unimportant proposals removed;
- **FI = 0 invariance** and **alignment**: on ``ctx.importance()``, the importance of the
  ground truth by the training method (VisFIS explains the multi-hot ground truth: set
  ``model.decision_score=all_answers``, as the ``*_visfis`` experiments do).

Defaults: VisFIS's "OBJ11" for UpDn on VQA-HAT (``PUBLISHED_WEIGHTS["updn_hat"]``: sufficiency
1, uncertainty 1, FI = 0 0.1, alignment 0.1, cosine alignment; threshold 0.55, the published
``--impt_threshold`` for HAT-CP). A term with weight 0 is not computed, and what it would need
is not required: with only the FI terms there is no extra forward; with only the output terms
no importance. Each term is logged as ``train/visfis/<term>``.
"""

from __future__ import annotations

from torch import Tensor

from hint_lightning.importance.replacement import check_replacement
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext
from hint_lightning.objectives.scr_objective import dense_targets
from hint_lightning.objectives.visfis import (
    OUTPUTS,
    PUBLISHED_WEIGHTS,
    important_proposals,
    output_invariance_loss,
    sufficiency_from_logits,
    sufficiency_uncertainty_logits,
    uncertainty_from_logits,
)
from hint_lightning.objectives.visfis_fi import ALIGNMENTS, alignment_loss, fi_invariance_loss

__all__ = ["VisFISObjective"]

_HAT = PUBLISHED_WEIGHTS["updn_hat"]


def _mean_defined(losses: Tensor) -> Tensor | None:
    defined = ~losses.isnan()
    return losses[defined].mean() if bool(defined.any()) else None


class VisFISObjective(GroundingObjective):
    """VisFIS's right-for-the-right-reasons terms (module docstring).

    Args:
        weight: lambda, multiplies the weighted sum of the terms.
        threshold: proposals with human importance above it are important.
        sufficiency: weight of the sufficiency term.
        uncertainty: weight of the uncertainty term.
        fi_invariance: weight of FI = 0 on the unimportant proposals (normalized L1).
        alignment: weight of the plausibility alignment.
        output_invariance: weight of output-level invariance (KL).
        alignment_kind: ``cosine``, ``l1``, ``l2`` or ``kl``.
        replacement: how removed proposals are hidden (``negative_ones``, ``zeros``, ``mean``,
            ``shuffle``, ``drop``).
        output: ``softmax`` (VisFIS's default) or ``sigmoid``.
        random_importance_per_batch: see :class:`GroundingObjective`.
    """

    name = "visfis"

    def __init__(
        self,
        weight: float = 1.0,
        threshold: float = 0.55,
        sufficiency: float = _HAT.sufficiency,
        uncertainty: float = _HAT.uncertainty,
        fi_invariance: float = _HAT.fi_invariance,
        alignment: float = _HAT.alignment,
        output_invariance: float = 0.0,
        alignment_kind: str = "cosine",
        replacement: str = "negative_ones",
        output: str = "softmax",
        random_importance_per_batch: bool = False,
    ) -> None:
        super().__init__(weight, random_importance_per_batch)
        check_replacement(replacement)
        if alignment_kind not in ALIGNMENTS or output not in OUTPUTS:
            raise ValueError(
                f"alignment_kind must be one of {ALIGNMENTS} and output one of {OUTPUTS}, got "
                f"{alignment_kind!r} and {output!r}"
            )
        self.threshold = float(threshold)
        self.weights = {
            "sufficiency": float(sufficiency),
            "uncertainty": float(uncertainty),
            "fi_invariance": float(fi_invariance),
            "alignment": float(alignment),
            "output_invariance": float(output_invariance),
        }
        self.alignment_kind = alignment_kind
        self.replacement = replacement
        self.output = output

    @property
    def requires(self) -> frozenset[str]:
        """Human importance; importance for the FI terms; passes for the output terms."""
        needs = {"human_importance"}
        if self.weights["fi_invariance"] or self.weights["alignment"]:
            needs.add("importance")
        if self.weights["sufficiency"] or self.weights["uncertainty"]:
            needs.add("forward")
        if self.weights["output_invariance"]:
            needs.add("forward")
        if "forward" in needs and self.replacement == "drop":
            needs.add("mask")
        return frozenset(needs)

    def _forward(self, ctx: GroundingContext):
        return lambda proposals, mask: ctx.forward(proposals, mask).logits

    def terms(self, ctx: GroundingContext) -> dict[str, Tensor]:
        """Each term with a nonzero weight, per row (``[R]``, NaN where undefined)."""
        w, terms = self.weights, {}
        mask, human = ctx.proposal_mask, ctx.human_importance
        if w["sufficiency"] or w["uncertainty"]:
            important = important_proposals(human, self.threshold, mask)
            kept, dropped = sufficiency_uncertainty_logits(
                self._forward(ctx), ctx.proposals, important, mask, self.replacement
            )
            if w["sufficiency"]:
                targets = dense_targets(ctx, kept.shape[1])
                terms["sufficiency"] = sufficiency_from_logits(
                    kept, targets, important.any(dim=1), self.output
                )
            if w["uncertainty"]:
                unimportant = (mask & ~important).any(dim=1)
                terms["uncertainty"] = uncertainty_from_logits(dropped, unimportant, self.output)
        if w["output_invariance"]:
            terms["output_invariance"] = output_invariance_loss(
                self._forward(ctx),
                ctx.proposals,
                ctx.logits,
                human,
                self.threshold,
                mask,
                self.replacement,
                output=self.output,
            )
        if w["fi_invariance"]:
            terms["fi_invariance"] = fi_invariance_loss(
                ctx.importance(), human, self.threshold, mask
            )
        if w["alignment"]:
            terms["alignment"] = alignment_loss(ctx.importance(), human, self.alignment_kind, mask)
        return terms

    def loss(self, ctx: GroundingContext) -> Tensor:
        """``sum_t weight_t * mean of term t's defined rows`` (unweighted by ``weight``)."""
        total = ctx.human_importance.new_zeros(())
        for name, losses in self.terms(ctx).items():
            mean = _mean_defined(losses)
            if mean is not None:
                ctx.log(f"visfis/{name}", mean)
                total = total + self.weights[name] * mean
        return total

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        return f"weight={self.weight}, threshold={self.threshold}, {weights}"
