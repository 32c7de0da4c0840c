"""VisFIS (Ying, Hase & Bansal, NeurIPS 2022), functional core: the feature-importance objectives.

Both take the model's feature importance (FI) of the ground-truth decision, ``[B, N]``, computed
with ``create_graph=True`` so that the loss trains the model through it. VisFIS's published runs
use ``--model_importance gradcam --gradcam_type sum --FI_predicted_class false``: the gradient of
the sum of the logits of every answer with a positive target, summed over the feature dimension
(zfying/visfis ``components/feature_impt.py`` lines 275-291).

* **Invariance, FI = 0** (``components/losses.py`` lines 222-231): the FI, L2-normalized over the
  proposals (``--normalize_FI``, default on), should vanish on unimportant proposals.
* **Plausibility alignment** (``losses.py`` lines 233-250, called at lines 468-484): the FI should
  match the human importance, by cosine, L1, L2 or their "KL".

Per-sample values ``[B]`` average over the real proposals, which is VisFIS's mean over ``B * N``
when no proposal is padded.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.utils.masks import as_proposal_mask

ALIGNMENTS = ("cosine", "l1", "l2", "kl")
"""Plausibility distances: VisFIS's ``--align_loss_type`` cossim, l1, l2, kl."""

_COSINE_EPS = 1e-12
"""Added to each squared norm, as ``torch.nn.functional.cosine_embedding_loss`` does."""
_NORMALIZE_EPS = 1e-12
"""The smallest norm ``torch.nn.functional.normalize`` divides by."""


def _check(importance: Tensor, human_importance: Tensor, proposal_mask: Tensor | None) -> Tensor:
    if importance.ndim != 2 or human_importance.shape != importance.shape:
        raise ValueError(
            "importance and human_importance must both be [B, N], got "
            f"{tuple(importance.shape)} and {tuple(human_importance.shape)}"
        )
    mask = as_proposal_mask(proposal_mask, tuple(importance.shape))
    if mask is None:
        return torch.ones_like(importance, dtype=torch.bool)
    return mask


def fi_invariance_loss(
    importance: Tensor,
    human_importance: Tensor,
    threshold: float,
    proposal_mask: Tensor | None = None,
    normalize: bool = True,
    distance: str = "l1",
) -> Tensor:
    """Invariance as FI = 0 on the unimportant proposals (VisFIS ``compute_zero_loss``).

    ``loss_b = mean over real r of [h_r <= threshold] * d(fi_r / max(||fi||_2, 1e-12))``, with
    ``d = |x|`` (``"l1"``, VisFIS's published setting) or ``x ** 2`` (``"l2"``).

    Args:
        importance: ``[B, N]`` model feature importance.
        human_importance: ``[B, N]``.
        threshold: proposals with human importance at most this are unimportant.
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals.
        normalize: divide by the FI's L2 norm over the real proposals first (VisFIS default).
        distance: ``"l1"`` or ``"l2"``.

    Returns:
        ``[B]``.

    Example:
        >>> fi = torch.tensor([[3.0, 4.0]])  # normalized: [0.6, 0.8]
        >>> fi_invariance_loss(fi, torch.tensor([[0.9, 0.1]]), threshold=0.5)  # |0.8| / 2
        tensor([0.4000])
    """
    real = _check(importance, human_importance, proposal_mask)
    weights = real.to(importance.dtype)
    if normalize:
        norm = (importance.square() * weights).sum(dim=1, keepdim=True).sqrt()
        importance = importance / norm.clamp(min=_NORMALIZE_EPS)
    if distance == "l1":
        penalty = importance.abs()
    elif distance == "l2":
        penalty = importance.square()
    else:
        raise ValueError(f"unknown FI invariance distance {distance!r}: use 'l1' or 'l2'")
    unimportant = ((human_importance <= threshold) & real).to(importance.dtype)
    return (penalty * unimportant).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def alignment_loss(
    importance: Tensor,
    human_importance: Tensor,
    kind: str = "cosine",
    proposal_mask: Tensor | None = None,
) -> Tensor:
    """Plausibility: the distance between FI and human importance (VisFIS direct alignment).

    * ``"cosine"``: ``1 - cos(fi, h)`` as ``CosineEmbeddingLoss`` with target 1 (each squared
      norm plus 1e-12); NaN where the human importance is 0 on every real proposal (no direction
      to align with; VisFIS counts such a sample as a constant 1).
    * ``"l1"`` / ``"l2"``: mean over proposals of ``|fi - h|`` / ``(fi - h) ** 2``.
    * ``"kl"``: VisFIS's ``F.kl_div(fi, h, log_target=True)``, which reads both vectors as
      log-probabilities: mean over proposals of ``exp(h) * (h - fi)``. Pass log-distributions
      for a true KL divergence.

    Args:
        importance: ``[B, N]`` model feature importance.
        human_importance: ``[B, N]``.
        kind: one of :data:`ALIGNMENTS`.
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals.

    Returns:
        ``[B]``.

    Example:
        >>> alignment_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor([0.])
        >>> alignment_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), "l1")
        tensor([0.5000])
    """
    real = _check(importance, human_importance, proposal_mask)
    weights = real.to(importance.dtype)
    fi, human = importance * weights, human_importance * weights
    count = weights.sum(dim=1).clamp(min=1)
    if kind == "cosine":
        dot = (fi * human).sum(dim=1)
        norms = (fi.square().sum(dim=1) + _COSINE_EPS) * (human.square().sum(dim=1) + _COSINE_EPS)
        losses = 1 - dot / norms.sqrt()
        return losses.masked_fill((human == 0).all(dim=1), float("nan"))
    if kind == "l1":
        return ((fi - human).abs() * weights).sum(dim=1) / count
    if kind == "l2":
        return ((fi - human).square() * weights).sum(dim=1) / count
    if kind == "kl":
        return (human.exp() * (human - fi) * weights).sum(dim=1) / count
    raise ValueError(f"unknown alignment {kind!r}: use one of {', '.join(ALIGNMENTS)}")
