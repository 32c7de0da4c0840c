"""The grounding evaluation of one batch in one call: plausibility, faithfulness, FPVG.

A LightningModule builds a :class:`GroundingMetrics` from the ``metrics`` config group
(``conf/metrics/{plausibility,faithfulness,fpvg}.yaml``), calls :meth:`GroundingMetrics.update`
in its test step with what it has (importance, human importance, masks, a ``forward_fn`` and a
``predict_fn``), writes the returned per-question values (:mod:`hint_lightning.metrics.
per_question`), and logs :meth:`GroundingMetrics.compute` at the end of the epoch::

    metrics = GroundingMetrics.from_config(cfg.get("metrics"))
    values = metrics.update(importance=imp, proposals=P, proposal_mask=mask,
                            human_importance=h, has_importance=has, forward_fn=score_fn,
                            predict_fn=answer_fn, correct_fn=is_correct)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from hint_lightning.metrics.faithfulness import Faithfulness
from hint_lightning.metrics.fpvg import FPVG
from hint_lightning.metrics.functional.faithfulness import ForwardFn
from hint_lightning.metrics.functional.fpvg import CorrectFn, PredictFn
from hint_lightning.metrics.plausibility import Plausibility
from hint_lightning.metrics.question_means import QuestionMeans

__all__ = ["FAMILIES", "GroundingMetrics"]

FAMILIES: dict[str, type[QuestionMeans]] = {
    "plausibility": Plausibility,
    "faithfulness": Faithfulness,
    "fpvg": FPVG,
}
"""The metric families a config may name (the allow-list of :meth:`from_config`)."""


class GroundingMetrics(nn.Module):
    """The configured metric families, updated together, one value per question and metric.

    Args:
        families: family name (a key of :data:`FAMILIES`) -> its metric.
    """

    def __init__(self, families: Mapping[str, QuestionMeans]) -> None:
        super().__init__()
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown metric families {unknown}; choose from {list(FAMILIES)}")
        self.families = nn.ModuleDict(dict(families))
        seen: dict[str, str] = {}
        for family, metric in self.families.items():
            for name in metric.names:
                if name in seen:
                    raise ValueError(f"metric {name!r} is in both {seen[name]} and {family}")
                seen[name] = family

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> GroundingMetrics:
        """Build from the ``metrics`` config: family name -> its options (``conf/metrics/``).

        Raises:
            ValueError: naming ``metrics.<family>`` and the option, for an unknown family or
                option or a bad value.
        """
        families: dict[str, QuestionMeans] = {}
        for family, options in dict(config or {}).items():
            if family not in FAMILIES:
                raise ValueError(
                    f"metrics.{family}: unknown metric family; choose from {list(FAMILIES)}"
                )
            options = dict(options or {})
            known = [
                name
                for name, parameter in inspect.signature(FAMILIES[family]).parameters.items()
                if parameter.kind is not inspect.Parameter.VAR_KEYWORD
            ]
            unknown = sorted(set(options) - set(known))
            if unknown:
                raise ValueError(
                    f"metrics.{family}: unknown option(s) {', '.join(unknown)}; the options are "
                    f"{', '.join(known)}"
                )
            try:
                families[family] = FAMILIES[family](**options)
            except (TypeError, ValueError) as error:
                raise ValueError(f"metrics.{family}: {error}") from None
        return cls(families)

    @property
    def names(self) -> list[str]:
        """Every metric name, family by family."""
        return [name for metric in self.families.values() for name in metric.names]

    def update(
        self,
        *,
        importance: Tensor,
        proposals: Tensor,
        proposal_mask: Tensor | None = None,
        human_importance: Tensor | None = None,
        has_importance: Tensor | None = None,
        forward_fn: ForwardFn | None = None,
        full_scores: Tensor | None = None,
        predict_fn: PredictFn | None = None,
        correct_fn: CorrectFn | None = None,
        predictions: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Compute every configured metric for a batch, add it to the state, return the values.

        Args:
            importance: ``[B, N]`` the model's importance of each question's decision.
            proposals: ``[B, N, D]``.
            proposal_mask: ``[B, N]`` bool or 0/1 (None: all real).
            human_importance: ``[B, N]`` (plausibility and FPVG).
            has_importance: ``[B]`` bool, which questions have human importance.
            forward_fn: the decision's score of perturbed copies (faithfulness).
            full_scores: ``[B]`` the unperturbed scores, if known.
            predict_fn: predicted labels of perturbed copies (FPVG).
            correct_fn: ``[K, B]`` predictions -> bool (FPVG).
            predictions: ``[B]`` the unperturbed predictions, if known (FPVG).

        Returns:
            metric name -> ``[B]`` float (NaN where undefined).

        Raises:
            ValueError: naming the family and what it lacks.
        """
        values: dict[str, Tensor] = {}
        for family, metric in self.families.items():
            if family in ("plausibility", "fpvg") and human_importance is None:
                raise ValueError(
                    f"metrics.{family} needs human importance, but this split has none "
                    "(evaluate a split with human importance, or leave the family out)"
                )
            if family == "plausibility":
                out = metric.per_question(
                    importance, human_importance, proposal_mask, has_importance
                )
            elif family == "faithfulness":
                if forward_fn is None:
                    raise ValueError("metrics.faithfulness needs a forward_fn (decision scores)")
                out = metric.per_question(
                    forward_fn, proposals, importance, proposal_mask, full_scores
                )
            else:
                if predict_fn is None or correct_fn is None:
                    raise ValueError("metrics.fpvg needs a predict_fn and a correct_fn")
                out = metric.per_question(
                    predict_fn, correct_fn, proposals, human_importance, proposal_mask,
                    has_importance, predictions,
                )  # fmt: skip
            metric.update(out)
            values.update(out)
        return values

    def compute(self, prefix: str = "") -> dict[str, float]:
        """Every metric's mean over the questions where it is defined, keys prefixed."""
        return {
            key: value
            for metric in self.families.values()
            for key, value in metric.results(prefix).items()
        }

    def counts(self) -> dict[str, int]:
        """Every metric's number of questions where it was defined."""
        return {k: v for metric in self.families.values() for k, v in metric.counts().items()}

    def reset(self) -> None:
        """Reset every family's state."""
        for metric in self.families.values():
            metric.reset()
