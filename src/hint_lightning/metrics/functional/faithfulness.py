"""Faithfulness: does the model use the proposals its importance points at? Per-question values.

The model is seen through a ``forward_fn(proposals [B', N, D], proposal_mask [B', N]) ->
scores [B']`` that returns the score of each question's *decision* (VQA: the probability of
the answer being explained; captioning: the log-probability of a visual word at its step), for
batches of ``B' = K * B`` perturbed copies laid out copy-major (row ``k * B + b`` is copy ``k``
of question ``b``: a ``forward_fn`` tiles what it captured for the ``B`` questions with
:func:`~hint_lightning.importance.replacement.tile_batch`). The functions here never see
answers or words, only decisions, so they serve VQA and captioning alike. All the perturbed
copies of one call go through the model in one batch (``max_rows`` splits it), never a Python
loop over proposals; no gradient is taken.

* :func:`sufficiency_comprehensiveness`: ERASER's sufficiency and comprehensiveness (DeYoung et
  al. 2020) as VisFIS computes them for VQA (Ying et al. 2022, zfying/visfis
  ``components/metrics.py``): keep / remove the top-k proposals of :func:`visfis_top_mask` for
  ``k`` = 10, 25, 50% of the proposals; the drop in the decision's score; AOPC = their mean.
* :func:`removal_curves`: the decision's score as the most (least) relevant proposals are
  removed first, ROAD-style (Rong et al. 2022), and the area between the two curves.

Removed proposals follow :mod:`hint_lightning.importance.replacement`: ``drop`` (the proposal
mask turns them off; the default, as ROAD recommends, since a constant replacement leaks
information), ``zeros``, ``mean``, ``shuffle``, ``negative_ones`` (VisFIS's default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hint_lightning.importance.replacement import check_replacement, remove_proposals
from hint_lightning.metrics.functional.ranking import (
    check_fractions,
    check_importance,
    descending_positions,
    fraction_counts,
    least_relevant_mask,
    most_relevant_mask,
    visfis_top_mask,
)

__all__ = [
    "ForwardFn",
    "RemovalCurves",
    "SufficiencyComprehensiveness",
    "area_between_curves",
    "perturbed_outputs",
    "removal_curves",
    "sufficiency_comprehensiveness",
    "unperturbed_scores",
]

ForwardFn = Callable[[Tensor, Tensor], Tensor]
"""``forward_fn(proposals [B', N, D], proposal_mask [B', N]) -> [B']`` (copy-major batches)."""


def perturbed_outputs(
    forward_fn: ForwardFn,
    proposals: Tensor,
    proposal_mask: Tensor,
    remove: Tensor,
    replacement: str = "drop",
    max_rows: int | None = None,
) -> Tensor:
    """Run ``forward_fn`` on ``K`` perturbed copies of a batch, without gradients.

    Args:
        forward_fn: see :data:`ForwardFn` (it may return any per-row tensor: scores, or
            predicted labels for FPVG).
        proposals: ``[B, N, D]``.
        proposal_mask: ``[B, N]`` bool.
        remove: ``[K, B, N]`` bool, the proposals each copy removes.
        replacement: one of :data:`~hint_lightning.importance.replacement.REPLACEMENTS`.
        max_rows: at most this many rows (``copies x B``, at least one copy) per call of
            ``forward_fn``; None: all ``K * B`` rows in one call.

    Returns:
        ``[K, B, ...]``: what ``forward_fn`` returned, per copy. Under ``drop``, a copy that
        would leave a question without any proposal is run with its proposals intact and its
        output is NaN (floating outputs) or -1 (integer outputs): models cannot answer from
        nothing (a softmax over no proposal is NaN).
    """
    copies, batch, _ = remove.shape
    per_call = copies if max_rows is None else max(1, int(max_rows) // max(batch, 1))
    empty = (proposal_mask & ~remove).sum(dim=2) == 0  # [K, B]
    empty &= proposal_mask.any(dim=1).unsqueeze(0)
    if replacement == "drop":
        remove = remove & ~empty.unsqueeze(2)
    outputs = []
    with torch.no_grad():
        for start in range(0, copies, per_call):
            chunk = remove[start : start + per_call]
            inputs, mask = remove_proposals(proposals, proposal_mask, chunk, replacement)
            out = forward_fn(inputs, mask)
            if out.shape[0] != chunk.shape[0] * batch:
                raise ValueError(
                    f"forward_fn returned {out.shape[0]} rows for a batch of "
                    f"{chunk.shape[0] * batch} (it must return one output per row)"
                )
            outputs.append(out.detach().reshape(chunk.shape[0], batch, *out.shape[1:]))
    result = torch.cat(outputs)
    if replacement == "drop" and bool(empty.any()):
        fill = float("nan") if result.is_floating_point() else -1
        shape = (*empty.shape, *([1] * (result.ndim - 2)))
        result = result.masked_fill(empty.reshape(shape), fill)
    return result


@dataclass(frozen=True)
class SufficiencyComprehensiveness:
    """ERASER-style sufficiency and comprehensiveness of a batch of decisions.

    Attributes:
        fractions: ``(F,)`` the fractions ``k`` of proposals.
        full: ``[B]`` the decision's score with every proposal.
        sufficiency: ``[F, B]`` ``full`` minus the score with only the top-k proposals kept
            (lower is better: the top-k suffice).
        comprehensiveness: ``[F, B]`` ``full`` minus the score with the top-k removed (higher
            is better: the decision needs them).
    """

    fractions: tuple[float, ...]
    full: Tensor
    sufficiency: Tensor
    comprehensiveness: Tensor

    @property
    def sufficiency_aopc(self) -> Tensor:
        """``[B]`` the mean sufficiency over the fractions (AOPC, as VisFIS reports it)."""
        return self.sufficiency.mean(dim=0)

    @property
    def comprehensiveness_aopc(self) -> Tensor:
        """``[B]`` the mean comprehensiveness over the fractions."""
        return self.comprehensiveness.mean(dim=0)


def unperturbed_scores(
    forward_fn: ForwardFn,
    proposals: Tensor,
    mask: Tensor,
    full_scores: Tensor | None,
    replacement: str,
    max_rows: int | None,
) -> Tensor:
    """The unperturbed scores ``[B]``: given, or one forward pass."""
    if full_scores is not None:
        if tuple(full_scores.shape) != (mask.shape[0],):
            raise ValueError(
                f"full_scores must be [B] = [{mask.shape[0]}], got {tuple(full_scores.shape)}"
            )
        return full_scores.detach()
    nothing = torch.zeros((1, *mask.shape), dtype=torch.bool, device=mask.device)
    return perturbed_outputs(forward_fn, proposals, mask, nothing, replacement, max_rows)[0]


def _check_proposals(proposals: Tensor, importance: Tensor) -> None:
    if proposals.ndim != 3 or tuple(proposals.shape[:2]) != tuple(importance.shape):
        raise ValueError(
            f"proposals must be [B, N, D] with [B, N] = {tuple(importance.shape)}, "
            f"got {tuple(proposals.shape)}"
        )


def sufficiency_comprehensiveness(
    forward_fn: ForwardFn,
    proposals: Tensor,
    importance: Tensor,
    proposal_mask: Tensor | None = None,
    *,
    fractions: Sequence[float] = (0.1, 0.25, 0.5),
    replacement: str = "drop",
    full_scores: Tensor | None = None,
    max_rows: int | None = None,
) -> SufficiencyComprehensiveness:
    """Sufficiency and comprehensiveness at each fraction of proposals, as VisFIS computes them.

    VisFIS (``calc_dp_level_metrics``): for each ``k`` in 10, 25, 50% of the proposals, the top
    set of :func:`visfis_top_mask` (at most ``k`` proposals, positive importance only) is kept
    (sufficiency) or removed (comprehensiveness); each value is the decision's probability with
    all proposals minus that with the perturbed input (VisFIS: the softmax probability of the
    predicted answer, importance of the predicted answer); the question's AOPC is the mean over
    the three ``k``. ``2 F`` copies in one batch (plus one for ``full`` when not given).

    Args:
        forward_fn: see :data:`ForwardFn`.
        proposals: ``[B, N, D]``.
        importance: ``[B, N]`` importance of the decision.
        proposal_mask: ``[B, N]`` bool or 0/1; None: all real.
        fractions: the fractions ``k`` (VisFIS: 0.1, 0.25, 0.5).
        replacement: how removed proposals are replaced (``drop``: masked; VisFIS:
            ``negative_ones``).
        full_scores: ``[B]`` the decision's unperturbed scores if already known.
        max_rows: see :func:`perturbed_outputs`.

    Returns:
        :class:`SufficiencyComprehensiveness`; NaN for a question whose top set is empty under
        ``drop`` (no positive importance: nothing would be kept).
    """
    importance, mask = check_importance(importance, proposal_mask)
    _check_proposals(proposals, importance)
    check_replacement(replacement)
    fractions = check_fractions(fractions)
    full = unperturbed_scores(forward_fn, proposals, mask, full_scores, replacement, max_rows)
    tops = torch.stack([visfis_top_mask(importance, mask, f) for f in fractions])  # [F, B, N]
    remove = torch.cat([mask.unsqueeze(0) & ~tops, tops])  # keep the top set, then remove it
    scores = perturbed_outputs(forward_fn, proposals, mask, remove, replacement, max_rows)
    count = len(fractions)
    return SufficiencyComprehensiveness(
        fractions=fractions,
        full=full,
        sufficiency=full.unsqueeze(0) - scores[:count],
        comprehensiveness=full.unsqueeze(0) - scores[count:],
    )


@dataclass(frozen=True)
class RemovalCurves:
    """The decision's score as proposals are removed in order of importance.

    Attributes:
        fractions: ``(F,)`` the removed fractions (x axis; 0 and 1 are implied).
        full: ``[B]`` the score with every proposal (the curves' value at 0).
        most_relevant_first: ``[F, B]`` the score after removing the ``int(n f)`` most
            important proposals (MoRF; a faithful importance makes it fall fast); None when
            that order was not asked for.
        least_relevant_first: ``[F, B]`` the score after removing the ``int(n f)`` least
            important ones (LeRF; it should stay high); None when not asked for.
    """

    fractions: tuple[float, ...]
    full: Tensor
    most_relevant_first: Tensor | None
    least_relevant_first: Tensor | None

    @property
    def area_between(self) -> Tensor:
        """``[B]`` the area between the LeRF and the MoRF curve (:func:`area_between_curves`)."""
        if self.most_relevant_first is None or self.least_relevant_first is None:
            raise ValueError("the area between the curves needs both removal orders")
        return area_between_curves(
            self.fractions, self.least_relevant_first - self.most_relevant_first
        )


def area_between_curves(fractions: Sequence[float], difference: Tensor) -> Tensor:
    """Trapezoid area of ``difference`` over ``[0, 1]``, zero at both ends.

    Both removal curves start at the unperturbed input (nothing removed) and end at the same
    input (everything removed, whatever the order), so their difference is 0 at ``f = 0`` and
    ``f = 1``: the area needs no forward pass at the ends.

    Args:
        fractions: ``(F,)`` strictly increasing in ``(0, 1)``.
        difference: ``[F, B]`` LeRF minus MoRF at each fraction.

    Returns:
        ``[B]``.

    Example:
        >>> area_between_curves([0.5], torch.tensor([[1.0]]))  # a triangle of height 1
        tensor([0.5000])
    """
    xs = torch.tensor([0.0, *check_fractions(fractions), 1.0], dtype=difference.dtype)
    zero = torch.zeros_like(difference[:1])
    ys = torch.cat([zero, difference, zero])
    widths = (xs[1:] - xs[:-1]).to(difference.device).unsqueeze(1)
    return (widths * (ys[1:] + ys[:-1]) / 2).sum(dim=0)


ORDERS = ("most_relevant_first", "least_relevant_first")
"""The removal orders of :func:`removal_curves`."""


def removal_curves(
    forward_fn: ForwardFn,
    proposals: Tensor,
    importance: Tensor,
    proposal_mask: Tensor | None = None,
    *,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9),
    orders: Sequence[str] = ORDERS,
    replacement: str = "drop",
    full_scores: Tensor | None = None,
    max_rows: int | None = None,
) -> RemovalCurves:
    """Removal curves in both orders of importance (ROAD-style: Rong et al. 2022).

    At each fraction ``f`` the ``int(n f)`` most (MoRF) or least (LeRF) important real
    proposals are removed (``n`` real proposals; ties: the lower index counts as more
    important), all ``len(orders) * F`` copies in one batch.

    Args:
        forward_fn: see :data:`ForwardFn`.
        proposals: ``[B, N, D]``.
        importance: ``[B, N]``.
        proposal_mask: ``[B, N]`` bool or 0/1; None: all real.
        fractions: strictly increasing in ``(0, 1)``.
        orders: a subset of :data:`ORDERS`.
        replacement: see :mod:`hint_lightning.importance.replacement` (default ``drop``).
        full_scores: ``[B]`` the unperturbed scores if already known.
        max_rows: see :func:`perturbed_outputs`.

    Returns:
        :class:`RemovalCurves`.
    """
    importance, mask = check_importance(importance, proposal_mask)
    _check_proposals(proposals, importance)
    check_replacement(replacement)
    fractions = check_fractions(fractions)
    unknown = sorted(set(orders) - set(ORDERS))
    if unknown or not orders:
        raise ValueError(f"orders must be a non-empty subset of {list(ORDERS)}, got {list(orders)}")
    full = unperturbed_scores(forward_fn, proposals, mask, full_scores, replacement, max_rows)
    positions = descending_positions(importance, mask)
    counts = [fraction_counts(mask, f) for f in fractions]
    chosen = [order for order in ORDERS if order in orders]
    select = {
        "most_relevant_first": most_relevant_mask,
        "least_relevant_first": least_relevant_mask,
    }
    remove = torch.stack(
        [select[order](positions, mask, count) for order in chosen for count in counts]
    )
    scores = perturbed_outputs(forward_fn, proposals, mask, remove, replacement, max_rows)
    curves = dict(zip(chosen, scores.split(len(fractions)), strict=True))
    return RemovalCurves(
        fractions=fractions,
        full=full,
        most_relevant_first=curves.get("most_relevant_first"),
        least_relevant_first=curves.get("least_relevant_first"),
    )
