"""SCR (Wu & Mooney 2019): the functional core against a literal re-statement of the public code."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity
from torch import Tensor

from hint_lightning.objectives.importance import network_importance
from hint_lightning.objectives.scr import (
    answer_cosine_similarity,
    scr_bucket_answers,
    scr_losses,
)


def reference_compute_scr_loss(
    opt: SimpleNamespace,
    vqa_grad_cam: Tensor,
    grad_pred_cam: Callable[[int], Tensor],
    answers: Tensor,
    ans_idxs: Tensor,
    logits: Tensor,
    hint_flags: Tensor,
    hint_scores: Tensor,
    ans_cossim: np.ndarray,
) -> tuple[Tensor, Tensor, Tensor]:
    """REFERENCE, test only: ``compute_scr_loss`` re-stated line by line.

    Source: erobic/negative_analysis_of_grounding ``train.py`` lines 59-144 (itself copied from
    jialinwu17/self_critical_vqa ``train.py`` lines 113-174; zfying/visfis
    ``components/losses.py`` lines 48-175 is the same with ``opt.num_objects`` for 36). Changes:
    no device moves; the proposal count is ``vqa_grad_cam.shape[1]`` instead of 36; a stable sort
    (ties in human importance break the same way in both); the dtype follows ``logits``; the two
    ``torch.autograd.grad(...).sum(2)`` (lines 65-67, 114-116) are the inputs ``vqa_grad_cam``
    and ``grad_pred_cam(j)``, so that the arithmetic after them can be fed any sensitivities.
    """
    eps = 0.0000001
    sigmoid = torch.nn.Sigmoid()
    num_objs = vqa_grad_cam.shape[1]
    bucket = opt.bucket
    aidx = answers.argmax(1).detach().cpu().numpy().reshape(-1)

    loss_hint = torch.zeros((vqa_grad_cam.size(0), opt.num_sub, num_objs), dtype=logits.dtype)
    hint_scores = hint_scores.squeeze()
    hint_sort, hint_ind = hint_scores.sort(dim=1, descending=True, stable=True)
    thresh = hint_sort[:, opt.num_sub : opt.num_sub + 1] - 0.00001
    thresh += (thresh < 0.2).float() * 0.1
    hint_scores = (hint_scores > thresh).to(logits.dtype)

    for j in range(opt.num_sub):
        for k in range(num_objs):
            if j == k:
                continue
            hint1 = hint_scores.gather(1, hint_ind[:, j : j + 1]).squeeze()
            hint2 = hint_scores.gather(1, hint_ind[:, k : k + 1]).squeeze()
            vqa1 = vqa_grad_cam.gather(1, hint_ind[:, j : j + 1]).squeeze()
            vqa2 = vqa_grad_cam.gather(1, hint_ind[:, k : k + 1]).squeeze()
            if j < k:
                mask = ((hint1 - hint2) * (vqa1 - vqa2 - 0.0001) < 0).to(logits.dtype)
                loss_hint[:, j, k] = torch.abs(vqa1 - vqa2 - 0.0001) * mask
            else:
                mask = ((hint2 - hint1) * (vqa2 - vqa1 - 0.0001) < 0).to(logits.dtype)
                loss_hint[:, j, k] = torch.abs(vqa2 - vqa1 - 0.0001) * mask

    hint_flag1 = hint_flags.unsqueeze(1).unsqueeze(2).repeat(1, opt.num_sub, num_objs)
    loss_hint = loss_hint * opt.scr_hint_loss_weight
    loss_hint = loss_hint * hint_flag1.to(logits.dtype)
    loss_hint = loss_hint.sum(2)
    loss_hint = loss_hint + (
        ((loss_hint.sum(1).unsqueeze(1) > eps).to(logits.dtype) * (loss_hint < eps)) * 10000
    )
    loss_hint, loss_hint_ind = loss_hint.min(1)
    loss_hint_mask = (loss_hint > eps).to(logits.dtype)
    loss_hint = (loss_hint * loss_hint_mask).sum() / (loss_hint_mask.sum() + eps)
    gt_logits = logits.gather(1, answers.argmax(1).view((-1, 1)))
    prob = sigmoid(gt_logits).view(-1)

    loss_compare = torch.zeros((logits.size(0), bucket), dtype=logits.dtype)
    loss_reg = torch.zeros((logits.size(0), bucket), dtype=logits.dtype)
    comp_mask = torch.zeros((logits.size(0), bucket), dtype=logits.dtype)
    for j in range(bucket):
        logits_pred = logits.gather(1, ans_idxs[:, j : j + 1])
        prob_pred = sigmoid(logits_pred).squeeze()
        vqa_grad_pred_cam = grad_pred_cam(j)
        gradcam_diff = vqa_grad_pred_cam - vqa_grad_cam
        pred_aidx = ans_idxs[:, j].detach().cpu().numpy().reshape(-1)
        if opt.apply_answer_weight:
            ans_diff = torch.from_numpy(1 - ans_cossim[aidx, pred_aidx].reshape(-1))
            ans_diff = ans_diff.to(logits.dtype)
        prob_diff = prob_pred - prob
        prob_diff_relu = prob_diff * (prob_diff > 0).to(logits.dtype)
        if opt.apply_answer_weight:
            loss_comp1 = (
                prob_diff_relu.unsqueeze(1) * gradcam_diff * ans_diff.unsqueeze(1) * hint_scores
            )
        else:
            loss_comp1 = prob_diff_relu.unsqueeze(1) * gradcam_diff * hint_scores
        loss_comp1 = loss_comp1.gather(1, loss_hint_ind.view(-1, 1)).squeeze()
        loss_comp1 = loss_comp1 * opt.scr_compare_loss_weight
        loss_compare[:, j] = loss_comp1
        comp_mask[:, j] = (prob_diff > 0).to(logits.dtype).squeeze()
        if opt.apply_answer_weight:
            loss_reg[:, j] = (
                torch.abs(vqa_grad_pred_cam * ans_diff.unsqueeze(1) * (1 - hint_scores))
            ).sum(1)
        else:
            loss_reg[:, j] = (torch.abs(vqa_grad_pred_cam * (1 - hint_scores))).sum(1)

    hint_flag2 = hint_flags.unsqueeze(1).repeat(1, bucket).to(logits.dtype)
    loss_compare = loss_compare * hint_flag2
    loss_reg = loss_reg * hint_flag2
    loss_reg = loss_reg.mean() * opt.reg_loss_weight
    loss_compare = (loss_compare * comp_mask).sum() / (comp_mask.sum() + 0.0001)
    return loss_hint, loss_compare, loss_reg


def _options(apply_answer_weight: bool = True, **overrides: float) -> SimpleNamespace:
    options = {
        "bucket": 4,
        "num_sub": 5,
        "scr_hint_loss_weight": 3.0,
        "scr_compare_loss_weight": 1000.0,
        "reg_loss_weight": 0.5,
        "apply_answer_weight": apply_answer_weight,
    }
    options.update(overrides)
    return SimpleNamespace(**options)


def _random_batch(seed: int, batch: int = 16, slots: int = 12, answers: int = 20) -> dict:
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    targets = torch.zeros(batch, answers, dtype=torch.float64)
    for b in range(batch):
        chosen = torch.randperm(answers, generator=generator)[:3]
        targets[b, chosen] = torch.tensor([1.0, 0.6, 0.3], dtype=torch.float64)
    embeddings = draw(answers, 6)
    embeddings[3] = 0  # an answer without a GloVe vector
    return {
        "logits": draw(batch, answers),
        "targets": targets,
        "gt": draw(batch, slots),
        "bucket": draw(batch, 4, slots),
        "human": torch.rand(batch, slots, generator=generator, dtype=torch.float64),
        "flags": torch.rand(batch, generator=generator) > 0.25,
        "similarity": torch.from_numpy(cosine_similarity(embeddings.numpy())),
    }


def _ours(data: dict, options: SimpleNamespace, **kwargs: object) -> tuple[Tensor, ...]:
    answers = scr_bucket_answers(data["logits"], options.bucket)
    terms = scr_losses(
        data["logits"],
        data["targets"],
        data["gt"],
        data["bucket"],
        data["human"],
        answers,
        answer_similarity=data["similarity"] if options.apply_answer_weight else None,
        num_sub=options.num_sub,
        influence_weight=options.scr_hint_loss_weight,
        compare_weight=options.scr_compare_loss_weight,
        regulariser_weight=options.reg_loss_weight,
        has_human_importance=data["flags"],
        **kwargs,
    )
    return terms.public()


def _reference(data: dict, options: SimpleNamespace) -> tuple[Tensor, ...]:
    answers = scr_bucket_answers(data["logits"], options.bucket)
    return reference_compute_scr_loss(
        options,
        data["gt"],
        lambda j: data["bucket"][:, j],
        data["targets"],
        answers,
        data["logits"],
        data["flags"],
        data["human"].unsqueeze(2),
        data["similarity"].numpy(),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("apply_answer_weight", [True, False])
@pytest.mark.parametrize("human_scale", [1.0, 0.25])  # 0.25: the threshold is often raised
def test_same_values_as_the_public_code(
    seed: int, apply_answer_weight: bool, human_scale: float
) -> None:
    data = _random_batch(seed)
    data["human"] = data["human"] * human_scale
    options = _options(apply_answer_weight)
    for ours, theirs in zip(_ours(data, options), _reference(data, options), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_same_gradients_as_the_public_code() -> None:
    data = _random_batch(3)
    for key in ("logits", "gt", "bucket"):
        data[key].requires_grad_(True)
    options = _options()
    ours = sum(_ours(data, options))
    theirs = sum(_reference(data, options))
    inputs = [data["logits"], data["gt"], data["bucket"]]
    for mine, reference in zip(
        torch.autograd.grad(ours, inputs), torch.autograd.grad(theirs, inputs), strict=True
    ):
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-12)


def test_hand_worked_influence_picks_the_smallest_positive_sum() -> None:
    # num_sub = 2: human ranks proposals 3 > 1 > 0 > 2 > 4. The threshold is the score of rank
    # num_sub minus 1e-5 (0.4 - 1e-5), so proposal 0 at rank 2 is hinted too: {3, 1, 0}.
    human = torch.tensor([[0.4, 0.8, 0.1, 0.9, 0.05]], dtype=torch.float64)
    gt = torch.tensor([[0.5, 0.45, 0.5, 1.0, 0.0]], dtype=torch.float64)
    # rank 0 (proposal 3, S=1.0) beats both unhinted ones (2, 4): no violation.
    # rank 1 (proposal 1, S=0.45) loses to unhinted proposal 2 (S=0.5): 0.5 + 1e-4 - 0.45.
    # Rank 0 sums to 0 and rank 1 to 0.0501: the zero is lifted by 10000, rank 1 is chosen.
    logits = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    targets = torch.tensor([[0.0, 1.0]], dtype=torch.float64)  # the ground truth is the top
    answers = scr_bucket_answers(logits, 1)
    terms = scr_losses(logits, targets, gt, gt.unsqueeze(1), human, answers, num_sub=2)
    assert terms.chosen_rank.tolist() == [1]
    torch.testing.assert_close(terms.influence, torch.tensor([0.0501], dtype=torch.float64))
    assert terms.compare_counted.tolist() == [[False]]  # no answer beats the ground truth
    influence, compare, regulariser = terms.public()
    assert influence.item() == pytest.approx(0.0501 / (1 + 1e-7))
    assert compare.item() == 0.0 and regulariser.item() == 0.0


def test_no_violation_costs_nothing_and_is_not_counted() -> None:
    human = torch.tensor([[0.9, 0.8, 0.1]])
    gt = torch.tensor([[2.0, 1.0, 0.0]])  # hinted proposals 0 and 1 lead by more than 1e-4
    logits, targets = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    terms = scr_losses(logits, targets, gt, gt.unsqueeze(1), human, torch.tensor([[0]]), num_sub=1)
    assert terms.influence.item() == 0.0 and not terms.influence_counted.item()
    assert torch.isnan(terms.sample_influence()).all()
    assert terms.public()[0].item() == 0.0


def test_compare_reads_the_rank_as_a_proposal_index_unless_asked_otherwise() -> None:
    # num_sub=1: only proposal 2 is hinted (rank 0). The public code reads proposal 0 (index =
    # rank 0), which is unhinted, so its self-critical term is 0; "chosen" reads proposal 2.
    human = torch.tensor([[0.0, 0.1, 0.9]])
    gt = torch.tensor([[0.0, 3.0, 1.0]])  # proposal 1 beats the hinted one: a violation
    logits = torch.tensor([[2.0, 1.0]])  # answer 0 (wrong) beats the ground truth, answer 1
    targets = torch.tensor([[0.0, 1.0]])
    wrong = torch.tensor([[[0.0, 0.0, 5.0]]])  # the wrong answer's importance
    answers = torch.tensor([[0]])
    public = scr_losses(logits, targets, gt, wrong, human, answers, num_sub=1)
    chosen = scr_losses(
        logits, targets, gt, wrong, human, answers, num_sub=1, compare_proposal="chosen"
    )
    assert public.compare_proposal.tolist() == [0] and chosen.compare_proposal.tolist() == [2]
    assert public.compare.item() == 0.0
    gain = torch.sigmoid(torch.tensor(2.0)) - torch.sigmoid(torch.tensor(1.0))
    torch.testing.assert_close(chosen.compare, (gain * (5.0 - 1.0)).view(1, 1))


def test_answer_weight_silences_synonyms() -> None:
    human = torch.tensor([[0.0, 0.1, 0.9]])
    gt = torch.tensor([[0.0, 3.0, 1.0]])
    logits, targets = torch.tensor([[2.0, 1.0]]), torch.tensor([[0.0, 1.0]])
    wrong = torch.tensor([[[9.0, 0.0, 5.0]]])
    same = torch.ones(2, 2)  # the wrong answer means the same as the ground truth
    kwargs = {"num_sub": 1, "regulariser_weight": 1.0, "answer_similarity": same}
    terms = scr_losses(logits, targets, gt, wrong, human, torch.tensor([[0]]), **kwargs)
    assert terms.compare.item() == 0.0 and terms.regulariser.item() == 0.0
    del kwargs["answer_similarity"]
    terms = scr_losses(logits, targets, gt, wrong, human, torch.tensor([[0]]), **kwargs)
    assert terms.regulariser.item() == 9.0  # |9| on unhinted proposal 0, |0| on proposal 1


def test_threshold_is_raised_for_weak_human_importance() -> None:
    # h(rank num_sub) - 1e-5 = 0.15 - 1e-5 < 0.2, so the threshold becomes 0.25 - 1e-5:
    # only proposal 0 (0.3) is hinted although num_sub = 2.
    human = torch.tensor([[0.3, 0.2, 0.15, 0.0]])
    gt = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    logits, targets = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    terms = scr_losses(logits, targets, gt, gt.unsqueeze(1), human, torch.tensor([[0]]), num_sub=2)
    # Rank 0 (hinted, S=0) loses to proposals 1 (S=1) and 2, 3 (S=0) by 1 + 1e-4, 1e-4, 1e-4.
    # Rank 1 (proposal 1, unhinted) only pairs with the hinted rank 0: 1 + 1e-4 again.
    # Both sums are positive: the smaller one, rank 1's, is kept.
    assert terms.chosen_rank.tolist() == [1]
    torch.testing.assert_close(terms.influence, torch.tensor([1.0001]))


def test_padded_proposals_are_never_hinted_nor_paired() -> None:
    data = _random_batch(4, batch=3, slots=8)
    options = _options(
        False, reg_loss_weight=1.0, num_sub=3, scr_hint_loss_weight=1.0, scr_compare_loss_weight=1.0
    )
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[:, 6:] = False
    padded = scr_losses(
        data["logits"],
        data["targets"],
        data["gt"],
        data["bucket"],
        data["human"],
        scr_bucket_answers(data["logits"], 4),
        num_sub=3,
        regulariser_weight=1.0,
        proposal_mask=mask.int(),
    )
    trimmed = {**data, "gt": data["gt"][:, :6], "bucket": data["bucket"][:, :, :6]}
    trimmed["human"] = data["human"][:, :6]
    trimmed["flags"] = torch.ones(3, dtype=torch.bool)
    expected = _ours(trimmed, options)
    for ours, theirs in zip(padded.public(), expected, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_nan_marked_entries_average_to_the_public_value_when_every_sample_has_importance() -> None:
    data = _random_batch(5)
    data["flags"] = torch.ones(16, dtype=torch.bool)
    answers = scr_bucket_answers(data["logits"], 4)
    terms = scr_losses(
        data["logits"],
        data["targets"],
        data["gt"],
        data["bucket"],
        data["human"],
        answers,
        regulariser_weight=1.0,
    )
    influence, compare, regulariser = terms.public()
    torch.testing.assert_close(terms.sample_influence().nanmean(), influence, rtol=1e-6, atol=0)
    torch.testing.assert_close(terms.sample_compare().nanmean(), compare, rtol=1e-3, atol=0)
    torch.testing.assert_close(terms.sample_regulariser().mean(), regulariser)


def test_samples_without_human_importance_are_nan_per_sample() -> None:
    data = _random_batch(6, batch=4)
    flags = torch.tensor([1, 0, 1, 0])
    terms = scr_losses(
        data["logits"],
        data["targets"],
        data["gt"],
        data["bucket"],
        data["human"],
        scr_bucket_answers(data["logits"], 4),
        has_human_importance=flags,
    )
    assert torch.isnan(terms.sample_influence()[[1, 3]]).all()
    assert torch.isnan(terms.sample_compare()[[1, 3]]).all()
    assert torch.isnan(terms.sample_regulariser()[[1, 3]]).all()
    assert (terms.influence[[1, 3]] == 0).all()


def _tiny_vqa(objs: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """Logits ``[B, A]`` of a one-hidden-layer model over mean-pooled proposals."""
    return torch.tanh(objs @ first).mean(dim=1) @ second


def test_end_to_end_with_the_public_autograd_calls_and_create_graph() -> None:
    torch.manual_seed(0)
    batch, slots, dim, hidden, answers = 6, 8, 5, 7, 9
    first = torch.randn(dim, hidden, dtype=torch.float64, requires_grad=True)
    second = torch.randn(hidden, answers, dtype=torch.float64, requires_grad=True)
    objs = torch.randn(batch, slots, dim, dtype=torch.float64, requires_grad=True)
    targets = (torch.rand(batch, answers, dtype=torch.float64) > 0.7).double()
    targets[torch.arange(batch), torch.randint(0, answers, (batch,))] = 1.0
    human = torch.rand(batch, slots, dtype=torch.float64)
    flags = torch.ones(batch, dtype=torch.bool)
    similarity = torch.from_numpy(cosine_similarity(np.random.default_rng(0).normal(size=(9, 4))))
    options = _options(num_sub=3, reg_loss_weight=0.1)

    logits = _tiny_vqa(objs, first, second)
    ans_idxs = torch.argsort(logits, dim=1, descending=True)
    # what the public code computes, its own autograd calls included (train.py lines 65-67, 114)
    cam = torch.autograd.grad((logits * (targets > 0).double()).sum(), objs, create_graph=True)
    theirs = reference_compute_scr_loss(
        options,
        cam[0].sum(2),
        lambda j: torch.autograd.grad(
            logits.gather(1, ans_idxs[:, j : j + 1]).sum(), objs, create_graph=True
        )[0].sum(2),
        targets,
        ans_idxs,
        logits,
        flags,
        human.unsqueeze(2),
        similarity.numpy(),
    )
    their_grads = torch.autograd.grad(sum(theirs), [first, second])

    logits = _tiny_vqa(objs, first, second)
    bucket = scr_bucket_answers(logits, options.bucket)
    gt = network_importance((logits * (targets > 0)).sum(1), objs, create_graph=True)
    wrong = torch.stack(
        [network_importance(logits.gather(1, bucket[:, k : k + 1])[:, 0], objs) for k in range(4)],
        dim=1,
    )
    ours = scr_losses(
        logits,
        targets,
        gt,
        wrong,
        human,
        bucket,
        answer_similarity=similarity,
        num_sub=3,
        influence_weight=3.0,
        compare_weight=1000.0,
        regulariser_weight=0.1,
    ).public()
    our_grads = torch.autograd.grad(sum(ours), [first, second])
    for mine, reference in zip((*ours, *our_grads), (*theirs, *their_grads), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-10, atol=1e-12)
    assert any(bool(grad.abs().sum() > 0) for grad in our_grads)


def test_gradcheck_through_the_importance() -> None:
    data = _random_batch(7, batch=4, slots=6, answers=8)
    answers = scr_bucket_answers(data["logits"], 3)

    def total(gt: Tensor, bucket: Tensor) -> Tensor:
        terms = scr_losses(
            data["logits"],
            data["targets"],
            gt,
            bucket,
            data["human"],
            answers,
            num_sub=2,
            regulariser_weight=0.5,
        )
        return torch.stack(terms.public()).sum()

    gt = data["gt"].clone().requires_grad_(True)
    bucket = data["bucket"][:, :3].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(total, (gt, bucket))


def test_answer_cosine_similarity_matches_scikit_learn() -> None:
    embeddings = torch.randn(7, 5, dtype=torch.float64)
    embeddings[2] = 0
    expected = torch.from_numpy(cosine_similarity(embeddings.numpy()))
    torch.testing.assert_close(answer_cosine_similarity(embeddings), expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_sub": 6}, "num_sub must be in"),
        ({"bucket_importance": torch.zeros(2, 3, 6)}, "bucket_importance must be"),
        ({"compare_proposal": "best"}, "unknown compare_proposal"),
        ({"answer_similarity": torch.eye(4)}, "answer_similarity must be"),
        ({"proposal_mask": torch.full((2, 6), 2.0)}, "proposal_mask must be bool"),
        ({"has_human_importance": torch.ones(3)}, "has_human_importance must have shape"),
    ],
)
def test_bad_input_names_the_problem(change: dict, message: str) -> None:
    arguments = {
        "logits": torch.zeros(2, 5),
        "targets": torch.eye(2, 5),
        "gt_importance": torch.zeros(2, 6),
        "bucket_importance": torch.zeros(2, 2, 6),
        "human_importance": torch.rand(2, 6),
        "bucket_answers": torch.zeros(2, 2, dtype=torch.long),
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        scr_losses(**arguments)
