"""Network importance of proposals (the HINT paper's equation 1).

``alpha_r = sum_i d o_gt / d P^r_i``: the gradient of the ground-truth decision score with respect
to proposal ``r``'s input features, summed over the feature dimension. The gradient is signed (no
ReLU) and, with ``create_graph=True``, itself differentiable, so a loss built on it can be
minimized by an ordinary backward pass (a gradient of a gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor


def network_importance(
    decision_scores: Tensor, proposals: Tensor, create_graph: bool = True
) -> Tensor:
    """Gradient-based importance of every proposal for each sample's decision.

    Samples are independent in every model we tune (no batch normalization across samples), so
    the gradient of the summed scores holds each sample's own gradient in its own row.

    Args:
        decision_scores: ``[B]`` the score of each sample's ground-truth decision, computed from
            ``proposals`` (e.g. the logit of the ground-truth answer).
        proposals: ``[B, N, D]`` the proposal features fed to the model; must require grad and be
            part of the graph that produced ``decision_scores``.
        create_graph: keep the graph of the gradient so that a loss on the importance can be
            back-propagated (True for training; False for evaluation and pictures).

    Returns:
        ``[B, N]`` importance of each proposal (signed).

    Example:
        >>> proposals = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], requires_grad=True)
        >>> weights = torch.tensor([0.5, -1.0])
        >>> scores = (proposals * weights).sum(dim=(1, 2))  # d score / d P_ri = weights[i]
        >>> network_importance(scores, proposals)
        tensor([[-0.5000, -0.5000]])
    """
    if decision_scores.ndim != 1:
        raise ValueError(f"decision_scores must be [B], got shape {tuple(decision_scores.shape)}")
    if proposals.ndim != 3:
        raise ValueError(f"proposals must be [B, N, D], got shape {tuple(proposals.shape)}")
    if not proposals.requires_grad:
        raise ValueError(
            "proposals must require grad and feed decision_scores: call "
            "proposals.requires_grad_(True) before the forward pass"
        )
    (gradient,) = torch.autograd.grad(
        decision_scores.sum(), proposals, create_graph=create_graph, allow_unused=False
    )
    return gradient.sum(dim=-1)


def network_importance_from_shift(
    decision_scores: Tensor, proposal_shift: Tensor, create_graph: bool = True
) -> Tensor:
    """Network importance through a per-proposal shift: the same numbers, far fewer FLOPs.

    ``alpha_r`` is the input gradient summed over the feature dimension, which is the
    derivative with respect to a scalar ``t_r`` added to every feature of proposal ``r``. A
    model that applies the shift after its first linear layers (``W (P_r + t_r 1) = W P_r +
    t_r W 1``, see ``UpDnVQA(proposal_shift=...)``) never forms the ``[B, N, D]`` input gradient
    in the first backward, nor its derivative in the second.

    Args:
        decision_scores: ``[B]`` scores computed by a model that received ``proposal_shift``.
        proposal_shift: ``[B, N]`` zeros that require grad, passed to the model.
        create_graph: as in :func:`network_importance`.

    Returns:
        ``[B, N]`` importance, equal to :func:`network_importance` on the same inputs.
    """
    if proposal_shift.ndim != 2 or not proposal_shift.requires_grad:
        raise ValueError("proposal_shift must be a [B, N] tensor that requires grad")
    (gradient,) = torch.autograd.grad(
        decision_scores.sum(), proposal_shift, create_graph=create_graph
    )
    return gradient
