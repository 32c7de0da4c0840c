"""The lazy grounding context: everything an objective may ask about one batch.

An objective receives a :class:`GroundingContext` instead of precomputed tensors. The context
holds the cheap facts of the batch (human importance, proposal mask, which samples have human
importance, the targets) and computes the expensive ones only when an objective asks:

- ``ctx.logits`` and ``ctx.attention``: the decision-level outputs of the base pass
  (``[R, C]`` scores of every class: answers, image classes, caption words; ``[R, N]``);
- ``ctx.importance(decision, method=None)``: ``[R, N]`` proposal importance of any decision
  (the ground-truth one, the ``k``-th predicted answer, the ``k``-th wrong answer), by the
  training method or another one, cached per decision and method and differentiable
  (``create_graph``) during training;
- ``ctx.forward(proposals, proposal_mask)``: extra passes of the model on changed proposals
  (``[K * R, N, D]`` copy-major, see :mod:`hint_lightning.importance.replacement`).

Objectives never see a model: the LightningModule supplies the passes (a :class:`Passes`) and
the task's decisions (:class:`DecisionTargets`). Rows are usually the batch's samples; for
captioning they are the visual-word decisions of the batch (one row per decision).

The single-pass fast path. When the module ran its base pass with a *probe* (a ``[B, N]``
proposal shift, or the ``[B, N, D]`` features as a leaf requiring grad) and the method is plain
``Gradient``, ``importance`` differentiates the base pass's decision scores with respect to the
probe (:func:`~hint_lightning.objectives.importance.network_importance_from_shift` or
:func:`~hint_lightning.objectives.importance.network_importance`): HINT's own computation, with
no extra forward pass. Every other method goes through ``method.attribute`` on extra passes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hint_lightning.importance.base import DecisionFunction
from hint_lightning.importance.gradient import Gradient
from hint_lightning.importance.replacement import tile_batch
from hint_lightning.objectives.decisions import (
    DECISION_KINDS,
    GROUND_TRUTH,
    Decision,
    DecisionTargets,
    Passes,
    PassOutput,
)

__all__ = [
    "DECISION_KINDS",
    "GROUND_TRUTH",
    "Decision",
    "DecisionTargets",
    "GroundingContext",
    "PassOutput",
    "Passes",
]


def probe_gradient(
    scores: Tensor, probe: Tensor, create_graph: bool, times_input: bool = False
) -> Tensor:
    """``[B, N]`` gradient importance of ``scores [R]`` through the base pass's probe.

    The probe is the ``[B, N]`` proposal shift (the fast path: its gradient is the importance)
    or the ``[B, N, D]`` features (summed over ``D``): the numbers of
    :func:`~hint_lightning.objectives.importance.network_importance_from_shift` and
    :func:`~hint_lightning.objectives.importance.network_importance`. The graph is kept, so
    that several decisions can be explained from one pass. ``times_input``: the ``[B, N, D]``
    gradient times the probe, summed (input x gradient on tokens, ``TokenInputXGradient``).
    """
    (gradient,) = torch.autograd.grad(
        scores.sum(), probe, create_graph=create_graph, retain_graph=True
    )
    if probe.ndim == 2:
        return gradient
    return (gradient * probe).sum(dim=-1) if times_input else gradient.sum(dim=-1)


def _is_single_pass_gradient(method: Any) -> bool:
    """Whether ``method`` is plain ``Gradient`` (the probe of the base pass can serve it)."""
    return method is None or isinstance(method, Gradient)


class GroundingContext:
    """A lazy view of one batch for grounding objectives (module docstring).

    Args:
        proposals: ``[R, N, D]`` the proposal features (as the data gave them).
        proposal_mask: ``[R, N]`` bool, True for real proposals.
        human_importance: ``[R, N]``.
        has_importance: ``[R]`` bool.
        decisions: the task's decision targets for these rows.
        passes: forward passes over these rows (None: ``forward`` and methods that need
            passes are unavailable).
        method: the importance method ``importance`` uses by default (None: plain gradient
            through the probe).
        base: the base pass's outputs for these rows, if the module ran it; otherwise it is run
            through ``passes`` on first use (with the probe ``probe_kind`` asks for).
        probe: the base pass's probe (``[B, N]`` shift, ``[B, N, D]`` leaf features, or the
            ``[B, N, H]`` tokens at a layer's input for a method with a ``layer``).
        probe_rows: ``[R]`` the rows of ``probe`` that are this context's (None: all).
        probe_kind: ``"shift"``, ``"features"`` or None, for a base pass run here (``"layer"``
            has no probe here: the method then runs its own pass).
        attention: ``[R, N]`` attention to report instead of the base pass's (e.g. the
            captioner's attention at each decision step, from the teacher-forced pass).
        create_graph: keep importance differentiable (training) or not (evaluation).
    """

    def __init__(
        self,
        *,
        proposals: Tensor,
        proposal_mask: Tensor,
        human_importance: Tensor,
        has_importance: Tensor,
        decisions: DecisionTargets,
        passes: Passes | None = None,
        method: Any = None,
        base: PassOutput | None = None,
        probe: Tensor | None = None,
        probe_rows: Tensor | None = None,
        probe_kind: str | None = None,
        attention: Tensor | None = None,
        create_graph: bool = True,
    ) -> None:
        self.proposals = proposals
        self.proposal_mask = proposal_mask
        self.human_importance = human_importance
        self.has_importance = has_importance
        self.decisions = decisions
        self.passes = passes
        self.method = method
        self.create_graph = create_graph
        self._base = base
        self._probe = probe
        self._probe_rows = probe_rows
        self._probe_kind = probe_kind
        self._attention = attention
        self._cache: dict[tuple[Decision, int], Tensor] = {}
        self._held: list[Any] = []  # methods of cache keys stay alive (ids stay unique)
        self._hinted: GroundingContext | None = None
        self.logs: dict[str, float] = {}

    # ------------------------------------------------------------------ cheap facts
    def __len__(self) -> int:
        return int(self.has_importance.shape[0])

    @property
    def targets(self) -> Tensor:
        """``[R, ...]`` the task's targets."""
        return self.decisions.targets

    # ------------------------------------------------------------------ the base pass
    def _base_pass(self) -> PassOutput:
        if self._base is None:
            if self.passes is None:
                raise ValueError("this grounding context has no model passes")
            proposals, shift = self.proposals, None
            if self._probe_kind == "shift":
                shift = proposals.new_zeros(proposals.shape[:2]).requires_grad_(True)
                self._probe = shift
            elif self._probe_kind == "features":
                proposals = proposals.detach().requires_grad_(True)
                self._probe = proposals
            self._base = self.passes(proposals, self.proposal_mask, shift)
        return self._base

    @property
    def logits(self) -> Tensor:
        """``[R, C]`` decision-level scores of the base pass."""
        return self._base_pass().logits

    @property
    def attention(self) -> Tensor | None:
        """``[R, N]`` the model's attention over proposals (None without attention)."""
        if self._attention is not None:
            return self._attention
        if self._base is None and (self.passes is None or not self.passes.has_attention):
            return None
        return self._base_pass().attention

    # ------------------------------------------------------------------ decisions
    def answer_index(self, decision: str | Decision) -> Tensor:
        """``[R]`` the class a ``predicted`` or ``wrong`` decision explains (base pass order)."""
        decision = Decision.parse(decision)
        if decision.kind == "ground_truth":
            raise ValueError("the ground-truth decision has no single class index in general")
        self._check_kind(decision)
        reference = self.logits.detach()
        if decision.kind == "wrong":
            assert self.decisions.positives is not None  # _check_kind
            right = self.decisions.positives(self.targets)
            reference = reference.masked_fill(right, float("-inf"))
        order = reference.argsort(dim=1, descending=True, stable=True)
        return order[:, decision.rank]

    def decision_scores(self, logits: Tensor, decision: str | Decision = GROUND_TRUTH) -> Tensor:
        """``[K * R]`` scores of a decision from outputs ``[K * R, C]`` of (tiled) rows."""
        decision = Decision.parse(decision)
        rows = logits.shape[0]
        if decision.kind == "ground_truth":
            return self.decisions.ground_truth(logits, tile_batch(self.targets, rows))
        index = tile_batch(self.answer_index(decision), rows)
        return logits.gather(1, index[:, None]).squeeze(1)

    def sample_task_loss(self, logits: Tensor) -> Tensor:
        """``[K * R]`` the task loss of each (tiled) row, e.g. on masked proposals."""
        if self.decisions.sample_loss is None:
            raise ValueError("this task offers no per-row task loss")
        return self.decisions.sample_loss(logits, tile_batch(self.targets, logits.shape[0]))

    def _check_kind(self, decision: Decision) -> None:
        if decision.kind not in self.decisions.kinds:
            raise ValueError(
                f"decision {decision} is not available for this task (it offers "
                f"{', '.join(sorted(self.decisions.kinds))})"
            )

    # ------------------------------------------------------------------ importance
    def importance(self, decision: str | Decision = GROUND_TRUTH, method: Any = None) -> Tensor:
        """``[R, N]`` proposal importance of ``decision``, cached per decision and method.

        Args:
            decision: which decision (:class:`Decision` or its string form).
            method: an importance method (``hint_lightning.importance``); None: the training
                method of this context.
        """
        decision = Decision.parse(decision)
        self._check_kind(decision)
        method = self.method if method is None else method
        key = (decision, id(method))
        if key not in self._cache:
            self._held.append(method)
            self._cache[key] = self._compute_importance(decision, method)
        return self._cache[key]

    @property
    def network_importance(self) -> Tensor:
        """The importance of the ground-truth decision by the training method (HINT's alpha)."""
        return self.importance(GROUND_TRUTH)

    def _compute_importance(self, decision: Decision, method: Any) -> Tensor:
        times_input = bool(getattr(method, "times_input", False))
        probed = self._probe is not None or self._probe_kind in ("shift", "features")
        if (
            _is_single_pass_gradient(method)
            and probed
            and not (times_input and self._probe_kind == "shift")
            and not (times_input and self._probe is not None and self._probe.ndim == 2)
        ):
            scores = self.decision_scores(self.logits, decision)
            probe = self._probe
            assert probe is not None  # set by the module's pass or by _base_pass
            gradient = probe_gradient(scores, probe, self.create_graph, times_input)
            return gradient if self._probe_rows is None else gradient[self._probe_rows]
        if method is None:
            raise ValueError("this grounding context has no importance method and no probe")
        if self.passes is None:
            raise ValueError("this grounding context has no model passes for importance")
        return method.attribute(
            self._decision_function(decision),
            self.proposals.detach(),
            self.proposal_mask,
            create_graph=self.create_graph,
        )

    def _decision_function(self, decision: Decision) -> DecisionFunction:
        """The ``DecisionFunction`` of ``decision`` over this context's passes."""
        passes = self.passes
        assert passes is not None

        def scores(proposals: Tensor, mask: Tensor) -> Tensor:
            return self.decision_scores(passes(proposals, mask).logits, decision)

        def with_shift(proposals: Tensor, mask: Tensor, shift: Tensor) -> Tensor:
            return self.decision_scores(passes(proposals, mask, shift).logits, decision)

        def attention(proposals: Tensor, mask: Tensor) -> Tensor:
            output = passes(proposals, mask).attention
            assert output is not None
            return output

        def internals(proposals: Tensor, mask: Tensor) -> tuple[Tensor, Any]:
            output, recorded = passes.internals(proposals, mask)  # type: ignore[attr-defined]
            return self.decision_scores(output.logits, decision), recorded

        return DecisionFunction(
            scores,
            with_shift=with_shift if passes.supports_shift else None,
            attention=attention if passes.has_attention else None,
            internals=internals if getattr(passes, "has_internals", False) else None,
            supports_mask=passes.supports_mask,
        )

    # ------------------------------------------------------------------ extra passes
    def forward(self, proposals: Tensor, proposal_mask: Tensor | None = None) -> PassOutput:
        """The model on changed proposals ``[K * R, N, D]`` (mask ``[K * R, N]``, None: the
        context's mask tiled); other inputs are the rows' own, tiled copy-major."""
        if self.passes is None:
            raise ValueError("this grounding context has no model passes")
        if proposal_mask is None:
            proposal_mask = tile_batch(self.proposal_mask, proposals.shape[0])
        return self.passes(proposals, proposal_mask)

    # ------------------------------------------------------------------ views
    def select(self, rows: Tensor) -> GroundingContext:
        """The context of a subset of the rows (``[H]`` indices)."""
        base = self._base
        probe_rows = None
        if base is not None:
            base = PassOutput(
                base.logits[rows], None if base.attention is None else base.attention[rows]
            )
            probe_rows = rows if self._probe_rows is None else self._probe_rows[rows]
        return GroundingContext(
            proposals=self.proposals[rows],
            proposal_mask=self.proposal_mask[rows],
            human_importance=self.human_importance[rows],
            has_importance=self.has_importance[rows],
            decisions=self.decisions.select(rows),
            passes=None if self.passes is None else self.passes.select(rows),
            method=self.method,
            base=base,
            probe=self._probe if base is not None else None,
            probe_rows=probe_rows,
            probe_kind=None if base is not None else self._probe_kind,
            attention=None if self._attention is None else self._attention[rows],
            create_graph=self.create_graph,
        )

    def hinted(self) -> GroundingContext:
        """The rows with human importance (the same object on every call)."""
        if self._hinted is None:
            if bool(self.has_importance.all()):
                self._hinted = self
            else:
                self._hinted = self.select(self.has_importance.nonzero(as_tuple=True)[0])
        return self._hinted

    def with_human_importance(self, human_importance: Tensor) -> GroundingContext:
        """The same rows (sharing the cached importance) with other human importance."""
        other = object.__new__(GroundingContext)
        other.__dict__.update(self.__dict__)
        other.human_importance = human_importance
        other._hinted = None
        other.logs = self.logs
        return other

    def log(self, name: str, value: Tensor | float) -> None:
        """Record an extra scalar (a component of a loss) for the module to log."""
        self.logs[name] = float(value.detach() if isinstance(value, Tensor) else value)
