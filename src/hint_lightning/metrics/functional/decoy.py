"""Decoy metrics of ``decoy_vqa``: the decoy's share of importance and the importance scale.

* **decoy share** (the "wrong reason" share, as in Friedrich et al. 2023, "A typology for
  exploring the mitigation of shortcut behaviour", ml-research/A-Typology-to-Explore-the-
  Mitigation-of-Shortcut-Behavior): the part of a question's absolute network importance that
  lies on the proposals covering the decoy.
* **total |importance|**: the sum of a question's absolute importance over its real proposals.
  A grounding loss can be satisfied by shrinking importance towards zero (see the scale-invariant
  HINT option in ``docs/objectives.md``); this column catches that collapse.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["decoy_share", "importance_total"]


def decoy_share(importance: Tensor, decoy_proposals: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-question share of ``|importance|`` on the decoy's proposals.

    Args:
        importance: ``[B, N]`` network importance.
        decoy_proposals: ``[B, N]`` bool, the proposals covering the decoy.
        eps: Floor of the total (a question with no importance at all gets NaN).

    Returns:
        ``[B]`` in [0, 1]; NaN where the question has no decoy proposal or no importance.

    Example:
        >>> decoy_share(torch.tensor([[1.0, -3.0, 0.0]]), torch.tensor([[False, True, True]]))
        tensor([0.7500])
    """
    magnitude = importance.abs()
    total = magnitude.sum(dim=1)
    on_decoy = (magnitude * decoy_proposals.to(magnitude.dtype)).sum(dim=1)
    share = on_decoy / total.clamp(min=eps)
    undefined = ~decoy_proposals.any(dim=1) | (total <= eps)
    return torch.where(undefined, torch.full_like(share, float("nan")), share)


def importance_total(importance: Tensor, proposal_mask: Tensor | None = None) -> Tensor:
    """Per-question ``sum_n |importance_n|`` over the real proposals ``[B]``.

    Example:
        >>> importance_total(torch.tensor([[1.0, -3.0, 5.0]]), torch.tensor([[True, True, False]]))
        tensor([4.])
    """
    magnitude = importance.abs()
    if proposal_mask is not None:
        magnitude = magnitude * proposal_mask.to(magnitude.dtype)
    return magnitude.sum(dim=1)
