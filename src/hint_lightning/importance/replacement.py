"""Removing proposals from a batch: the replacement strategies shared by importance methods
(leave-one-out, keep-one-in, KernelSHAP) and faithfulness metrics (sufficiency,
comprehensiveness, removal curves, FPVG).

Perturbed batches are laid out *copy-major*: ``K`` perturbations of a batch of ``B`` samples
form one batch of ``K * B`` whose row ``k * B + b`` is perturbation ``k`` of sample ``b``. A
``forward_fn`` that receives such a batch tiles whatever it captured for the ``B`` samples
(question tokens, answers) with :func:`tile_batch`.

Strategies (``replacement=``):

- ``drop``: the proposal mask turns removed proposals off (the model never sees them). The
  default for metrics: constant replacements leak information through the value itself (Rong
  et al. 2022, "A consistent and efficient evaluation strategy for attribution methods", ROAD).
- ``zeros``: features set to 0 (Captum's ``FeatureAblation`` default baseline).
- ``mean``: features set to the batch's mean real proposal.
- ``shuffle``: features taken from the same proposal slot of another image of the batch
  (sample ``b`` borrows from sample ``(b + 1) mod B``).
- ``negative_ones``: features set to -1 (VisFIS's default, zfying/visfis).
"""

from __future__ import annotations

import torch
from torch import Tensor

REPLACEMENTS = ("drop", "zeros", "mean", "shuffle", "negative_ones")
"""The names of the replacement strategies."""


def check_replacement(replacement: str) -> str:
    """Return ``replacement`` if it is a known strategy.

    Raises:
        ValueError: listing the available strategies.
    """
    if replacement not in REPLACEMENTS:
        raise ValueError(
            f"unknown replacement {replacement!r}; choose one of {', '.join(REPLACEMENTS)}"
        )
    return replacement


def tile_batch(tensor: Tensor, batch_size: int) -> Tensor:
    """Repeat a per-sample tensor ``[B, ...]`` to ``[batch_size, ...]`` copy-major.

    Args:
        tensor: ``[B, ...]``.
        batch_size: a multiple ``K * B`` of ``B``.

    Returns:
        ``[K * B, ...]`` whose row ``k * B + b`` is row ``b``.

    Example:
        >>> tile_batch(torch.tensor([1, 2]), 6)
        tensor([1, 2, 1, 2, 1, 2])
    """
    rows = tensor.shape[0]
    if rows == 0 or batch_size % rows:
        raise ValueError(f"cannot tile a batch of {rows} to {batch_size} rows")
    times = batch_size // rows
    if times == 1:
        return tensor
    return tensor.repeat(times, *([1] * (tensor.ndim - 1)))


def replacement_values(proposals: Tensor, proposal_mask: Tensor, replacement: str) -> Tensor:
    """What a removed proposal's features become, for every proposal ``[B, N, D]``.

    Args:
        proposals: ``[B, N, D]``.
        proposal_mask: ``[B, N]`` bool, True for real proposals.
        replacement: one of :data:`REPLACEMENTS` other than ``drop``.
    """
    check_replacement(replacement)
    if replacement == "zeros":
        return torch.zeros_like(proposals)
    if replacement == "negative_ones":
        return torch.full_like(proposals, -1.0)
    if replacement == "mean":
        weights = proposal_mask.to(proposals.dtype).unsqueeze(-1)
        mean = (proposals * weights).sum(dim=(0, 1)) / weights.sum().clamp(min=1)
        return mean.expand_as(proposals)
    if replacement == "shuffle":
        return proposals.roll(shifts=-1, dims=0)
    raise ValueError("'drop' removes proposals through the mask: it has no replacement values")


def remove_proposals(
    proposals: Tensor, proposal_mask: Tensor, remove: Tensor, replacement: str = "drop"
) -> tuple[Tensor, Tensor]:
    """Remove proposals, ``K`` ways at once.

    Differentiable with respect to ``proposals`` (``torch.where``), so perturbation-based
    importance can be trained through.

    Args:
        proposals: ``[B, N, D]``.
        proposal_mask: ``[B, N]`` bool, True for real proposals.
        remove: ``[K, B, N]`` (or ``[B, N]`` for ``K = 1``) bool, True where a proposal is
            removed in perturbation ``k``.
        replacement: one of :data:`REPLACEMENTS`.

    Returns:
        ``(proposals [K * B, N, D], proposal_mask [K * B, N])``, copy-major. With ``drop`` the
        features are the originals and the mask is ``proposal_mask & ~remove``; otherwise the
        removed features are replaced and the mask is the original one.

    Example:
        >>> P = torch.ones(1, 3, 2)
        >>> mask = torch.ones(1, 3, dtype=torch.bool)
        >>> removed, kept = remove_proposals(P, mask, torch.tensor([[True, False, False]]))
        >>> kept
        tensor([[False,  True,  True]])
        >>> remove_proposals(P, mask, torch.tensor([[True, False, False]]), "zeros")[0][0, :, 0]
        tensor([0., 1., 1.])
    """
    check_replacement(replacement)
    if remove.ndim == 2:
        remove = remove.unsqueeze(0)
    batch, slots = proposal_mask.shape
    if remove.shape[1:] != (batch, slots):
        raise ValueError(
            f"remove must be [K, B, N] with [B, N] = {(batch, slots)}, got {tuple(remove.shape)}"
        )
    copies = remove.shape[0]
    flat_remove = remove.reshape(copies * batch, slots)
    tiled_mask = tile_batch(proposal_mask, copies * batch)
    tiled = tile_batch(proposals, copies * batch)
    if replacement == "drop":
        return tiled, tiled_mask & ~flat_remove
    values = tile_batch(replacement_values(proposals, proposal_mask, replacement), copies * batch)
    return torch.where(flat_remove.unsqueeze(-1), values, tiled), tiled_mask
