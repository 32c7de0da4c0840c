"""Gradient importance: d score / d P summed over features, by the plain and the shift path."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Saliency
from torch.autograd import gradcheck, gradgradcheck

from hint_lightning.importance import DecisionFunction, Gradient
from hint_lightning.models.updn_vqa import UpDnVQA
from hint_lightning.objectives.importance import network_importance, network_importance_from_shift


def test_linear_scores_give_weight_times_feature_sum() -> None:
    # score_b = sum_r w_r <P_br, u>  =>  d score / d P_bri = w_r u_i  =>  alpha_br = w_r sum(u)
    w = torch.tensor([1.0, -2.0, 0.5])
    u = torch.tensor([0.1, 0.2, 0.3, 0.4])
    importance = Gradient().attribute(lambda p, m: (w * (p @ u)).sum(1), torch.randn(2, 3, 4))
    torch.testing.assert_close(importance, (w * u.sum()).expand(2, 3))


def test_equals_captum_saliency_summed_over_features(tiny, proposals_of, ragged_mask) -> None:
    model, proposals = tiny(), proposals_of()
    ours = Gradient().attribute(model.score, proposals, ragged_mask)
    captum = Saliency(model.score).attribute(
        proposals.clone().requires_grad_(True), abs=False, additional_forward_args=(ragged_mask,)
    )
    torch.testing.assert_close(ours, captum.sum(dim=-1))


def test_padded_proposals_score_zero(tiny, proposals_of, ragged_mask) -> None:
    importance = Gradient().attribute(tiny().decision_function(), proposals_of(), ragged_mask)
    assert (importance[~ragged_mask] == 0).all()
    assert (importance[ragged_mask] != 0).all()


def test_shift_path_equals_plain_path_in_value_and_second_order(
    tiny, proposals_of, ragged_mask
) -> None:
    model, proposals = tiny(), proposals_of()
    model.weight.requires_grad_(True)
    results = {}
    for use_shift in (True, False):
        importance = Gradient(use_shift=use_shift).attribute(
            model.decision_function(), proposals, ragged_mask, create_graph=True
        )
        (weight_grad,) = torch.autograd.grad(importance.pow(2).sum(), model.weight)
        results[use_shift] = importance, weight_grad
    torch.testing.assert_close(results[True][0], results[False][0])
    torch.testing.assert_close(results[True][1], results[False][1])


def test_takes_the_shift_path_when_offered(tiny, proposals_of) -> None:
    model, calls = tiny(), []

    def with_shift(proposals, mask, shift):
        calls.append("shift")
        return model.score_with_shift(proposals, mask, shift)

    def plain(proposals, mask):
        calls.append("plain")
        return model.score(proposals, mask)

    Gradient().attribute(DecisionFunction(plain, with_shift=with_shift), proposals_of())
    Gradient(use_shift=False).attribute(
        DecisionFunction(plain, with_shift=with_shift), proposals_of()
    )
    assert calls == ["shift", "plain"]


@pytest.mark.parametrize("use_shift", [True, False])
def test_second_order_gradients_pass_gradcheck(tiny, proposals_of, use_shift) -> None:
    model, mask = (
        tiny(batch=2, dim=3, hidden=2),
        torch.tensor([[True, True, True], [True, False, True]]),
    )

    def importance(proposals, weight):
        model.weight = weight
        method = Gradient(use_shift=use_shift)
        return method.attribute(model.decision_function(), proposals, mask, create_graph=True)

    proposals = proposals_of(batch=2, slots=3, dim=3).requires_grad_(True)
    inputs = (proposals, model.weight.clone().requires_grad_(True))
    assert gradcheck(importance, inputs)
    assert gradgradcheck(importance, inputs)


def _updn() -> UpDnVQA:
    torch.manual_seed(0)
    return (
        UpDnVQA(
            vocab_size=10,
            num_answers=4,
            feature_dim=6,
            embedding_dim=5,
            hidden_dim=8,
            classifier_dim=8,
        )
        .double()
        .eval()
    )


def test_equals_network_importance_on_updn_by_both_paths() -> None:
    net = _updn()
    features = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    boxes, tokens = torch.rand(3, 5, 4, dtype=torch.float64), torch.tensor([[1, 2], [3, 0], [4, 5]])
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    reference = network_importance(net(features, boxes, tokens, mask).logits[:, 2], features)
    shift = torch.zeros(3, 5, dtype=torch.float64, requires_grad=True)
    logits = net(features, boxes, tokens, mask, proposal_shift=shift).logits
    reference_shift = network_importance_from_shift(logits[:, 2], shift)

    decision = DecisionFunction(
        lambda p, m: net(p, boxes, tokens, m).logits[:, 2],
        with_shift=lambda p, m, t: net(p, boxes, tokens, m, proposal_shift=t).logits[:, 2],
    )
    for use_shift in (True, False):
        ours = Gradient(use_shift=use_shift).attribute(
            decision, features.detach(), mask, create_graph=True
        )
        torch.testing.assert_close(ours, reference)
        torch.testing.assert_close(ours, reference_shift)


def test_from_scores_reuses_a_forward_pass(tiny, proposals_of, ragged_mask) -> None:
    model = tiny()
    proposals = proposals_of().requires_grad_(True)
    expected = Gradient().attribute(model.decision_function(), proposals, ragged_mask)
    plain = Gradient.from_scores(model.score(proposals, ragged_mask), proposals, ragged_mask)
    shift = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    scores = model.score_with_shift(proposals, ragged_mask, shift)
    torch.testing.assert_close(plain, expected)
    torch.testing.assert_close(Gradient.from_scores(scores, shift, ragged_mask), expected)


def test_create_graph_decides_whether_the_result_is_differentiable(tiny, proposals_of) -> None:
    model = tiny()
    model.weight.requires_grad_(True)
    assert Gradient().attribute(model.decision_function(), proposals_of()).grad_fn is None
    trained = Gradient().attribute(model.decision_function(), proposals_of(), create_graph=True)
    assert trained.requires_grad


def test_works_under_no_grad_and_refuses_inference_mode(tiny, proposals_of) -> None:
    model = tiny()
    expected = Gradient().attribute(model.score, proposals_of())
    with torch.no_grad():
        torch.testing.assert_close(Gradient().attribute(model.score, proposals_of()), expected)
    with torch.inference_mode(), pytest.raises(ValueError, match="inference_mode=False"):
        Gradient().attribute(model.score, proposals_of())


def test_a_model_that_ignores_the_proposals_gives_zeros() -> None:
    importance = Gradient().attribute(lambda p, m: torch.ones(p.shape[0]), torch.randn(2, 3, 4))
    torch.testing.assert_close(importance, torch.zeros(2, 3))


def test_rejects_a_forward_function_that_returns_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"Gradient\(use_shift=True\).*shape \(2,\)"):
        Gradient().attribute(lambda p, m: p.sum(-1), torch.randn(2, 3, 4))
