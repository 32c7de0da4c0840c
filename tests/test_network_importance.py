"""network_importance is the gradient of the decision score, summed over feature dimensions."""

from __future__ import annotations

import pytest
import torch

from hint_lightning.models.updn_vqa import UpDnVQA
from hint_lightning.objectives.importance import network_importance, network_importance_from_shift


def test_linear_scores_give_weight_times_feature_sum_of_direction() -> None:
    # score_b = sum_r w_r <P_br, u>  =>  d score / d P_bri = w_r u_i  =>  alpha_br = w_r sum(u)
    proposals = torch.randn(2, 3, 4, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 0.5])
    u = torch.tensor([0.1, 0.2, 0.3, 0.4])
    scores = (w * (proposals @ u)).sum(dim=1)
    alpha = network_importance(scores, proposals)
    expected = (w * u.sum()).expand(2, 3)
    torch.testing.assert_close(alpha, expected)


def test_quadratic_scores_depend_on_each_sample_own_features() -> None:
    # score_b = sum_r <P_br, u>^2  =>  alpha_br = 2 <P_br, u> sum(u), for every sample separately
    proposals = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    u = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)
    scores = ((proposals @ u) ** 2).sum(dim=1)
    alpha = network_importance(scores, proposals)
    expected = 2 * (proposals @ u) * u.sum()
    torch.testing.assert_close(alpha, expected.detach())


def test_importance_is_differentiable_with_create_graph() -> None:
    proposals = torch.randn(1, 2, 3, requires_grad=True)
    scale = torch.tensor(2.0, requires_grad=True)
    scores = (scale * proposals**2).sum(dim=(1, 2))
    alpha = network_importance(scores, proposals, create_graph=True)
    # alpha_r = sum_i 2 * scale * P_ri  =>  d alpha.sum() / d scale = 2 * P.sum()
    (grad_scale,) = torch.autograd.grad(alpha.sum(), scale)
    torch.testing.assert_close(grad_scale, 2 * proposals.detach().sum())


def test_batched_importance_equals_one_sample_at_a_time_on_updn() -> None:
    torch.manual_seed(0)
    model = UpDnVQA(
        vocab_size=10, num_answers=4, feature_dim=6, embedding_dim=5, hidden_dim=8, classifier_dim=8
    ).eval()
    features = torch.randn(3, 5, 6, requires_grad=True)
    boxes = torch.rand(3, 5, 4)
    tokens = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]])
    logits, _ = model(features, boxes, tokens)
    batched = network_importance(logits[:, 1], features, create_graph=False)
    for b in range(3):
        single = features[b : b + 1].detach().requires_grad_(True)
        logits_b, _ = model(single, boxes[b : b + 1], tokens[b : b + 1])
        alone = network_importance(logits_b[:, 1], single, create_graph=False)
        torch.testing.assert_close(batched[b : b + 1], alone)


def test_rejects_features_that_do_not_require_grad() -> None:
    with pytest.raises(ValueError, match="requires_grad_"):
        network_importance(torch.zeros(2), torch.zeros(2, 3, 4))


def test_rejects_wrong_shapes() -> None:
    proposals = torch.zeros(2, 3, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"decision_scores must be \[B\]"):
        network_importance(proposals.sum(dim=2), proposals)


def _updn(use_boxes: bool = False) -> UpDnVQA:
    torch.manual_seed(0)
    return (
        UpDnVQA(
            vocab_size=10,
            num_answers=4,
            feature_dim=6,
            embedding_dim=5,
            hidden_dim=8,
            classifier_dim=8,
            use_boxes=use_boxes,
        )
        .double()
        .eval()
    )


@pytest.mark.parametrize("use_boxes", [False, True])
def test_proposal_shift_equals_shifting_every_feature(use_boxes: bool) -> None:
    model = _updn(use_boxes)
    features = torch.randn(3, 5, 6, dtype=torch.float64)
    boxes, tokens = torch.rand(3, 5, 4, dtype=torch.float64), torch.tensor([[1, 2], [3, 0], [4, 5]])
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    shift = torch.randn(3, 5, dtype=torch.float64)
    shifted, _ = model(features + shift[..., None], boxes, tokens, mask)
    fast, _ = model(features, boxes, tokens, mask, proposal_shift=shift)
    torch.testing.assert_close(fast, shifted)


@pytest.mark.parametrize("use_boxes", [False, True])
def test_fast_importance_equals_the_reference_gradient_and_its_gradient(use_boxes: bool) -> None:
    model = _updn(use_boxes)
    features = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    boxes, tokens = torch.rand(3, 5, 4, dtype=torch.float64), torch.tensor([[1, 2], [3, 0], [4, 5]])
    logits, _ = model(features, boxes, tokens)
    reference = network_importance(logits[:, 2], features)
    (reference_grad,) = torch.autograd.grad(reference.pow(2).sum(), model.classifier[0].bias)

    shift = torch.zeros(3, 5, dtype=torch.float64, requires_grad=True)
    logits, _ = model(features.detach(), boxes, tokens, proposal_shift=shift)
    fast = network_importance_from_shift(logits[:, 2], shift)
    (fast_grad,) = torch.autograd.grad(fast.pow(2).sum(), model.classifier[0].bias)
    torch.testing.assert_close(fast, reference)
    torch.testing.assert_close(fast_grad, reference_grad)  # the second-order path agrees too
