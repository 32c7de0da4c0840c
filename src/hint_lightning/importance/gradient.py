"""Gradient importance: ``d score / d P_r`` summed over the feature dimension (HINT's).

``alpha_r = sum_i d score / d P_ri`` (Selvaraju et al. 2019, "Taking a HINT", equation 1;
Simonyan et al. 2014's saliency without the absolute value, as Captum's ``Saliency(abs=False)``).
It is signed. The sum over features equals the derivative with respect to a scalar shift
``t_r`` added to every feature of proposal ``r``; a forward function that offers ``with_shift``
(see :mod:`hint_lightning.importance.base`) computes it that way, never forming the
``[B, N, D]`` input gradient: the same numbers, far fewer FLOPs in both backward passes.

The helpers here (:func:`input_gradient`, :func:`summed_gradient`) are the core of every
gradient-based method (input x gradient, integrated and expected gradients).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.importance.base import (
    ForwardFn,
    ImportanceMethod,
    capabilities,
    require_grad_mode,
    scores_of,
)
from hint_lightning.utils.masks import as_proposal_mask


def _differentiable(tensor: Tensor) -> Tensor:
    """``tensor`` itself when it is part of a graph, else a leaf copy that requires grad."""
    return tensor if tensor.requires_grad else tensor.detach().requires_grad_(True)


def _gradient(scores: Tensor, wrt: Tensor, create_graph: bool) -> Tensor:
    """``d scores.sum() / d wrt`` (zeros where the scores do not depend on ``wrt``)."""
    if not scores.requires_grad:
        return torch.zeros_like(wrt)
    (gradient,) = torch.autograd.grad(
        scores.sum(), wrt, create_graph=create_graph, materialize_grads=True
    )
    return gradient


def input_gradient(
    forward_fn: ForwardFn, inputs: Tensor, proposal_mask: Tensor, create_graph: bool, where: str
) -> Tensor:
    """Gradient of each row's score with respect to its proposals.

    Rows are independent in every model we explain (no batch statistics), so the gradient of
    the summed scores holds each row's own gradient.

    Args:
        forward_fn: the forward function.
        inputs: ``[B', N, D]`` the points at which to differentiate.
        proposal_mask: ``[B', N]`` bool.
        create_graph: keep the gradient differentiable.
        where: the calling method, for error messages.

    Returns:
        ``[B', N, D]``.
    """
    require_grad_mode(where)
    with torch.enable_grad():
        points = _differentiable(inputs)
        scores = scores_of(forward_fn, points, proposal_mask, where)
        return _gradient(scores, points, create_graph)


def shift_gradient(
    forward_fn: ForwardFn, inputs: Tensor, proposal_mask: Tensor, create_graph: bool, where: str
) -> Tensor:
    """Input gradient summed over features, through ``forward_fn.with_shift``.

    Args:
        forward_fn: a forward function offering ``with_shift``.
        inputs: ``[B', N, D]``.
        proposal_mask: ``[B', N]`` bool.
        create_graph: keep the gradient differentiable.
        where: the calling method, for error messages.

    Returns:
        ``[B', N]``, equal to ``input_gradient(...).sum(-1)``.
    """
    require_grad_mode(where)
    rows, slots = inputs.shape[:2]
    with torch.enable_grad():
        shift = torch.zeros(
            rows, slots, dtype=inputs.dtype, device=inputs.device, requires_grad=True
        )
        scores = forward_fn.with_shift(inputs, proposal_mask, shift)  # type: ignore[attr-defined]
        if not isinstance(scores, Tensor) or tuple(scores.shape) != (rows,):
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(
                f"{where}: forward_fn.with_shift must return one score per row, shape ({rows},), "
                f"got {got}"
            )
        return _gradient(scores, shift, create_graph)


def summed_gradient(
    forward_fn: ForwardFn,
    inputs: Tensor,
    proposal_mask: Tensor,
    create_graph: bool,
    use_shift: bool,
    where: str,
) -> Tensor:
    """``[B', N]`` input gradient summed over features, by the shift path when offered."""
    if use_shift and "with_shift" in capabilities(forward_fn):
        return shift_gradient(forward_fn, inputs, proposal_mask, create_graph, where)
    return input_gradient(forward_fn, inputs, proposal_mask, create_graph, where).sum(dim=-1)


class Gradient(ImportanceMethod):
    """``d score / d P_r`` summed over features: HINT's network importance.

    Equals Captum's ``Saliency(abs=False)`` summed over the feature dimension, and today's
    :func:`hint_lightning.objectives.importance.network_importance`.

    Args:
        use_shift: take the exact proposal-shift path when the forward function offers
            ``with_shift`` (same numbers, cheaper); False: always the ``[B, N, D]`` gradient.

    Example:
        >>> weights = torch.tensor([0.5, -1.0])
        >>> score = lambda p, m: (p * weights).sum(dim=(1, 2))  # d score / d P_ri = weights[i]
        >>> Gradient().attribute(score, torch.ones(1, 2, 2))
        tensor([[-0.5000, -0.5000]])
    """

    name = "gradient"
    uses_gradients = True

    def __init__(self, use_shift: bool = True) -> None:
        self.use_shift = bool(use_shift)

    def forward_passes(self, num_proposals: int) -> int:
        """One forward (and one backward) pass."""
        return 1

    def _arguments(self) -> dict[str, object]:
        return {"use_shift": self.use_shift}

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        return summed_gradient(
            forward_fn, proposals, proposal_mask, create_graph, self.use_shift, repr(self)
        )

    @staticmethod
    def from_scores(
        scores: Tensor,
        wrt: Tensor,
        proposal_mask: Tensor | None = None,
        *,
        create_graph: bool = True,
    ) -> Tensor:
        """Gradient importance from a forward pass the caller has already run.

        A module that computed its task loss from ``scores`` can take the importance from the
        same forward pass instead of letting :meth:`attribute` run another one.

        Args:
            scores: ``[B]`` decision scores computed from ``wrt``.
            wrt: ``[B, N, D]`` proposals that require grad (the result is summed over ``D``), or
                ``[B, N]`` the zero shift passed to a model's proposal-shift path.
            proposal_mask: ``[B, N]`` bool or 0/1; padded slots get 0 (None: all real).
            create_graph: keep the result differentiable.

        Returns:
            ``[B, N]``, the numbers :meth:`attribute` gives.
        """
        if scores.ndim != 1 or wrt.ndim not in (2, 3) or not wrt.requires_grad:
            raise ValueError(
                "Gradient.from_scores needs scores [B] and a [B, N, D] or [B, N] tensor that "
                f"requires grad, got {tuple(scores.shape)} and {tuple(wrt.shape)} "
                f"(requires_grad={wrt.requires_grad})"
            )
        gradient = _gradient(scores, wrt, create_graph)
        importance = gradient.sum(dim=-1) if wrt.ndim == 3 else gradient
        mask = as_proposal_mask(proposal_mask, importance.shape)
        return importance if mask is None else importance.masked_fill(~mask, 0.0)
