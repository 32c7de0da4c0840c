"""Self-Critical Reasoning (Wu & Mooney, NeurIPS 2019), functional core.

SCR adds two terms to the task loss, both on *sensitivities*: ``S(a, r)``, the gradient of
answer ``a``'s logit with respect to proposal ``r``'s features, summed over the feature
dimension (the network importance of this package, for the decision ``a``).

* **Influence strengthening** (paper section 3.2): among the ``num_sub`` proposals with the
  highest human importance, at least one should be more sensitive for the ground-truth answer
  than every proposal outside the human-important set.
* **Self-critical** (paper section 3.3): when a wrong answer among the ``bucket`` most confident
  predictions is more probable than the ground truth, its sensitivity on the most influential
  human-important proposal is pushed below the ground truth's, weighted by how far the
  probabilities are apart and by how different the answers are (``1 - cos`` of their GloVe
  vectors).

This module reproduces the arithmetic of the public code, ``compute_scr_loss`` in
jialinwu17/self_critical_vqa ``train.py`` (lines 113-174) as re-implemented in
erobic/negative_analysis_of_grounding ``train.py`` (lines 59-144, with ``hint_flags`` and the
``apply_answer_weight`` switch) and zfying/visfis ``components/losses.py`` (lines 48-175):
the same inputs give the same three numbers (see ``tests/test_objective_scr.py``). Its details,
all kept:

* the human-important set: proposals whose human importance exceeds the ``(num_sub + 1)``-th
  largest one minus ``1e-5``, that threshold raised by ``0.1`` when it is below ``0.2``;
* the influence term compares ranked proposals ``j < num_sub`` with every other proposal
  ``k`` with a margin of ``1e-4``, keeps for each ``j`` the sum of its violations, and takes the
  smallest *positive* sum over ``j`` (a sample whose sums are all zero costs nothing and is left
  out of the mean);
* the self-critical term reads the proposal whose *index* is the chosen rank ``j`` (the public
  code gathers with the rank, not with the proposal that rank points to); pass
  ``compare_proposal="chosen"`` for the proposal the influence term chose instead;
* probabilities are ``sigmoid(logit)``; the ground truth is ``argmax(targets)`` for the
  probability and the answer weight, while its sensitivity (``gt_importance``) is that of the sum
  of the logits of every answer with a positive target;
* the ``bucket`` answers are the most confident predictions, which may include a correct answer:
  only those more probable than the ground truth count (``prob_pred - prob_gt > 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hint_lightning.utils.masks import as_proposal_mask

INFLUENCE_EPS = 1e-7
"""The public code's ``eps``: influence sums at most this count as zero."""
INFLUENCE_MARGIN = 1e-4
"""The public code's margin between a human-important proposal and any other one."""
COMPARE_EPS = 1e-4
"""Added to the number of compared (sample, answer) pairs in the public code's mean."""
_NO_VIOLATION_OFFSET = 10000.0
"""What the public code adds to zero sums so that ``min`` picks the smallest positive one."""


def scr_bucket_answers(logits: Tensor, bucket: int = 4) -> Tensor:
    """The ``bucket`` most confident answers, most confident first (the models' ``ansidx``).

    Args:
        logits: ``[B, A]``.
        bucket: how many answers to compare with the ground truth.

    Returns:
        ``[B, bucket]`` answer indices.

    Example:
        >>> scr_bucket_answers(torch.tensor([[0.1, 2.0, -1.0, 0.5]]), bucket=2)
        tensor([[1, 3]])
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be [B, A], got shape {tuple(logits.shape)}")
    if not 1 <= bucket <= logits.shape[1]:
        raise ValueError(f"bucket must be in [1, {logits.shape[1]}] (the answers), got {bucket}")
    return torch.argsort(logits, dim=1, descending=True)[:, :bucket]


def answer_cosine_similarity(embeddings: Tensor) -> Tensor:
    """Cosine similarity of every pair of answers, as SCR's ``ans_cossim.pkl``.

    The public file holds ``sklearn.metrics.pairwise.cosine_similarity`` of the answers' GloVe
    vectors (erobic/negative_analysis_of_grounding ``tools/compute_ans_cossim.py``); an answer
    without a vector (all zeros) is similar to nothing, itself included.

    Args:
        embeddings: ``[A, E]`` one vector per answer.

    Returns:
        ``[A, A]`` similarities in ``[-1, 1]``.

    Example:
        >>> answer_cosine_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
        tensor([[1.0000, 0.7071, 0.0000],
                [0.7071, 1.0000, 0.0000],
                [0.0000, 0.0000, 0.0000]])
    """
    norms = embeddings.norm(dim=1, keepdim=True)
    unit = embeddings / torch.where(norms == 0, torch.ones_like(norms), norms)
    return unit @ unit.T


@dataclass(frozen=True)
class SCRLosses:
    """The SCR terms of a batch, before reduction, with the public code's masks.

    Attributes:
        influence: ``[B]`` weighted influence loss of each sample (0 without a violation).
        influence_counted: ``[B]`` bool, the samples the public mean divides by
            (``influence > 1e-7``).
        compare: ``[B, K]`` weighted self-critical loss of each bucket answer.
        compare_counted: ``[B, K]`` bool, the pairs the public mean divides by (the answer is
            more probable than the ground truth).
        regulariser: ``[B, K]`` weighted regulariser of each bucket answer.
        has_human: ``[B]`` bool, the samples with human importance (``hint_flags``).
        bucket_answers: ``[B, K]`` the compared answers.
        chosen_rank: ``[B]`` the rank ``j < num_sub`` the influence term kept.
        compare_proposal: ``[B]`` the proposal the self-critical term reads.
    """

    influence: Tensor
    influence_counted: Tensor
    compare: Tensor
    compare_counted: Tensor
    regulariser: Tensor
    has_human: Tensor
    bucket_answers: Tensor
    chosen_rank: Tensor
    compare_proposal: Tensor

    def public(self) -> tuple[Tensor, Tensor, Tensor]:
        """The three scalars ``compute_scr_loss`` returns: influence, compare, regulariser.

        Influence: sum over counted samples divided by (their number + 1e-7). Compare: sum over
        counted pairs divided by (their number + 1e-4); pairs of samples without human
        importance count with a zero loss, as in the public code. Regulariser: mean over all
        ``B * K`` entries.
        """
        counted = self.influence_counted.to(self.influence.dtype)
        influence = (self.influence * counted).sum() / (counted.sum() + INFLUENCE_EPS)
        pairs = self.compare_counted.to(self.compare.dtype)
        compare = (self.compare * pairs).sum() / (pairs.sum() + COMPARE_EPS)
        return influence, compare, self.regulariser.mean()

    def sample_influence(self) -> Tensor:
        """``[B]`` influence losses, NaN for samples the public mean leaves out."""
        defined = self.influence_counted & self.has_human
        return self.influence.masked_fill(~defined, float("nan"))

    def sample_compare(self) -> Tensor:
        """``[B, K]`` self-critical losses, NaN where no wrong answer beats the ground truth
        or the sample has no human importance."""
        defined = self.compare_counted & self.has_human.unsqueeze(1)
        return self.compare.masked_fill(~defined, float("nan"))

    def sample_regulariser(self) -> Tensor:
        """``[B, K]`` regulariser, NaN for samples without human importance."""
        return self.regulariser.masked_fill(~self.has_human.unsqueeze(1), float("nan"))


def _check_shapes(
    logits: Tensor,
    targets: Tensor,
    gt_importance: Tensor,
    bucket_importance: Tensor,
    human_importance: Tensor,
    bucket_answers: Tensor,
    num_sub: int,
) -> None:
    if logits.ndim != 2 or targets.shape != logits.shape:
        raise ValueError(
            f"logits and targets must both be [B, A], got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if gt_importance.ndim != 2 or human_importance.shape != gt_importance.shape:
        raise ValueError(
            "gt_importance and human_importance must both be [B, N], got "
            f"{tuple(gt_importance.shape)} and {tuple(human_importance.shape)}"
        )
    batch, slots = gt_importance.shape
    if logits.shape[0] != batch:
        raise ValueError(f"logits has {logits.shape[0]} rows, the importance {batch}")
    if bucket_answers.ndim != 2 or bucket_answers.shape[0] != batch:
        raise ValueError(f"bucket_answers must be [B, K], got {tuple(bucket_answers.shape)}")
    expected = (batch, bucket_answers.shape[1], slots)
    if tuple(bucket_importance.shape) != expected:
        raise ValueError(
            f"bucket_importance must be [B, K, N] = {expected} (the importance of each bucket "
            f"answer), got {tuple(bucket_importance.shape)}"
        )
    if not 1 <= num_sub < slots:
        raise ValueError(f"num_sub must be in [1, {slots - 1}] (N - 1), got {num_sub}")


def _binarised_human_importance(
    human_importance: Tensor, real: Tensor, num_sub: int
) -> tuple[Tensor, Tensor]:
    """The public code's human-important set and the proposals ranked by human importance.

    Returns:
        ``(hinted [B, N] float 0/1, order [B, N] long)``: ``order[:, j]`` is the proposal of
        rank ``j`` (padded proposals last).
    """
    ranked_scores = human_importance.masked_fill(~real, float("-inf"))
    sorted_scores, order = ranked_scores.sort(dim=1, descending=True, stable=True)
    threshold = sorted_scores[:, num_sub : num_sub + 1] - 0.00001
    threshold = threshold + (threshold < 0.2).to(threshold.dtype) * 0.1
    hinted = (human_importance > threshold) & real
    return hinted.to(human_importance.dtype), order


def _influence_sums(
    ranked_sensitivity: Tensor, ranked_hinted: Tensor, ranked_real: Tensor, num_sub: int
) -> Tensor:
    """``[B, num_sub, N]`` the violation of each ranked pair ``(j, k)`` (before weighting)."""
    slots = ranked_sensitivity.shape[1]
    ranks_j = torch.arange(num_sub, device=ranked_sensitivity.device).unsqueeze(1)
    ranks_k = torch.arange(slots, device=ranked_sensitivity.device).unsqueeze(0)
    k_after_j = ranks_k > ranks_j  # [J, N]: the pair is (j, k); otherwise (k, j)
    s_j = ranked_sensitivity[:, :num_sub].unsqueeze(2)
    s_k = ranked_sensitivity.unsqueeze(1)
    h_j = ranked_hinted[:, :num_sub].unsqueeze(2)
    h_k = ranked_hinted.unsqueeze(1)
    s_first, s_second = torch.where(k_after_j, s_j, s_k), torch.where(k_after_j, s_k, s_j)
    h_first, h_second = torch.where(k_after_j, h_j, h_k), torch.where(k_after_j, h_k, h_j)
    gap = s_first - s_second - INFLUENCE_MARGIN
    violated = (h_first - h_second) * gap < 0
    pairs = (ranks_k != ranks_j) & ranked_real.unsqueeze(1) & ranked_real[:, :num_sub, None]
    return gap.abs() * (violated & pairs).to(gap.dtype)


def scr_losses(
    logits: Tensor,
    targets: Tensor,
    gt_importance: Tensor,
    bucket_importance: Tensor,
    human_importance: Tensor,
    bucket_answers: Tensor,
    *,
    answer_similarity: Tensor | None = None,
    num_sub: int = 5,
    influence_weight: float = 1.0,
    compare_weight: float = 1.0,
    regulariser_weight: float = 0.0,
    has_human_importance: Tensor | None = None,
    proposal_mask: Tensor | None = None,
    compare_proposal: str = "public_code",
) -> SCRLosses:
    """SCR's influence, self-critical and regulariser terms (``compute_scr_loss``).

    Args:
        logits: ``[B, A]`` answer logits.
        targets: ``[B, A]`` soft answer scores; ``argmax`` is the ground truth.
        gt_importance: ``[B, N]`` sensitivity of the ground truth: importance of the sum of the
            logits of the answers with a positive target.
        bucket_importance: ``[B, K, N]`` importance of each answer of ``bucket_answers``.
        human_importance: ``[B, N]`` human importance (the public ``hint_scores``).
        bucket_answers: ``[B, K]`` the compared answers, :func:`scr_bucket_answers` of
            ``logits`` in the public code.
        answer_similarity: ``[A, A]`` answer similarity (:func:`answer_cosine_similarity`);
            the answer weight is ``1 - similarity[gt, answer]``. None: no answer weight
            (erobic's default, ``apply_answer_weight`` off); SCR's own code always weights.
        num_sub: size of the human-important set (``--num_sub``, 5).
        influence_weight: ``--scr_hint_loss_weight`` (SCR: 20; erobic: 3). Applied before the
            public code's zero tests, so it is part of the core.
        compare_weight: ``--scr_compare_loss_weight`` (SCR: 1500; erobic: 1000).
        regulariser_weight: ``--reg_loss_weight`` (0 in both papers).
        has_human_importance: ``[B]`` bool or 0/1, the public ``hint_flags``; None: all.
        proposal_mask: ``[B, N]`` bool or 0/1, False for padded proposals: never
            human-important, in no pair, not in the regulariser. The public code has no padding.
        compare_proposal: ``"public_code"`` reads the proposal whose index is the chosen rank
            (what the public code computes); ``"chosen"`` reads the proposal of that rank.

    Returns:
        :class:`SCRLosses`; ``.public()`` gives the public code's three scalars.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, 1.0]])  # answer 0 beats the ground truth, 2
        >>> targets = torch.tensor([[0.0, 0.0, 1.0]])
        >>> human = torch.tensor([[0.9, 0.0, 0.1]])  # num_sub=1: proposal 0 is hinted
        >>> gt = torch.tensor([[0.0, 1.0, 0.0]])  # but proposal 1 is more sensitive
        >>> answers = scr_bucket_answers(logits, bucket=2)  # answers 0 and 2
        >>> bucket = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        >>> terms = scr_losses(logits, targets, gt, bucket, human, answers, num_sub=1)
        >>> [round(float(t), 4) for t in terms.public()]  # (1 + 1e-4) + 1e-4; 0.1497 * 0.5; 0
        [1.0002, 0.0749, 0.0]
    """
    bucket_answers = bucket_answers.long()
    _check_shapes(
        logits, targets, gt_importance, bucket_importance, human_importance, bucket_answers, num_sub
    )
    if compare_proposal not in ("public_code", "chosen"):
        raise ValueError(
            f"unknown compare_proposal {compare_proposal!r}: use 'public_code' or 'chosen'"
        )
    batch, slots = gt_importance.shape
    real = as_proposal_mask(proposal_mask, (batch, slots))
    if real is None:
        real = torch.ones(batch, slots, dtype=torch.bool, device=gt_importance.device)
    flags = as_proposal_mask(has_human_importance, (batch,), "has_human_importance")
    if flags is None:
        flags = torch.ones(batch, dtype=torch.bool, device=gt_importance.device)
    flag = flags.to(gt_importance.dtype)

    hinted, order = _binarised_human_importance(human_importance, real, num_sub)
    violations = _influence_sums(
        gt_importance.gather(1, order), hinted.gather(1, order), real.gather(1, order), num_sub
    )
    sums = (violations * influence_weight * flag[:, None, None]).sum(dim=2)  # [B, num_sub]
    any_violation = sums.sum(dim=1, keepdim=True) > INFLUENCE_EPS
    sums = sums + (any_violation & (sums < INFLUENCE_EPS)).to(sums.dtype) * _NO_VIOLATION_OFFSET
    influence, chosen_rank = sums.min(dim=1)

    gt_answer = targets.argmax(dim=1)
    prob_gt = torch.sigmoid(logits.gather(1, gt_answer.unsqueeze(1)))  # [B, 1]
    prob_diff = torch.sigmoid(logits.gather(1, bucket_answers)) - prob_gt  # [B, K]
    prob_gain = prob_diff * (prob_diff > 0).to(prob_diff.dtype)
    if answer_similarity is None:
        answer_weight = torch.ones_like(prob_diff)
    else:
        answers = logits.shape[1]
        if tuple(answer_similarity.shape) != (answers, answers):
            raise ValueError(
                f"answer_similarity must be [A, A] = {(answers, answers)}, got "
                f"{tuple(answer_similarity.shape)}"
            )
        similarity = answer_similarity.to(prob_diff.device, prob_diff.dtype)
        answer_weight = 1 - similarity[gt_answer.unsqueeze(1), bucket_answers]
    if compare_proposal == "public_code":
        proposal = chosen_rank
    else:
        proposal = order.gather(1, chosen_rank.unsqueeze(1)).squeeze(1)
    index = proposal.view(batch, 1, 1).expand(batch, bucket_answers.shape[1], 1)
    bucket_at = bucket_importance.gather(2, index).squeeze(2)  # [B, K]
    gap = bucket_at - gt_importance.gather(1, proposal.unsqueeze(1))  # [B, K]
    hinted_at = hinted.gather(1, proposal.unsqueeze(1))  # [B, 1]
    compare = prob_gain * gap * answer_weight * hinted_at * compare_weight * flag.unsqueeze(1)

    not_hinted = ((1 - hinted) * real.to(hinted.dtype)).unsqueeze(1)
    spread = (bucket_importance * answer_weight.unsqueeze(2) * not_hinted).abs().sum(dim=2)
    regulariser = spread * flag.unsqueeze(1) * regulariser_weight
    return SCRLosses(
        influence=influence,
        influence_counted=influence > INFLUENCE_EPS,
        compare=compare,
        compare_counted=prob_diff > 0,
        regulariser=regulariser,
        has_human=flags,
        bucket_answers=bucket_answers,
        chosen_rank=chosen_rank,
        compare_proposal=proposal,
    )
