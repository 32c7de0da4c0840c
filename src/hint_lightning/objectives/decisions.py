"""Decisions and passes: what a grounding context explains and how it runs the model.

A *decision* is one scalar per row whose importance an objective asks for: the task's
ground-truth score, the ``k``-th most confident class of the base pass, or the ``k``-th most
confident class that is not a right answer. :class:`DecisionTargets` holds what the task's
decisions read; :class:`Passes` is the model over a context's rows, supplied by the module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from torch import Tensor

__all__ = [
    "DECISION_KINDS",
    "GROUND_TRUTH",
    "Decision",
    "DecisionTargets",
    "PassOutput",
    "Passes",
]

DECISION_KINDS = ("ground_truth", "predicted", "wrong")
"""``ground_truth``: the task's ground-truth score; ``predicted``: the ``rank``-th highest
class of the base pass; ``wrong``: the ``rank``-th highest class that is not a right answer."""


@dataclass(frozen=True)
class Decision:
    """Which scalar per row an importance explains.

    Attributes:
        kind: one of :data:`DECISION_KINDS`.
        rank: 0-based rank for ``predicted`` and ``wrong`` (0: the most confident).

    Example:
        >>> Decision.parse("wrong:1")
        Decision(kind='wrong', rank=1)
        >>> str(Decision.parse("ground_truth"))
        'ground_truth'
    """

    kind: str = "ground_truth"
    rank: int = 0

    def __post_init__(self) -> None:
        if self.kind not in DECISION_KINDS or self.rank < 0:
            raise ValueError(
                f"unknown decision {self.kind}:{self.rank}; kinds are {', '.join(DECISION_KINDS)}"
                " with a rank >= 0 (e.g. 'wrong:0')"
            )

    @classmethod
    def parse(cls, value: str | Decision) -> Decision:
        """A decision from ``"ground_truth"``, ``"predicted:K"`` or ``"wrong:K"``."""
        if isinstance(value, Decision):
            return value
        kind, _, rank = str(value).partition(":")
        return cls(kind, int(rank) if rank else 0)

    def __str__(self) -> str:
        return self.kind if self.kind == "ground_truth" else f"{self.kind}:{self.rank}"


GROUND_TRUTH = Decision()
"""The ground-truth decision (HINT's)."""


class PassOutput(NamedTuple):
    """One pass of the model, at the level of decisions.

    Attributes:
        logits: ``[R, C]`` score of every class for each row.
        attention: ``[R, N]`` attention over proposals, or None for a model without attention.
    """

    logits: Tensor
    attention: Tensor | None


class Passes(Protocol):
    """Forward passes of the model over a context's rows (supplied by the LightningModule).

    Inputs other than the proposals (question tokens, boxes, caption prefixes) are captured for
    the ``R`` rows and tiled copy-major to ``K * R`` rows.
    """

    supports_shift: bool
    supports_mask: bool
    has_attention: bool

    def __call__(
        self, proposals: Tensor, proposal_mask: Tensor, proposal_shift: Tensor | None = None
    ) -> PassOutput:
        """``[K * R, N, D]``, ``[K * R, N]`` (and a ``[K * R, N]`` shift) -> outputs."""
        ...

    def select(self, rows: Tensor) -> Passes:
        """The passes of a subset of the rows."""
        ...


@dataclass(frozen=True)
class DecisionTargets:
    """What the task's decisions read, for the ``R`` rows of a context.

    Attributes:
        targets: ``[R, ...]`` the task's targets (VQA soft scores ``[R, A]``, class or word
            index ``[R]``).
        ground_truth: ``(logits [R', C], targets tiled to R') -> [R']`` the ground-truth score.
        positives: ``(targets) -> [R, C]`` bool, the right answers; None when the task has no
            wrong answers to speak of (captioning).
        sample_loss: ``(logits [R', C], targets tiled) -> [R']`` the task loss of each row, for
            objectives that compare outputs with the truth (None if the task offers none).
    """

    targets: Tensor
    ground_truth: Callable[[Tensor, Tensor], Tensor]
    positives: Callable[[Tensor], Tensor] | None = None
    sample_loss: Callable[[Tensor, Tensor], Tensor] | None = None

    @property
    def kinds(self) -> frozenset[str]:
        """The decision kinds this task offers."""
        if self.positives is None:
            return frozenset({"ground_truth"})
        return frozenset(DECISION_KINDS)

    def select(self, rows: Tensor) -> DecisionTargets:
        """The targets of a subset of the rows."""
        return DecisionTargets(
            self.targets[rows], self.ground_truth, self.positives, self.sample_loss
        )
