"""The HINT ranking loss, its objective, attention alignment, and the whole term's gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.func import functional_call

from hint_lightning.models.updn_vqa import UpDnVQA
from hint_lightning.objectives.attn_align import AttnAlignObjective, attention_alignment_loss
from hint_lightning.objectives.base import GroundingInputs
from hint_lightning.objectives.hint import HintObjective, count_ordered_pairs, hint_ranking_loss
from hint_lightning.objectives.importance import network_importance


def brute_force_ranking_loss(alpha: list[float], human: list[float], mask: list[bool]) -> float:
    """The paper's definition, one pair at a time: |alpha_i - alpha_j| over misranked pairs."""
    total = 0.0
    for i, j in itertools.permutations(range(len(alpha)), 2):
        if mask[i] and mask[j] and human[i] > human[j] and alpha[j] > alpha[i]:
            total += abs(alpha[i] - alpha[j])
    return total


def test_hand_computed_example() -> None:
    alpha = torch.tensor([[0.1, 0.5, 0.2]])
    human = torch.tensor([[0.9, 0.1, 0.5]])
    # humans: 0 > 2 > 1; network: 1 > 2 > 0. Misranked: (0,1) 0.4, (0,2) 0.1, (2,1) 0.3.
    torch.testing.assert_close(hint_ranking_loss(alpha, human), torch.tensor([0.8]))


def test_agreeing_ranks_cost_nothing() -> None:
    human = torch.tensor([[0.1, 0.7, 0.3, 0.9]])
    alpha = 5 * human - 1  # same order, different scale
    assert hint_ranking_loss(alpha, human).item() == 0.0


def test_matches_brute_force_on_random_inputs_with_ties_and_masks() -> None:
    generator = torch.Generator().manual_seed(0)
    alpha = torch.randn(50, 7, generator=generator)
    human = torch.randint(0, 4, (50, 7), generator=generator).float() / 3  # many ties
    mask = torch.rand(50, 7, generator=generator) > 0.2
    losses = hint_ranking_loss(alpha, human, mask)
    for b in range(50):
        expected = brute_force_ranking_loss(alpha[b].tolist(), human[b].tolist(), mask[b].tolist())
        assert losses[b].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_ties_in_human_importance_form_no_pair() -> None:
    human = torch.tensor([[0.5, 0.5]])
    assert hint_ranking_loss(torch.tensor([[0.0, 1.0]]), human).item() == 0.0
    assert count_ordered_pairs(human).item() == 0


def test_masked_proposals_do_not_count() -> None:
    alpha = torch.tensor([[0.0, 1.0, 9.0]])
    human = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    # only pair (0, 1) remains: alpha_1 - alpha_0 = 1
    assert hint_ranking_loss(alpha, human, mask).item() == 1.0


def test_objective_is_weighted_mean_and_normalization_divides_by_pairs() -> None:
    alpha = torch.tensor([[0.1, 0.5, 0.2], [0.0, 0.0, 1.0]])
    human = torch.tensor([[0.9, 0.1, 0.5], [1.0, 0.0, 0.0]])
    inputs = GroundingInputs(human, torch.ones(2, 3, dtype=torch.bool), None, alpha)
    # per-sample losses: 0.8 and (0,2): 1.0 -> mean 0.9; pairs: 3 and 2
    torch.testing.assert_close(HintObjective(weight=2.0)(inputs), torch.tensor(1.8))
    normalized = HintObjective(weight=1.0, pair_mean=True)(inputs)
    torch.testing.assert_close(normalized, torch.tensor((0.8 / 3 + 1.0 / 2) / 2))


def test_attention_alignment_values() -> None:
    attention = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    human = torch.tensor([[2.0, 2.0], [1.0, 3.0]])
    torch.testing.assert_close(attention_alignment_loss(attention, human), torch.zeros(2))
    skewed = torch.tensor([[0.2, 0.8]])
    kl = 0.5 * torch.log(torch.tensor(0.5 / 0.2)) + 0.5 * torch.log(torch.tensor(0.5 / 0.8))
    torch.testing.assert_close(attention_alignment_loss(skewed, torch.ones(1, 2)), kl.view(1))
    mse = attention_alignment_loss(skewed, torch.ones(1, 2), kind="mse")
    torch.testing.assert_close(mse, torch.tensor([0.3**2 * 2]))


def test_attention_alignment_skips_samples_with_no_human_importance() -> None:
    attention = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    human = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    losses = attention_alignment_loss(attention, human)
    assert torch.isnan(losses[0]) and not torch.isnan(losses[1])
    inputs = GroundingInputs(human, torch.ones(2, 2, dtype=torch.bool), attention)
    torch.testing.assert_close(AttnAlignObjective(weight=1.0)(inputs), losses[1])


def test_random_importance_per_batch_replaces_human_importance() -> None:
    torch.manual_seed(0)
    alpha = torch.tensor([[1.0, 0.0]])
    inputs = GroundingInputs(
        torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool), None, alpha
    )
    assert HintObjective()(inputs).item() == 0.0  # humans agree with the network
    values = {HintObjective(random_importance_per_batch=True)(inputs).item() for _ in range(20)}
    assert values == {0.0, 1.0}  # random orders: sometimes agree, sometimes not


def test_gradcheck_of_the_whole_hint_term_in_double_precision() -> None:
    """d(HINT term)/d(parameters and features) by autograd equals finite differences."""
    torch.manual_seed(0)
    model = UpDnVQA(
        vocab_size=6,
        num_answers=3,
        feature_dim=4,
        embedding_dim=3,
        hidden_dim=5,
        classifier_dim=6,
        attention_dropout=0.0,
        classifier_dropout=0.0,
    ).double()
    tokens = torch.tensor([[1, 2, 3], [4, 5, 0]])
    boxes = torch.rand(2, 4, 4, dtype=torch.float64)
    human = torch.rand(2, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    names = ["classifier.3.parametrizations.weight.original1", "attention.score.bias"]
    params = dict(model.named_parameters())

    def hint_term(features: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        overrides = {**params, **dict(zip(names, tensors, strict=True))}
        logits, _ = functional_call(model, overrides, (features, boxes, tokens, mask))
        alpha = network_importance(logits[:, 0], features, create_graph=True)
        return hint_ranking_loss(alpha, human, mask).sum()

    features = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    inputs = (features, *[params[n].detach().clone().requires_grad_(True) for n in names])
    assert torch.autograd.gradcheck(hint_term, inputs, eps=1e-6, atol=1e-5)
