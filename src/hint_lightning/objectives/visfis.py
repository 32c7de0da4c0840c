"""VisFIS (Ying, Hase & Bansal, NeurIPS 2022), functional core: the output-level objectives.

VisFIS splits the proposals of a sample with a threshold on human importance: important
(``h > threshold``) and unimportant (``h <= threshold``). The "right for the right reasons"
objectives then ask for

* **sufficiency**: the important proposals alone still give the right answer;
* **uncertainty**: the unimportant proposals alone give no answer (a uniform prediction);
* **invariance**: removing unimportant proposals changes nothing, at the output level (this
  module) or in the feature importance, FI = 0 on them (:mod:`.visfis_fi`);
* **plausibility**: feature importance aligned with human importance (:mod:`.visfis_fi`).

Removed proposals are replaced by :func:`~hint_lightning.importance.replacement.remove_proposals`,
by default with features of -1 (``--replace_func negative_ones``, ``components/feature_impt.py``
lines 54-69). Each perturbation family costs one batched forward (copy-major ``K * B`` rows);
sufficiency and uncertainty share one of ``2 * B`` rows, as VisFIS's single forward of the
original and both copies (``feature_impt.py`` lines 233-259).

Losses are per sample, ``[B]``, NaN where VisFIS's ``batch_mask`` zeroes the row (no important,
or no unimportant, proposal); VisFIS still divides by the whole batch, and a zeroed sufficiency
row costs ``log A`` (softmax) or ``A log 2`` (sigmoid). Reductions follow ``losses.py``: a mean
over answers where it calls ``F.kl_div``/``MSELoss`` with ``reduction="mean"``, a sum over
answers for the sigmoid task loss (``instance_bce_with_logits``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hint_lightning.importance.replacement import remove_proposals
from hint_lightning.objectives.visfis_fi import alignment_loss, fi_invariance_loss
from hint_lightning.utils.masks import as_proposal_mask

ForwardFn = Callable[[Tensor, Tensor], Tensor]
"""``forward_fn(proposals [B', N, D], proposal_mask [B', N] bool) -> logits [B', A]``."""

OUTPUTS = ("softmax", "sigmoid")
"""How logits become answer distributions: VisFIS's ``--vqa_loss_type`` (default softmax)."""

PUBLISHED_THRESHOLDS = {"xaicp": 0.85, "hatcp": 0.55, "gqacp": 0.3}
"""``--impt_threshold`` per data set, zfying/visfis ``scripts/visfis/visfis_updn.sh`` lines 13-19
(VQA-HAT-CP: 0.55)."""


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}: use one of {', '.join(OUTPUTS)}")
    return output


def _real(proposal_mask: Tensor | None, shape: tuple[int, ...], device: torch.device) -> Tensor:
    mask = as_proposal_mask(proposal_mask, shape)
    return torch.ones(shape, dtype=torch.bool, device=device) if mask is None else mask


def important_proposals(
    human_importance: Tensor, threshold: float, proposal_mask: Tensor | None = None
) -> Tensor:
    """``[B, N]`` bool: real proposals with human importance above ``threshold``.

    Example:
        >>> important_proposals(torch.tensor([[0.9, 0.55, 0.2]]), 0.55)
        tensor([[ True, False, False]])
    """
    if human_importance.ndim != 2:
        raise ValueError(f"human_importance must be [B, N], got {tuple(human_importance.shape)}")
    real = _real(proposal_mask, tuple(human_importance.shape), human_importance.device)
    return (human_importance > threshold) & real


def forward_keeping(
    forward_fn: ForwardFn,
    proposals: Tensor,
    keep: Tensor,
    proposal_mask: Tensor | None = None,
    replacement: str = "negative_ones",
) -> Tensor:
    """Logits of ``K`` copies of the batch, each keeping only some proposals: one forward.

    Args:
        forward_fn: the model, see :data:`ForwardFn`.
        proposals: ``[B, N, D]``.
        keep: ``[K, B, N]`` (or ``[B, N]``) bool, the proposals each copy keeps.
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals (never kept).
        replacement: how removed proposals are hidden (see ``remove_proposals``).

    Returns:
        ``[K, B, A]`` logits.
    """
    if keep.ndim == 2:
        keep = keep.unsqueeze(0)
    batch, slots = proposals.shape[:2]
    real = _real(proposal_mask, (batch, slots), proposals.device)
    perturbed, mask = remove_proposals(proposals, real, real & ~keep.bool(), replacement)
    logits = forward_fn(perturbed, mask)
    return logits.view(keep.shape[0], batch, -1)


def sufficiency_from_logits(
    kept_logits: Tensor, targets: Tensor, has_kept: Tensor, output: str = "softmax"
) -> Tensor:
    """Task loss on the important proposals alone (VisFIS ``losses.py`` lines 405-410).

    Args:
        kept_logits: ``[B, A]`` logits with only the important proposals.
        targets: ``[B, A]`` soft answer scores.
        has_kept: ``[B]`` bool, samples with at least one important proposal.
        output: ``"softmax"``: cross-entropy with ``argmax(targets)``; ``"sigmoid"``: binary
            cross-entropy with the soft scores, summed over answers (``instance_bce_with_logits``).

    Returns:
        ``[B]``, NaN where ``has_kept`` is False.

    Example:
        >>> sufficiency_from_logits(torch.zeros(1, 4), torch.eye(1, 4), torch.tensor([True]))
        tensor([1.3863])
    """
    if _check_output(output) == "softmax":
        losses = F.cross_entropy(kept_logits, targets.argmax(dim=1), reduction="none")
    else:
        bce = F.binary_cross_entropy_with_logits(kept_logits, targets, reduction="none")
        losses = bce.sum(dim=1)
    return losses.masked_fill(~has_kept, float("nan"))


def uncertainty_from_logits(
    kept_logits: Tensor, has_kept: Tensor, output: str = "softmax"
) -> Tensor:
    """Distance to a uniform answer on the unimportant proposals alone.

    ``"softmax"`` (VisFIS ``losses.py`` lines 416-437, their ``F.kl_div`` with
    ``log_target=True`` and mean reduction): ``KL(uniform || softmax(logits)) / A``.
    ``"sigmoid"`` is ours: the Bernoulli ``KL(0.5 || sigmoid(logit))`` averaged over answers
    (VisFIS's sigmoid branch compares with log-probability 0, i.e. pushes every answer to
    probability 1, which is no uncertainty).

    Args:
        kept_logits: ``[B, A]`` logits with only the unimportant proposals.
        has_kept: ``[B]`` bool, samples with at least one unimportant proposal.
        output: ``"softmax"`` or ``"sigmoid"``.

    Returns:
        ``[B]``, NaN where ``has_kept`` is False; 0 for a uniform prediction.

    Example:
        >>> uncertainty_from_logits(torch.zeros(1, 4), torch.tensor([True]))
        tensor([0.])
    """
    answers = kept_logits.shape[1]
    if _check_output(output) == "softmax":
        log_uniform = -math.log(answers)
        log_probs = F.log_softmax(kept_logits, dim=1)
        losses = (log_uniform - log_probs).sum(dim=1) / answers**2
    else:
        # 0.5 log(0.5 / p) + 0.5 log(0.5 / (1 - p)), with log p = logsigmoid(z).
        bernoulli = -math.log(2.0) - 0.5 * (F.logsigmoid(kept_logits) + F.logsigmoid(-kept_logits))
        losses = bernoulli.mean(dim=1)
    return losses.masked_fill(~has_kept, float("nan"))


def output_invariance_from_logits(
    logits: Tensor,
    perturbed_logits: Tensor,
    has_important: Tensor,
    distance: str = "kl",
    output: str = "softmax",
) -> Tensor:
    """How much removing unimportant proposals moves the output (VisFIS ``losses.py`` 298-327).

    ``"kl"``: VisFIS's ``F.kl_div(log p, log p', log_target=True)`` with mean reduction, i.e.
    ``KL(p' || p) / A`` with ``p`` the original and ``p'`` the perturbed prediction
    (``"sigmoid"``: our Bernoulli KL per answer, averaged). ``"l2"``: the mean squared
    difference of the logits.

    Args:
        logits: ``[B, A]`` on all proposals.
        perturbed_logits: ``[B, A]`` on the important plus a random share of the others.
        has_important: ``[B]`` bool; VisFIS leaves out samples without important proposals.
        distance: ``"kl"`` or ``"l2"``.
        output: ``"softmax"`` or ``"sigmoid"`` (for ``"kl"``).

    Returns:
        ``[B]``, NaN where ``has_important`` is False.

    Example:
        >>> output_invariance_from_logits(torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([True]))
        tensor([0.])
    """
    if distance == "l2":
        losses = (logits - perturbed_logits).square().mean(dim=1)
    elif distance == "kl":
        if _check_output(output) == "softmax":
            log_p, log_q = F.log_softmax(logits, dim=1), F.log_softmax(perturbed_logits, dim=1)
            losses = (log_q.exp() * (log_q - log_p)).mean(dim=1)
        else:
            q = torch.sigmoid(perturbed_logits)
            positive = F.logsigmoid(perturbed_logits) - F.logsigmoid(logits)
            negative = F.logsigmoid(-perturbed_logits) - F.logsigmoid(-logits)
            losses = (q * positive + (1 - q) * negative).mean(dim=1)
    else:
        raise ValueError(f"unknown invariance distance {distance!r}: use 'kl' or 'l2'")
    return losses.masked_fill(~has_important, float("nan"))


def sample_invariance_keep(
    important: Tensor, proposal_mask: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """VisFIS's random keep-set for invariance (``feature_impt.py`` lines 180-193), vectorized.

    Each sample draws a share ``p = u / c`` (``u`` uniform in ``0..c``, ``c`` its number of
    unimportant proposals) and keeps each unimportant proposal with probability ``p``; the
    important ones are always kept.

    Args:
        important: ``[B, N]`` bool.
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals (never kept).
        generator: random source (None: the global one).

    Returns:
        ``[B, N]`` bool.
    """
    real = _real(proposal_mask, tuple(important.shape), important.device)
    unimportant = real & ~important
    count = unimportant.sum(dim=1, keepdim=True)
    draw = torch.rand(count.shape, generator=generator, device=important.device)
    share = torch.floor(draw * (count + 1)) / count.clamp(min=1)
    coin = torch.rand(important.shape, generator=generator, device=important.device)
    return important | (unimportant & (coin <= share))


def sufficiency_uncertainty_logits(
    forward_fn: ForwardFn,
    proposals: Tensor,
    important: Tensor,
    proposal_mask: Tensor | None = None,
    replacement: str = "negative_ones",
) -> tuple[Tensor, Tensor]:
    """Logits on the important proposals alone and on the others alone: one forward of ``2B``.

    Returns:
        ``(important_only [B, A], unimportant_only [B, A])``.
    """
    real = _real(proposal_mask, tuple(important.shape), important.device)
    keep = torch.stack([important & real, real & ~important])
    both = forward_keeping(forward_fn, proposals, keep, real, replacement)
    return both[0], both[1]


def sufficiency_loss(
    forward_fn: ForwardFn,
    proposals: Tensor,
    targets: Tensor,
    human_importance: Tensor,
    threshold: float,
    proposal_mask: Tensor | None = None,
    replacement: str = "negative_ones",
    output: str = "softmax",
) -> Tensor:
    """Sufficiency: :func:`sufficiency_from_logits` after one forward (``[B]``).

    Example:
        >>> model = lambda P, mask: P.sum(dim=1)  # logits = sum of the proposals' features
        >>> P = torch.tensor([[[3.0, 0.0], [0.0, 9.0]]])  # proposal 1 alone would say answer 1
        >>> human, targets = torch.tensor([[0.9, 0.1]]), torch.tensor([[1.0, 0.0]])
        >>> sufficiency_loss(model, P, targets, human, threshold=0.5)  # logits [3 - 1, 0 - 1]
        tensor([0.0486])
    """
    important = important_proposals(human_importance, threshold, proposal_mask)
    kept = forward_keeping(forward_fn, proposals, important, proposal_mask, replacement)[0]
    return sufficiency_from_logits(kept, targets, important.any(dim=1), output)


def uncertainty_loss(
    forward_fn: ForwardFn,
    proposals: Tensor,
    human_importance: Tensor,
    threshold: float,
    proposal_mask: Tensor | None = None,
    replacement: str = "negative_ones",
    output: str = "softmax",
) -> Tensor:
    """Uncertainty: :func:`uncertainty_from_logits` after one forward (``[B]``)."""
    important = important_proposals(human_importance, threshold, proposal_mask)
    real = _real(proposal_mask, tuple(important.shape), important.device)
    unimportant = real & ~important
    kept = forward_keeping(forward_fn, proposals, unimportant, real, replacement)[0]
    return uncertainty_from_logits(kept, unimportant.any(dim=1), output)


def output_invariance_loss(
    forward_fn: ForwardFn,
    proposals: Tensor,
    logits: Tensor,
    human_importance: Tensor,
    threshold: float,
    proposal_mask: Tensor | None = None,
    replacement: str = "negative_ones",
    distance: str = "kl",
    output: str = "softmax",
    keep: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Output-level invariance after one forward (``[B]``).

    Args:
        logits: ``[B, A]`` the model's logits on all proposals (the task forward).
        keep: ``[B, N]`` bool, the proposals kept; None: :func:`sample_invariance_keep`.
        generator: random source for the keep-set.

    See :func:`output_invariance_from_logits` for the rest.
    """
    important = important_proposals(human_importance, threshold, proposal_mask)
    if keep is None:
        keep = sample_invariance_keep(important, proposal_mask, generator)
    keep = as_proposal_mask(keep, tuple(important.shape), "keep")
    perturbed = forward_keeping(forward_fn, proposals, keep, proposal_mask, replacement)[0]
    return output_invariance_from_logits(logits, perturbed, important.any(dim=1), distance, output)


@dataclass(frozen=True)
class VisFISWeights:
    """Weights of the four terms of VisFIS's best objective (their "OBJ11")."""

    sufficiency: float = 1.0
    uncertainty: float = 1.0
    fi_invariance: float = 1.0
    alignment: float = 1.0


PUBLISHED_WEIGHTS = {
    "updn": VisFISWeights(),
    "updn_hat": VisFISWeights(fi_invariance=0.1, alignment=0.1),
    "lxmert": VisFISWeights(fi_invariance=1e-3, alignment=1e-5),
}
"""The weights ``--OBJ11`` sets, zfying/visfis ``components/losses.py``: sufficiency 1 (lines
402-403), uncertainty 1 with KL (430-432), FI = 0 with L1: 1e-3 LXMERT, 0.1 UpDn on VQA-HAT, else
1 (451-459), alignment with cosine: 1e-5 LXMERT, 0.1 UpDn on VQA-HAT, else 1 (469-477)."""


def visfis_losses(
    forward_fn: ForwardFn,
    proposals: Tensor,
    targets: Tensor,
    importance: Tensor,
    human_importance: Tensor,
    threshold: float,
    proposal_mask: Tensor | None = None,
    replacement: str = "negative_ones",
    output: str = "softmax",
) -> dict[str, Tensor]:
    """VisFIS's four terms (``scripts/visfis/visfis_updn.sh``): one extra forward of ``2B``.

    Args:
        forward_fn: the model, see :data:`ForwardFn`.
        proposals: ``[B, N, D]``.
        targets: ``[B, A]`` soft answer scores.
        importance: ``[B, N]`` FI of the ground truth (see :mod:`.visfis_fi`), with
            ``create_graph=True`` when training.
        human_importance: ``[B, N]``.
        threshold: ``--impt_threshold`` (:data:`PUBLISHED_THRESHOLDS`).
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals.
        replacement: how removed proposals are hidden (VisFIS: ``negative_ones``).
        output: ``"softmax"`` (VisFIS's default) or ``"sigmoid"``.

    Returns:
        ``{"sufficiency", "uncertainty", "fi_invariance", "alignment"}`` -> ``[B]`` each
        (alignment by cosine, FI = 0 by normalized L1, as ``--OBJ11``).
    """
    important = important_proposals(human_importance, threshold, proposal_mask)
    real = _real(proposal_mask, tuple(important.shape), important.device)
    important_only, unimportant_only = sufficiency_uncertainty_logits(
        forward_fn, proposals, important, real, replacement
    )
    return {
        "sufficiency": sufficiency_from_logits(
            important_only, targets, important.any(dim=1), output
        ),
        "uncertainty": uncertainty_from_logits(
            unimportant_only, (real & ~important).any(dim=1), output
        ),
        "fi_invariance": fi_invariance_loss(importance, human_importance, threshold, real),
        "alignment": alignment_loss(importance, human_importance, "cosine", real),
    }


def visfis_total(losses: dict[str, Tensor], weights: VisFISWeights | None = None) -> Tensor:
    """``sum_t weight_t * mean`` of term ``t``'s defined entries (a term with none adds 0).

    Example:
        >>> terms = {name: torch.tensor([1.0, float("nan")]) for name in
        ...          ("sufficiency", "uncertainty", "fi_invariance", "alignment")}
        >>> visfis_total(terms, PUBLISHED_WEIGHTS["updn_hat"])
        tensor(2.2000)
    """
    weights = weights or VisFISWeights()
    total = next(iter(losses.values())).new_zeros(())
    for name, value in losses.items():
        defined = ~torch.isnan(value)
        if bool(defined.any()):
            total = total + getattr(weights, name) * value[defined].mean()
    return total
