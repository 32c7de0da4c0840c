"""VisFIS (Ying, Hase & Bansal 2022): the functional cores against literal re-statements of
zfying/visfis ``components/feature_impt.py`` and ``components/losses.py``."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, kl_divergence

from hint_lightning.objectives.importance import network_importance
from hint_lightning.objectives.visfis import (
    PUBLISHED_THRESHOLDS,
    PUBLISHED_WEIGHTS,
    VisFISWeights,
    forward_keeping,
    important_proposals,
    output_invariance_from_logits,
    output_invariance_loss,
    sample_invariance_keep,
    sufficiency_from_logits,
    sufficiency_loss,
    uncertainty_from_logits,
    uncertainty_loss,
    visfis_losses,
    visfis_total,
)
from hint_lightning.objectives.visfis_fi import alignment_loss, fi_invariance_loss

# ---------------------------------------------------------------------------------------------
# REFERENCE (test only): zfying/visfis re-stated line by line. Changes everywhere: no device moves
# or DEVICE, dtypes follow the inputs, the model is `model(objs) -> logits` (no question), and
# F.kl_div's warning about reduction="mean" is silenced (the value is what VisFIS computes).
# ---------------------------------------------------------------------------------------------


def reference_apply_mask(inputs: Tensor, mask: Tensor) -> Tensor:
    """``apply_mask`` with ``--replace_func negative_ones``: feature_impt.py lines 54-69."""
    assert inputs.shape[0] == mask.shape[0] and inputs.shape[1] == mask.shape[1]
    assert inputs.dim() == mask.dim()
    new_inputs = inputs * mask
    mask_reverse = (mask == 0).to(inputs.dtype)
    all_neg_ones = -torch.ones(inputs.size(), dtype=inputs.dtype)
    replacement = all_neg_ones * mask_reverse
    return new_inputs + replacement


def reference_obj11(
    opt: SimpleNamespace, model: nn.Module, objs: Tensor, answers: Tensor, hint_scores: Tensor
) -> dict[str, Tensor]:
    """The grounding terms of VisFIS's best objective (``--OBJ11 --aug_type suff-uncertainty
    --use_zero_loss --use_direct_alignment --model_importance gradcam --FI_predicted_class
    false``), task loss left out.

    FI_forward: feature_impt.py lines 233-259 (three copies, one forward) and 275-291 (gradcam,
    sum). compute_loss: losses.py lines 390-440 (sufficiency, uncertainty; OBJ11 sets weight 1
    and "kl"), 450-466 with 222-231 (zero loss; OBJ11 sets "l1" and the weight), 468-484 with
    233-250 (direct alignment; OBJ11 sets "cossim" and the weight). ``hint_flags`` are all 1.
    """
    cur_batch_size = objs.size(0)
    hint_flags = torch.ones(cur_batch_size)
    # FI_forward, aug_type suff-uncertainty
    num_repeat = 3
    objs_new = objs.repeat(num_repeat, 1, 1)
    mask_1 = (hint_scores > opt.impt_threshold).to(objs.dtype)
    mask_2 = (hint_scores <= opt.impt_threshold).to(objs.dtype)
    batch_mask_1 = (mask_1.sum(dim=(1, 2)) > 0).to(objs.dtype)
    batch_mask_2 = (mask_2.sum(dim=(1, 2)) > 0).to(objs.dtype)
    batch_mask = torch.cat((batch_mask_1, batch_mask_2))
    objs_new[cur_batch_size : cur_batch_size * 2] = reference_apply_mask(objs, mask_1)
    objs_new[cur_batch_size * 2 : cur_batch_size * 3] = reference_apply_mask(objs, mask_2)
    logits = model(objs_new)
    vqa_grad = torch.autograd.grad(
        (logits[:cur_batch_size] * (answers > 0).to(objs.dtype)).sum(), objs, create_graph=True
    )[0]
    model_impt = vqa_grad.sum(2)

    # compute_loss, aug_type suff-uncertainty
    batch_mask_1 = batch_mask.split(cur_batch_size)[0].unsqueeze(-1)
    batch_mask_2 = batch_mask.split(cur_batch_size)[1].unsqueeze(-1)
    terms = {}
    kept_1 = logits[cur_batch_size : cur_batch_size * 2] * batch_mask_1
    if opt.vqa_loss_type == "softmax":
        terms["sufficiency"] = F.cross_entropy(kept_1, (answers * batch_mask_1).argmax(1))
    else:
        bce = F.binary_cross_entropy_with_logits(kept_1, answers * batch_mask_1)
        terms["sufficiency"] = bce * answers.size(1)
    output_prob = F.log_softmax(logits[cur_batch_size * 2 : cur_batch_size * 3], dim=1)
    uniform_output = torch.ones(answers.size(), dtype=objs.dtype)
    uniform_output = F.normalize(uniform_output, p=1)
    uniform_output = torch.log(uniform_output)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        terms["uncertainty"] = F.kl_div(
            output_prob * batch_mask_2, uniform_output * batch_mask_2, log_target=True
        )
    # zero loss (compute_zero_loss with normalize_FI True, align_loss_type l1)
    normalized = F.normalize(model_impt)
    mask = (hint_scores <= opt.impt_threshold).to(objs.dtype).squeeze()
    all_zeros = torch.zeros(model_impt.size(), dtype=objs.dtype)
    masked = normalized * mask * hint_flags.unsqueeze(-1).to(objs.dtype)
    terms["fi_invariance"] = nn.L1Loss()(masked, all_zeros).mean()
    # direct alignment, cossim
    terms["alignment"] = nn.CosineEmbeddingLoss()(
        model_impt, hint_scores.squeeze(), torch.ones(cur_batch_size, dtype=objs.dtype)
    )
    return terms


def reference_invariance(
    opt: SimpleNamespace,
    model: nn.Module,
    objs: Tensor,
    hint_scores: Tensor,
    mask_uniform_nonimpt: Tensor,
) -> Tensor:
    """``--aug_type invariance``: mask from feature_impt.py lines 180-193 with the random draw
    (lines 184-188) replaced by the given ``mask_uniform_nonimpt`` ``[B, N, 1]``; forward lines
    221-229; loss losses.py lines 298-327 (task loss left out, weight 1)."""
    cur_batch_size = objs.size(0)
    objs_new = objs.repeat(2, 1, 1)
    mask_impt = (hint_scores > opt.impt_threshold).to(objs.dtype)
    mask_nonimpt = (hint_scores <= opt.impt_threshold).to(objs.dtype)
    mask = torch.logical_or(mask_impt, mask_uniform_nonimpt)
    mask_ignore = (mask_nonimpt.sum(dim=(1, 2)) != mask_nonimpt.size(1)).to(objs.dtype)
    mask = mask * mask_ignore.unsqueeze(-1).unsqueeze(-1)
    batch_mask = (mask.sum(dim=(1, 2)) > 0).to(objs.dtype)
    objs_new[cur_batch_size : cur_batch_size * 2] = reference_apply_mask(objs, mask)
    logits = model(objs_new)
    if opt.align_loss_type == "kl":
        input_0 = F.log_softmax(logits[:cur_batch_size], dim=1)
        input_1 = F.log_softmax(logits[cur_batch_size : cur_batch_size * 2], dim=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return F.kl_div(
                input_0 * batch_mask.unsqueeze(-1),
                input_1 * batch_mask.unsqueeze(-1),
                log_target=True,
            )
    input_0 = logits[:cur_batch_size]
    input_1 = logits[cur_batch_size : cur_batch_size * 2]
    return nn.MSELoss()(input_0 * batch_mask.unsqueeze(-1), input_1 * batch_mask.unsqueeze(-1))


# ---------------------------------------------------------------------------------------------


class TinyVQA(nn.Module):
    """Logits ``[B, A]`` from a one-hidden-layer model over mean-pooled proposals."""

    def __init__(self, dim: int = 5, hidden: int = 7, answers: int = 9) -> None:
        super().__init__()
        self.first = nn.Linear(dim, hidden).double()
        self.second = nn.Linear(hidden, answers).double()

    def forward(self, objs: Tensor, mask: Tensor | None = None) -> Tensor:
        hidden = torch.tanh(self.first(objs))
        if mask is None:
            return self.second(hidden.mean(dim=1))
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return self.second((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1))


def _batch(seed: int, batch: int = 6, slots: int = 8, answers: int = 9) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    human = torch.rand(batch, slots, generator=generator, dtype=torch.float64)
    human[:, 0] = 0.9  # every sample has an important proposal
    human[:, 1] = 0.1  # and an unimportant one
    targets = torch.zeros(batch, answers, dtype=torch.float64)
    targets[torch.arange(batch), torch.randint(0, answers, (batch,), generator=generator)] = 1.0
    targets[:, 2] = torch.maximum(targets[:, 2], torch.full((batch,), 0.3, dtype=torch.float64))
    objs = torch.randn(batch, slots, 5, generator=generator, dtype=torch.float64)
    return {"human": human, "targets": targets, "objs": objs}


@pytest.mark.parametrize(("dataset", "weights"), [("hatcp", "updn_hat"), ("xaicp", "updn")])
def test_obj11_same_values_and_gradients_as_the_public_code(dataset: str, weights: str) -> None:
    torch.manual_seed(0)
    model = TinyVQA()
    data = _batch(0)
    threshold = PUBLISHED_THRESHOLDS[dataset]
    opt = SimpleNamespace(impt_threshold=threshold, vqa_loss_type="softmax")
    objs = data["objs"].clone().requires_grad_(True)
    theirs = reference_obj11(opt, model, objs, data["targets"], data["human"].unsqueeze(2))
    w = PUBLISHED_WEIGHTS[weights]
    their_total = sum(getattr(w, name) * value for name, value in theirs.items())
    their_grads = torch.autograd.grad(their_total, list(model.parameters()))

    objs = data["objs"].clone().requires_grad_(True)
    logits = model(objs)
    importance = network_importance((logits * (data["targets"] > 0)).sum(1), objs)
    ours = visfis_losses(model, objs, data["targets"], importance, data["human"], threshold)
    for name, value in theirs.items():
        torch.testing.assert_close(ours[name].mean(), value, rtol=1e-12, atol=1e-14)
    our_total = visfis_total(ours, w)
    torch.testing.assert_close(our_total, their_total, rtol=1e-12, atol=1e-14)
    our_grads = torch.autograd.grad(our_total, list(model.parameters()))
    for mine, reference in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-10, atol=1e-12)


def test_sigmoid_sufficiency_is_the_public_instance_bce() -> None:
    torch.manual_seed(1)
    model = TinyVQA()
    data = _batch(1)
    opt = SimpleNamespace(impt_threshold=0.55, vqa_loss_type="sigmoid")
    objs = data["objs"].clone().requires_grad_(True)
    theirs = reference_obj11(opt, model, objs, data["targets"], data["human"].unsqueeze(2))
    ours = sufficiency_loss(
        model, data["objs"], data["targets"], data["human"], 0.55, output="sigmoid"
    )
    torch.testing.assert_close(ours.mean(), theirs["sufficiency"], rtol=1e-12, atol=1e-14)


def test_masked_out_samples_are_nan_where_the_public_code_adds_a_constant() -> None:
    torch.manual_seed(2)
    model = TinyVQA()
    data = _batch(2)
    data["human"][[1, 4]] = 0.2  # two samples without important proposals
    opt = SimpleNamespace(impt_threshold=0.55, vqa_loss_type="softmax")
    objs = data["objs"].clone().requires_grad_(True)
    theirs = reference_obj11(opt, model, objs, data["targets"], data["human"].unsqueeze(2))
    ours = sufficiency_loss(model, data["objs"], data["targets"], data["human"], 0.55)
    assert torch.isnan(ours[[1, 4]]).all() and not torch.isnan(ours[[0, 2, 3, 5]]).any()
    # VisFIS zeroes those rows: cross-entropy of all-zero logits, log A each, over all B rows.
    expected = (ours.nansum() + 2 * math.log(9)) / 6
    torch.testing.assert_close(expected, theirs["sufficiency"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("distance", ["kl", "l2"])
def test_output_invariance_same_value_as_the_public_code(distance: str) -> None:
    torch.manual_seed(3)
    model = TinyVQA()
    data = _batch(3)
    data["human"][2] = 0.1  # a sample without important proposals: left out by both
    chosen = torch.rand(6, 8, 1, dtype=torch.float64) < 0.5
    opt = SimpleNamespace(impt_threshold=0.55, align_loss_type=distance)
    theirs = reference_invariance(opt, model, data["objs"], data["human"].unsqueeze(2), chosen)
    important = important_proposals(data["human"], 0.55)
    keep = important | chosen.squeeze(2)
    ours = output_invariance_loss(
        model, data["objs"], model(data["objs"]), data["human"], 0.55, distance=distance, keep=keep
    )
    assert torch.isnan(ours[2]) and not torch.isnan(ours[[0, 1, 3, 4, 5]]).any()
    torch.testing.assert_close(ours.nansum() / 6, theirs, rtol=1e-12, atol=1e-14)


def test_one_forward_per_family_copy_major() -> None:
    calls: list[tuple[int, ...]] = []
    model = TinyVQA()

    def forward_fn(proposals: Tensor, mask: Tensor) -> Tensor:
        calls.append(tuple(proposals.shape))
        return model(proposals, mask)

    data = _batch(4)
    importance = torch.randn(6, 8, dtype=torch.float64)
    visfis_losses(forward_fn, data["objs"], data["targets"], importance, data["human"], 0.55)
    assert calls == [(12, 8, 5)]
    logits = forward_keeping(
        forward_fn,
        data["objs"],
        torch.stack([torch.ones(6, 8, dtype=torch.bool), torch.eye(6, 8, dtype=torch.bool)]),
    )
    # copy 1 keeps proposal b of sample b: every other proposal of row b is -1
    single = data["objs"].clone()
    single[~torch.eye(6, 8, dtype=torch.bool)] = -1.0
    torch.testing.assert_close(logits[0], model(data["objs"]))
    torch.testing.assert_close(logits[1], model(single))


def test_drop_replacement_hides_proposals_through_the_mask() -> None:
    model = TinyVQA()
    data = _batch(5, batch=1)
    important = important_proposals(data["human"], 0.55)
    kept = forward_keeping(model, data["objs"], important, replacement="drop")[0]
    torch.testing.assert_close(kept, model(data["objs"][:, important[0]]))


def test_hand_worked_uncertainty_and_sufficiency() -> None:
    has = torch.tensor([True])
    # a uniform prediction is the target of uncertainty: 0
    assert uncertainty_from_logits(torch.full((1, 5), 3.0), has).item() == pytest.approx(0.0)
    # logits [log 2, 0]: p = [2/3, 1/3]; KL(u || p) = 0.5 log(0.5 / (2/3)) + 0.5 log(1.5) / 2
    expected = (0.5 * math.log(0.75) + 0.5 * math.log(1.5)) / 2
    value = uncertainty_from_logits(torch.tensor([[math.log(2.0), 0.0]]), has)
    assert value.item() == pytest.approx(expected)
    # sufficiency: cross-entropy with the argmax of the soft scores
    value = sufficiency_from_logits(
        torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.3, 1]]), has
    )
    assert value.item() == pytest.approx(math.log(4.0 / 3.0))


def test_sigmoid_variants_are_bernoulli_kl_divergences() -> None:
    logits = torch.randn(4, 6, dtype=torch.float64)
    perturbed = torch.randn(4, 6, dtype=torch.float64)
    has = torch.ones(4, dtype=torch.bool)
    half = Bernoulli(probs=torch.full_like(logits, 0.5))
    expected = kl_divergence(half, Bernoulli(logits=logits)).mean(dim=1)
    torch.testing.assert_close(uncertainty_from_logits(logits, has, "sigmoid"), expected)
    expected = kl_divergence(Bernoulli(logits=perturbed), Bernoulli(logits=logits)).mean(dim=1)
    ours = output_invariance_from_logits(logits, perturbed, has, "kl", "sigmoid")
    torch.testing.assert_close(ours, expected)


def test_fi_invariance_matches_the_public_zero_loss() -> None:
    importance = torch.randn(5, 7, dtype=torch.float64)
    human = torch.rand(5, 7, dtype=torch.float64)
    mask = (human <= 0.55).to(torch.float64)
    expected = nn.L1Loss()(F.normalize(importance) * mask, torch.zeros(5, 7, dtype=torch.float64))
    torch.testing.assert_close(fi_invariance_loss(importance, human, 0.55).mean(), expected)
    expected = nn.MSELoss()(importance * mask, torch.zeros(5, 7, dtype=torch.float64))
    ours = fi_invariance_loss(importance, human, 0.55, normalize=False, distance="l2")
    torch.testing.assert_close(ours.mean(), expected)


def test_alignment_matches_the_public_alignment_losses() -> None:
    importance = torch.randn(5, 7, dtype=torch.float64)
    human = torch.rand(5, 7, dtype=torch.float64)
    ones = torch.ones(5, dtype=torch.float64)
    cosine = nn.CosineEmbeddingLoss()(importance, human, ones)
    torch.testing.assert_close(alignment_loss(importance, human, "cosine").mean(), cosine)
    torch.testing.assert_close(
        alignment_loss(importance, human, "l1").mean(), nn.L1Loss()(importance, human)
    )
    torch.testing.assert_close(
        alignment_loss(importance, human, "l2").mean(), nn.MSELoss()(importance, human)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kl = F.kl_div(importance, human, log_target=True)
    torch.testing.assert_close(alignment_loss(importance, human, "kl").mean(), kl)


def test_alignment_hand_worked_and_padding() -> None:
    fi = torch.tensor([[1.0, 1.0, 50.0]])
    human = torch.tensor([[1.0, 0.0, 7.0]])
    mask = torch.tensor([[1, 1, 0]])
    # over the two real proposals: cos([1, 1], [1, 0]) = 1 / sqrt(2)
    value = alignment_loss(fi, human, "cosine", mask)
    assert value.item() == pytest.approx(1 - 1 / math.sqrt(2))
    assert alignment_loss(fi, human, "l1", mask).item() == pytest.approx(0.5)
    assert torch.isnan(alignment_loss(fi, torch.zeros(1, 3), "cosine")).all()
    # FI=0 over real proposals: normalized [1, 1] / sqrt(2); proposal 1 is unimportant
    value = fi_invariance_loss(fi, human, 0.5, mask)
    assert value.item() == pytest.approx((1 / math.sqrt(2)) / 2)


def test_sample_invariance_keep() -> None:
    generator = torch.Generator().manual_seed(0)
    important = torch.zeros(4000, 10, dtype=torch.bool)
    important[:, :2] = True
    mask = torch.ones(4000, 10, dtype=torch.bool)
    mask[:, -1] = False
    keep = sample_invariance_keep(important, mask, generator)
    assert keep[:, :2].all() and not keep[:, -1].any()
    share = keep[:, 2:9].double().mean()  # E[u / c] = 1/2 with u uniform in 0..c
    assert 0.47 < share.item() < 0.53
    kept_counts = keep[:, 2:9].sum(dim=1)
    assert set(kept_counts.tolist()) == set(range(8))  # from none to all of the 7
    everything_important = torch.ones(3, 4, dtype=torch.bool)
    assert sample_invariance_keep(everything_important).all()


def test_gradients_flow_through_the_importance_with_create_graph() -> None:
    torch.manual_seed(6)
    model = TinyVQA()
    data = _batch(6)
    objs = data["objs"].clone().requires_grad_(True)
    logits = model(objs)
    importance = network_importance((logits * (data["targets"] > 0)).sum(1), objs)
    fi_terms = (
        fi_invariance_loss(importance, data["human"], 0.55).mean()
        + alignment_loss(importance, data["human"]).mean()
    )
    # the output bias does not move the input gradient; every other parameter does
    weights = [model.first.weight, model.first.bias, model.second.weight]
    grads = torch.autograd.grad(fi_terms, weights)
    assert all(bool(grad.abs().sum() > 0) for grad in grads)

    def terms(fi: Tensor) -> Tensor:
        kinds = ("cosine", "l1", "l2", "kl")
        total = sum(alignment_loss(fi, data["human"], kind).sum() for kind in kinds)
        return total + fi_invariance_loss(fi, data["human"], 0.55).sum()

    assert torch.autograd.gradcheck(terms, (importance.detach().requires_grad_(True),))


def test_visfis_total_skips_terms_without_defined_samples() -> None:
    nan = torch.tensor([float("nan"), float("nan")])
    terms = {"sufficiency": nan, "uncertainty": torch.tensor([1.0, 3.0])}
    assert visfis_total(terms, VisFISWeights(uncertainty=0.5)).item() == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: alignment_loss(torch.zeros(1, 2), torch.zeros(1, 2), "dot"), "unknown alignment"),
        (lambda: alignment_loss(torch.zeros(1, 2), torch.zeros(1, 3)), "must both be"),
        (
            lambda: fi_invariance_loss(torch.zeros(1, 2), torch.zeros(1, 2), 0.5, None, True, "l3"),
            "unknown FI invariance",
        ),
        (
            lambda: uncertainty_from_logits(torch.zeros(1, 2), torch.tensor([True]), "tanh"),
            "unknown output",
        ),
        (
            lambda: output_invariance_from_logits(
                torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([True]), "l3"
            ),
            "unknown invariance distance",
        ),
        (lambda: important_proposals(torch.zeros(2), 0.5), "must be"),
        (
            lambda: uncertainty_loss(
                TinyVQA(), torch.zeros(1, 2, 5), torch.zeros(1, 2), 0.5, torch.tensor([[2, 1]])
            ),
            "proposal_mask must be bool",
        ),
    ],
)
def test_bad_input_names_the_problem(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
