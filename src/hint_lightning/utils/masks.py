"""Proposal masks as every public function accepts them: bool, or numbers that are 0 or 1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def as_proposal_mask(
    mask: Tensor | None, shape: Sequence[int], name: str = "proposal_mask"
) -> Tensor | None:
    """Check a proposal mask and return it as a bool tensor (None stays None).

    Args:
        mask: ``shape`` bool, or any numeric dtype holding only 0 and 1 (1 = a real proposal).
        shape: the shape the mask must have, usually ``[B, N]``.
        name: the argument's name, for the error message.

    Returns:
        The mask as bool, on the mask's device.

    Raises:
        ValueError: naming the argument and both shapes, or the values found, when the mask
            has another shape or holds values other than 0 and 1.

    Example:
        >>> as_proposal_mask(torch.tensor([[1.0, 0.0]]), (1, 2))
        tensor([[ True, False]])
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} (that of the importance it masks), "
            f"got {tuple(mask.shape)}"
        )
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        bad = mask[(mask != 0) & (mask != 1)]
        shown = bad.flatten()[:3].tolist()
        raise ValueError(
            f"{name} must be bool or hold only 0 and 1, found {shown} (dtype {mask.dtype})"
        )
    return mask != 0
