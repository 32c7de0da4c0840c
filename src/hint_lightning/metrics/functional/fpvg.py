"""FPVG: Faithful & Plausible Visual Grounding (Reich et al. 2023, dreichCSL/FPVG).

A question is answered three times: with all proposals, with only the *relevant* ones and with
only the *irrelevant* ones. Its grounding is good when the answer with only the relevant
proposals is the original answer and the answer with only the irrelevant ones is not. The
public script (``calculate_FPVG.py``) sorts questions into four categories, from the
correctness of the three answers and their equality:

* GGC (good grounding, correct): correct with all and with relevant, wrong with irrelevant;
* GGW (good grounding, wrong): wrong with all and with relevant, the relevant-only answer
  equal to the original, the irrelevant-only answer different from it;
* BGC, BGW: the other correct / wrong questions.

FPVG+ is the share of good grounding, GGC + GGW. Relevant and irrelevant proposals come, in
FPVG, from box overlaps with GQA's annotated objects (IoU > 0.5 relevant; overlap <= 0.25 with
every annotated object irrelevant; ``get_object_relevance.py``); here from human importance
with two thresholds (:func:`fpvg_proposal_sets`). As the script, a question counts only when it
has at least one relevant and one irrelevant proposal.

The functions see decisions and their predictions (any integer labels: answers, words), not
tasks: VQA and captioning (predicted word at a visual-word step) alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from hint_lightning.importance.replacement import check_replacement
from hint_lightning.metrics.functional.faithfulness import perturbed_outputs
from hint_lightning.metrics.functional.ranking import check_importance
from hint_lightning.utils.masks import as_proposal_mask

__all__ = [
    "CATEGORIES",
    "FPVGOutcome",
    "PredictFn",
    "fpvg_categories",
    "fpvg_outcome",
    "fpvg_proposal_sets",
]

PredictFn = Callable[[Tensor, Tensor], Tensor]
"""``predict_fn(proposals [B', N, D], proposal_mask [B', N]) -> predicted labels [B']``."""

CorrectFn = Callable[[Tensor], Tensor]
"""``correct_fn(predictions [K, B]) -> [K, B]`` bool: whether each prediction is correct."""

CATEGORIES = ("ggc", "ggw", "bgc", "bgw")
"""FPVG's four categories, in the script's order."""


def fpvg_proposal_sets(
    human_importance: Tensor,
    proposal_mask: Tensor | None = None,
    relevant_threshold: float = 0.55,
    irrelevant_threshold: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Relevant and irrelevant proposals from human importance.

    Relevant: human importance ``> relevant_threshold`` (VisFIS's thresholds); irrelevant:
    ``<= irrelevant_threshold`` (default: the same threshold, so the two sets split the real
    proposals; a lower one leaves the ambiguous proposals in neither set, as FPVG's IoU 0.5 /
    overlap 0.25 rule does).

    Returns:
        ``(relevant [B, N], irrelevant [B, N])`` bool, both within the real proposals.

    Example:
        >>> rel, irr = fpvg_proposal_sets(torch.tensor([[0.9, 0.4, 0.1]]), None, 0.55, 0.3)
        >>> rel, irr
        (tensor([[ True, False, False]]), tensor([[False, False,  True]]))
    """
    if irrelevant_threshold is None:
        irrelevant_threshold = relevant_threshold
    if irrelevant_threshold > relevant_threshold:
        raise ValueError(
            f"irrelevant_threshold ({irrelevant_threshold}) must not exceed relevant_threshold "
            f"({relevant_threshold}): a proposal cannot be both"
        )
    human, real = check_importance(human_importance, proposal_mask, "human_importance")
    return real & (human > relevant_threshold), real & (human <= irrelevant_threshold)


def fpvg_categories(predictions: Tensor, correct: Tensor, evaluated: Tensor) -> dict[str, Tensor]:
    """The four FPVG categories of each question, from its three answers.

    Args:
        predictions: ``[3, B]`` labels with all, only relevant, only irrelevant proposals.
        correct: ``[3, B]`` bool, whether each of them is correct.
        evaluated: ``[B]`` bool, the questions FPVG counts (others are in no category).

    Returns:
        ``{"ggc", "ggw", "bgc", "bgw", "good"}`` -> ``[B]`` bool; every evaluated question is
        in exactly one of the four, ``good`` = GGC or GGW.

    Example:
        >>> preds = torch.tensor([[1, 1, 3], [1, 2, 3], [2, 1, 2]])  # rows: all, rel., irrel.
        >>> out = fpvg_categories(preds, preds == 1, torch.tensor([True, True, True]))
        >>> torch.stack([out["ggc"], out["bgc"], out["ggw"]])
        tensor([[ True, False, False],
                [False,  True, False],
                [False, False,  True]])
    """
    if predictions.ndim != 2 or predictions.shape[0] != 3 or correct.shape != predictions.shape:
        raise ValueError(
            f"predictions and correct must be [3, B] (all, relevant, irrelevant), got "
            f"{tuple(predictions.shape)} and {tuple(correct.shape)}"
        )
    answer_all, answer_rel, answer_irr = predictions
    ok_all, ok_rel, ok_irr = correct.bool()
    evaluated = evaluated.bool()
    same_rel = answer_all == answer_rel
    same_irr = answer_all == answer_irr
    wrong_all_rel = ~ok_all & ~ok_rel
    # CC_1 of calculate_FPVG.py.
    ggc = ok_all & ok_rel & ~ok_irr
    # II_1_sub3 (all three wrong, relevant-only answer kept, irrelevant-only changed) and
    # II_2_sub1 (irrelevant-only correct, relevant-only answer kept).
    ggw = wrong_all_rel & ((~ok_irr & same_rel & ~same_irr) | (ok_irr & same_rel))
    out = {
        "ggc": ggc & evaluated,
        "ggw": ggw & evaluated,
        "bgc": ok_all & ~ggc & evaluated,
        "bgw": ~ok_all & ~ggw & evaluated,
    }
    out["good"] = out["ggc"] | out["ggw"]
    return out


@dataclass(frozen=True)
class FPVGOutcome:
    """The three answers of a batch of questions and their FPVG categories.

    Attributes:
        predictions: ``[3, B]`` labels with all / only relevant / only irrelevant proposals.
        correct: ``[3, B]`` bool.
        evaluated: ``[B]`` bool: the question has a relevant and an irrelevant proposal.
        categories: :func:`fpvg_categories`.
    """

    predictions: Tensor
    correct: Tensor
    evaluated: Tensor
    categories: dict[str, Tensor]


def fpvg_outcome(
    predict_fn: PredictFn,
    correct_fn: CorrectFn,
    proposals: Tensor,
    relevant: Tensor,
    irrelevant: Tensor,
    proposal_mask: Tensor | None = None,
    *,
    predictions: Tensor | None = None,
    replacement: str = "drop",
    max_rows: int | None = None,
) -> FPVGOutcome:
    """Answer with only the relevant and with only the irrelevant proposals; categorize.

    FPVG drops the other proposals from the input (its README: remove them and set the number
    of valid objects), our ``drop``; other replacements are selectable. One forward batch of
    ``2 B`` rows (plus ``B`` when ``predictions`` is not given).

    Args:
        predict_fn: see :data:`PredictFn` (copy-major batches, like a ``forward_fn``).
        correct_fn: see :data:`CorrectFn` (e.g. ``lambda p: p == answers`` for one ground-truth
            label per question, FPVG's exact match).
        proposals: ``[B, N, D]``.
        relevant: ``[B, N]`` bool (:func:`fpvg_proposal_sets`).
        irrelevant: ``[B, N]`` bool, disjoint from ``relevant``.
        proposal_mask: ``[B, N]`` bool or 0/1; None: all real.
        predictions: ``[B]`` the labels with all proposals if already known.
        replacement: see :mod:`hint_lightning.importance.replacement`.
        max_rows: see :func:`~hint_lightning.metrics.functional.faithfulness.perturbed_outputs`.

    Returns:
        :class:`FPVGOutcome`.
    """
    check_replacement(replacement)
    shape = tuple(proposals.shape[:2])
    mask = as_proposal_mask(proposal_mask, shape)
    if mask is None:
        mask = torch.ones(shape, dtype=torch.bool, device=proposals.device)
    for name, value in (("relevant", relevant), ("irrelevant", irrelevant)):
        if tuple(value.shape) != shape or value.dtype != torch.bool:
            raise ValueError(f"{name} must be a [B, N] = {shape} bool mask, got {value.shape}")
    if bool((relevant & irrelevant).any()):
        raise ValueError("a proposal is both relevant and irrelevant")
    relevant, irrelevant = relevant & mask, irrelevant & mask
    evaluated = relevant.any(dim=1) & irrelevant.any(dim=1)
    remove = [mask & ~relevant, mask & ~irrelevant]
    if predictions is None:
        remove.insert(0, torch.zeros_like(mask))
    outputs = perturbed_outputs(
        predict_fn, proposals, mask, torch.stack(remove), replacement, max_rows
    )
    if predictions is not None:
        if tuple(predictions.shape) != (shape[0],):
            raise ValueError(f"predictions must be [B] = [{shape[0]}], got {predictions.shape}")
        outputs = torch.cat([predictions.detach().to(outputs.dtype).unsqueeze(0), outputs])
    correct = correct_fn(outputs).bool()
    if correct.shape != outputs.shape:
        raise ValueError(
            f"correct_fn returned shape {tuple(correct.shape)} for predictions "
            f"{tuple(outputs.shape)}"
        )
    return FPVGOutcome(outputs, correct, evaluated, fpvg_categories(outputs, correct, evaluated))
