"""HintMixin: when the grounding term runs, on which samples, and what it adds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hint_lightning.modules import hint_mixin
from hint_lightning.modules.hint_mixin import HintMixin
from hint_lightning.objectives.attn_align import AttnAlignObjective
from hint_lightning.objectives.hint import HintObjective, hint_ranking_loss


class LinearScorer(HintMixin, nn.Module):
    """score_b = sum_r <P_br, w_r>: network importance alpha_br = sum(w_r), known by hand."""

    def __init__(self, objective: object | None) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.tensor([[1.0, 1.0], [3.0, 0.0], [0.0, -1.0]]))
        self.objective = objective

    def forward(self, proposals: torch.Tensor) -> torch.Tensor:
        return (proposals * self.weights).sum(dim=(1, 2))


def batch(has_importance: list[bool]) -> dict[str, torch.Tensor]:
    size = len(has_importance)
    return {
        "features": torch.randn(size, 3, 2),
        "human": torch.tensor([[0.2, 0.1, 0.9]]).expand(size, 3),
        "has": torch.tensor(has_importance),
        "mask": torch.ones(size, 3, dtype=torch.bool),
    }


def term_for(model: LinearScorer, data: dict[str, torch.Tensor]) -> hint_mixin.GroundingTerm:
    proposals = model.proposals_for_grounding(data["features"], data["has"])
    return model.grounding_term(
        decision_scores=model(proposals),
        proposals=proposals,
        attention=None,
        human_importance=data["human"],
        has_importance=data["has"],
        proposal_mask=data["mask"],
    )


def test_term_equals_weighted_ranking_loss_of_hand_computed_importance() -> None:
    model = LinearScorer(HintObjective(weight=2.0))
    term = term_for(model, batch([True, False, True]))
    alpha = torch.tensor([[2.0, 3.0, -1.0]])  # row sums of the weights
    expected = 2.0 * hint_ranking_loss(alpha, torch.tensor([[0.2, 0.1, 0.9]]))
    torch.testing.assert_close(term.loss, expected[0])
    assert term.hinted == 2
    assert term.logs["hinted_frac"] == pytest.approx(2 / 3)
    torch.testing.assert_close(term.network_importance, alpha.expand(2, 3))


def test_term_backpropagates_into_the_parameters() -> None:
    model = LinearScorer(HintObjective(weight=1.0))
    term_for(model, batch([True])).loss.backward()
    # humans rank 2 > 0 > 1; network: 1 (3) > 0 (2) > 2 (-1): every pair is misranked.
    # loss = (a1 - a0) + (a1 - a2) + (a0 - a2) = 2 a1 - 2 a2 with a_r = sum(w_r)
    expected = torch.tensor([[0.0, 0.0], [2.0, 2.0], [-2.0, -2.0]])
    torch.testing.assert_close(model.weights.grad, expected)


def test_batch_without_human_importance_skips_the_double_backward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("network importance must not be computed")

    monkeypatch.setattr(hint_mixin, "network_importance", forbidden)
    model = LinearScorer(HintObjective(weight=1.0))
    data = batch([False, False])
    proposals = model.proposals_for_grounding(data["features"], data["has"])
    assert proposals is data["features"] and not proposals.requires_grad
    term = term_for(model, data)
    assert term.loss.item() == 0.0 and term.hinted == 0


@pytest.mark.parametrize("objective", [None, HintObjective(weight=0.0)])
def test_no_objective_or_zero_weight_means_no_term(objective: HintObjective | None) -> None:
    model = LinearScorer(objective)
    data = batch([True])
    assert not model.proposals_for_grounding(data["features"], data["has"]).requires_grad
    assert term_for(model, data).loss.item() == 0.0


def test_attention_objective_does_not_take_network_importance() -> None:
    model = LinearScorer(AttnAlignObjective(weight=1.0))
    data = batch([True, True])
    proposals = model.proposals_for_grounding(data["features"], data["has"])
    assert not proposals.requires_grad
    term = model.grounding_term(
        decision_scores=model(proposals),
        proposals=proposals,
        attention=torch.full((2, 3), 1 / 3),
        human_importance=torch.ones(2, 3),
        has_importance=data["has"],
        proposal_mask=data["mask"],
    )
    assert term.network_importance is None
    assert term.loss.item() == pytest.approx(0.0, abs=1e-6)  # uniform attention = uniform human
