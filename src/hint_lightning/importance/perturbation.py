"""Scores of perturbed copies of a batch: the engine of the perturbation methods.

Leave-one-out, keep-one-in and KernelSHAP each describe ``K`` removals of proposals
(``remove [K, B, N]``), and :func:`removal_scores` evaluates them all copy-major through
:func:`~hint_lightning.importance.replacement.remove_proposals`, ``max_batch_rows`` rows per
forward call: no Python loop over proposals.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import Tensor

from hint_lightning.importance.base import (
    DEFAULT_MAX_BATCH_ROWS,
    ForwardFn,
    ImportanceMethod,
    check_max_batch_rows,
    copy_chunks,
    scores_of,
)
from hint_lightning.importance.replacement import check_replacement, remove_proposals


def removal_scores(
    forward_fn: ForwardFn,
    proposals: Tensor,
    proposal_mask: Tensor,
    remove: Tensor,
    replacement: str,
    create_graph: bool,
    max_batch_rows: int | None,
    where: str,
) -> Tensor:
    """The decision score of every perturbed copy of the batch.

    Args:
        forward_fn: the forward function.
        proposals: ``[B, N, D]``.
        proposal_mask: ``[B, N]`` bool.
        remove: ``[K, B, N]`` bool, True where copy ``k`` removes a proposal.
        replacement: how removed proposals are replaced (``drop``: masked out).
        create_graph: keep the scores differentiable (else they are computed without a graph).
        max_batch_rows: at most this many rows per forward call (None: all at once).
        where: the calling method, for error messages.

    Returns:
        ``[K, B]`` scores.

    Raises:
        ValueError: when ``replacement="drop"`` leaves a row with no proposal and the model
            scores that empty set as NaN or infinity.
    """
    copies, batch = remove.shape[:2]
    grad_mode: AbstractContextManager = torch.enable_grad() if create_graph else torch.no_grad()
    chunks, bad_empty = [], None
    with grad_mode:
        for start, stop in copy_chunks(copies, batch, max_batch_rows):
            perturbed, mask = remove_proposals(
                proposals, proposal_mask, remove[start:stop], replacement
            )
            scores = scores_of(forward_fn, perturbed, mask, where)
            if replacement == "drop":
                bad = ~torch.isfinite(scores.detach()) & ~mask.any(dim=1)
                bad_empty = bad.any() if bad_empty is None else bad_empty | bad.any()
            chunks.append(scores.view(stop - start, batch))
    if bad_empty is not None and bool(bad_empty):
        raise ValueError(
            f"{where}: the model scored an empty proposal set (every proposal of a sample "
            "dropped) as NaN or infinity; the drop replacement needs a model that handles an "
            "all-False proposal_mask row (e.g. zero attention), or choose another replacement"
        )
    return torch.cat(chunks)


class PerturbationMethod(ImportanceMethod):
    """A method that scores removals of proposals (leave-one-out, keep-one-in, KernelSHAP).

    Args:
        replacement: how a removed proposal is replaced: ``drop`` (the mask turns it off; needs
            a forward function that honours the mask), ``zeros``, ``mean``, ``shuffle`` or
            ``negative_ones`` (see :mod:`hint_lightning.importance.replacement`).
        max_batch_rows: at most this many rows per forward call (None: all at once).
    """

    def __init__(
        self, replacement: str = "drop", max_batch_rows: int | None = DEFAULT_MAX_BATCH_ROWS
    ) -> None:
        try:
            self.replacement = check_replacement(replacement)
        except ValueError as error:
            raise ValueError(f"{type(self).__name__}: {error}") from None
        self.max_batch_rows = check_max_batch_rows(max_batch_rows, type(self).__name__)

    @property
    def requires(self) -> frozenset[str]:
        """``{"mask"}`` for the ``drop`` replacement, else nothing."""
        return frozenset({"mask"}) if self.replacement == "drop" else frozenset()

    def _arguments(self) -> dict[str, object]:
        return {"replacement": self.replacement}

    def _scores(
        self,
        forward_fn: ForwardFn,
        proposals: Tensor,
        proposal_mask: Tensor,
        remove: Tensor,
        create_graph: bool,
    ) -> Tensor:
        """:func:`removal_scores` with this method's replacement and chunking."""
        return removal_scores(
            forward_fn,
            proposals,
            proposal_mask,
            remove,
            self.replacement,
            create_graph,
            self.max_batch_rows,
            repr(self),
        )
