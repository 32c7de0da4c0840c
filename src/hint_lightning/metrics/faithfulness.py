"""Faithfulness metrics over an evaluation: the means of the per-question values.

The functional core is :mod:`hint_lightning.metrics.functional.faithfulness`; this module adds
the state (sums and counts, exact under DDP: :class:`QuestionMeans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from hint_lightning.importance.replacement import check_replacement
from hint_lightning.metrics.functional.faithfulness import (
    ORDERS,
    ForwardFn,
    removal_curves,
    sufficiency_comprehensiveness,
    unperturbed_scores,
)
from hint_lightning.metrics.functional.ranking import check_fractions, check_importance
from hint_lightning.metrics.question_means import QuestionMeans, fraction_name

__all__ = ["Faithfulness"]


class Faithfulness(QuestionMeans):
    """Sufficiency, comprehensiveness and their AOPC; removal curves and the area between them.

    Metric names: ``sufficiency_<k%>`` and ``comprehensiveness_<k%>`` per fraction,
    ``sufficiency_aopc`` and ``comprehensiveness_aopc`` (means over the fractions);
    ``morf_<f%>`` and ``lerf_<f%>`` (the decision's score after removing that share of the most /
    least relevant proposals) and ``curve_area`` (area between LeRF and MoRF; both orders only).

    Args:
        fractions: the ``k`` of sufficiency and comprehensiveness (VisFIS: 0.1, 0.25, 0.5);
            empty: not computed.
        curve_fractions: the x values of the removal curves; empty: no curves.
        orders: the curves' orders, a subset of ``("most_relevant_first",
            "least_relevant_first")``.
        replacement: how removed proposals are replaced (``drop``, ``zeros``, ``mean``,
            ``shuffle``, ``negative_ones``).
        max_rows: at most this many rows per forward call (None: one call per family).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> import torch
        >>> weights = torch.tensor([0.6, 0.3, 0.1, 0.0])
        >>> def forward_fn(proposals, mask):  # the score: weighted count of kept proposals
        ...     return (mask.float() * weights).sum(dim=1)
        >>> metric = Faithfulness(fractions=(0.25, 0.5), curve_fractions=(0.5,))
        >>> P, imp = torch.zeros(1, 4, 2), torch.tensor([[4.0, 3.0, 2.0, 1.0]])
        >>> values = metric.per_question(forward_fn, P, imp)
        >>> values["sufficiency_25"], values["comprehensiveness_50"], values["curve_area"]
        (tensor([0.4000]), tensor([0.9000]), tensor([0.4000]))
    """

    def __init__(
        self,
        fractions: Sequence[float] = (0.1, 0.25, 0.5),
        curve_fractions: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9),
        orders: Sequence[str] = ORDERS,
        replacement: str = "drop",
        max_rows: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.fractions = check_fractions(fractions) if len(fractions) else ()
        self.curve_fractions = (
            check_fractions(curve_fractions, "curve_fractions") if len(curve_fractions) else ()
        )
        self.orders = tuple(order for order in ORDERS if order in orders)
        if set(orders) - set(ORDERS):
            raise ValueError(f"orders must be a subset of {list(ORDERS)}, got {list(orders)}")
        if self.curve_fractions and not self.orders:
            raise ValueError("removal curves need at least one order")
        self.replacement = check_replacement(replacement)
        self.max_rows = max_rows
        names: list[str] = []
        for family in ("sufficiency", "comprehensiveness"):
            names += [fraction_name(family, f) for f in self.fractions]
            names += [f"{family}_aopc"] if self.fractions else []
        prefixes = {"most_relevant_first": "morf", "least_relevant_first": "lerf"}
        for order in self.orders if self.curve_fractions else ():
            names += [fraction_name(prefixes[order], f) for f in self.curve_fractions]
        if self.curve_fractions and len(self.orders) == 2:
            names.append("curve_area")
        if not names:
            raise ValueError("Faithfulness with neither fractions nor curve_fractions")
        super().__init__(names, **kwargs)

    def per_question(
        self,
        forward_fn: ForwardFn,
        proposals: Tensor,
        importance: Tensor,
        proposal_mask: Tensor | None = None,
        full_scores: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Every metric of every question of a batch (no state change).

        Args:
            forward_fn: the decision's score of copy-major perturbed batches
                (:data:`~hint_lightning.metrics.functional.faithfulness.ForwardFn`).
            proposals: ``[B, N, D]``.
            importance: ``[B, N]`` importance of the decision.
            proposal_mask: ``[B, N]`` bool or 0/1; None: all real.
            full_scores: ``[B]`` the unperturbed scores if known (saves one forward pass).

        Returns:
            name -> ``[B]`` float.
        """
        importance, mask = check_importance(importance, proposal_mask)
        options = {"replacement": self.replacement, "max_rows": self.max_rows}
        full = unperturbed_scores(forward_fn, proposals, mask, full_scores, **options)
        values: dict[str, Tensor] = {}
        if self.fractions:
            sc = sufficiency_comprehensiveness(
                forward_fn, proposals, importance, mask, fractions=self.fractions,
                full_scores=full, **options,
            )  # fmt: skip
            for index, fraction in enumerate(self.fractions):
                values[fraction_name("sufficiency", fraction)] = sc.sufficiency[index]
                values[fraction_name("comprehensiveness", fraction)] = sc.comprehensiveness[index]
            values["sufficiency_aopc"] = sc.sufficiency_aopc
            values["comprehensiveness_aopc"] = sc.comprehensiveness_aopc
        if self.curve_fractions:
            curves = removal_curves(
                forward_fn, proposals, importance, mask, fractions=self.curve_fractions,
                orders=self.orders, full_scores=full, **options,
            )  # fmt: skip
            for prefix, curve in (
                ("morf", curves.most_relevant_first),
                ("lerf", curves.least_relevant_first),
            ):
                for index, fraction in enumerate(self.curve_fractions if curve is not None else ()):
                    values[fraction_name(prefix, fraction)] = curve[index]
            if len(self.orders) == 2:
                values["curve_area"] = curves.area_between
        return {name: values[name] for name in self.names}
