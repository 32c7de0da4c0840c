"""Each objective class over a context equals its functional core, with the weight and the mean
over rows written out by hand; masks given as 0/1 numbers work everywhere."""

from __future__ import annotations

import pytest
import torch

from hint_lightning.objectives.attn_align import AttnAlignObjective, attention_alignment_loss
from hint_lightning.objectives.base import GroundingInputs, GroundingObjective
from hint_lightning.objectives.combination import ObjectiveSet
from hint_lightning.objectives.context import GROUND_TRUTH, DecisionTargets, GroundingContext
from hint_lightning.objectives.hint import HintObjective, hint_ranking_loss
from hint_lightning.objectives.rrr import RRRObjective, rrr_penalty


def context(
    alpha: torch.Tensor, human: torch.Tensor, mask: torch.Tensor, attention: torch.Tensor
) -> GroundingContext:
    """A context whose ground-truth importance is ``alpha`` (cached, as a method gives it)."""
    rows = human.shape[0]
    ctx = GroundingContext(
        proposals=torch.zeros(rows, human.shape[1], 1),
        proposal_mask=mask,
        human_importance=human,
        has_importance=torch.ones(rows, dtype=torch.bool),
        decisions=DecisionTargets(torch.zeros(rows), lambda logits, targets: logits[:, 0]),
        attention=attention,
    )
    ctx._cache[(GROUND_TRUTH, id(None))] = alpha
    return ctx


@pytest.fixture
def inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    human = torch.rand(4, 6, generator=generator)
    human[1, :3] = 0.0  # a row with zero importance on some proposals
    return {
        "alpha": torch.randn(4, 6, generator=generator),
        "human": human,
        "mask": torch.rand(4, 6, generator=generator) > 0.2,
        "attention": torch.softmax(torch.randn(4, 6, generator=generator), dim=1),
    }


def test_hint_objective_is_the_weighted_mean_ranking_loss(inputs: dict) -> None:
    ctx = context(inputs["alpha"], inputs["human"], inputs["mask"], inputs["attention"])
    expected = 1.5 * hint_ranking_loss(inputs["alpha"], inputs["human"], inputs["mask"]).mean()
    torch.testing.assert_close(HintObjective(1.5)(ctx), expected)


def test_rrr_objective_is_the_weighted_mean_penalty(inputs: dict) -> None:
    ctx = context(inputs["alpha"], inputs["human"], inputs["mask"], inputs["attention"])
    penalty = rrr_penalty(inputs["alpha"], inputs["human"], inputs["mask"], threshold=0.3)
    torch.testing.assert_close(RRRObjective(2.0, threshold=0.3)(ctx), 2.0 * penalty.mean())


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_attention_alignment_objective_is_the_weighted_mean_loss(inputs: dict, kind: str) -> None:
    ctx = context(inputs["alpha"], inputs["human"], inputs["mask"], inputs["attention"])
    losses = attention_alignment_loss(inputs["attention"], inputs["human"], inputs["mask"], kind)
    torch.testing.assert_close(AttnAlignObjective(0.5, kind=kind)(ctx), 0.5 * losses.mean())


@pytest.mark.parametrize("objective", [HintObjective(1.0), RRRObjective(1.0)])
def test_the_older_grounding_inputs_give_the_same_term(
    inputs: dict, objective: GroundingObjective
) -> None:
    ctx = context(inputs["alpha"], inputs["human"], inputs["mask"], inputs["attention"])
    old = GroundingInputs(inputs["human"], inputs["mask"], inputs["attention"], inputs["alpha"])
    torch.testing.assert_close(objective(old), objective(ctx))


def test_objectives_declare_what_they_need() -> None:
    assert HintObjective().requires == {"human_importance", "importance"}
    assert RRRObjective().needs_network_importance
    assert AttnAlignObjective().requires == {"human_importance", "attention"}
    pair = ObjectiveSet({"hint": HintObjective(), "attn": AttnAlignObjective()})
    assert pair.requires == {"human_importance", "importance", "attention"}
    assert ObjectiveSet({"hint": HintObjective(0.0)}).requires == frozenset()


def test_two_objectives_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two grounding objectives are named 'hint'"):
        ObjectiveSet.build(HintObjective(), {"hint": HintObjective()})


def float_mask(mask: torch.Tensor) -> torch.Tensor:
    return mask.to(torch.float32)


def test_functional_cores_accept_zero_one_masks(inputs: dict) -> None:
    """Issue 11, defect 2: a 0/1 float mask is the same as the bool mask."""
    alpha, human, mask, attention = (inputs[k] for k in ("alpha", "human", "mask", "attention"))
    torch.testing.assert_close(
        hint_ranking_loss(alpha, human, float_mask(mask)), hint_ranking_loss(alpha, human, mask)
    )
    torch.testing.assert_close(
        rrr_penalty(alpha, human, float_mask(mask), 0.3), rrr_penalty(alpha, human, mask, 0.3)
    )
    torch.testing.assert_close(
        attention_alignment_loss(attention, human, mask.long()),
        attention_alignment_loss(attention, human, mask),
    )
    old = GroundingInputs(human, float_mask(mask), attention, alpha)
    torch.testing.assert_close(HintObjective()(old), HintObjective()(context(alpha, human, mask, attention)))


def test_a_mask_with_other_numbers_is_one_clear_error(inputs: dict) -> None:
    bad = inputs["mask"].float() * 0.5
    with pytest.raises(ValueError, match="proposal_mask must be bool or hold only 0 and 1"):
        hint_ranking_loss(inputs["alpha"], inputs["human"], bad)
