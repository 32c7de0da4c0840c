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
    torch.testing.assert_close(
        HintObjective()(old), HintObjective()(context(alpha, human, mask, attention))
    )


def test_a_mask_with_other_numbers_is_one_clear_error(inputs: dict) -> None:
    bad = inputs["mask"].float() * 0.5
    with pytest.raises(ValueError, match="proposal_mask must be bool or hold only 0 and 1"):
        hint_ranking_loss(inputs["alpha"], inputs["human"], bad)


# --------------------------------------------------------------------------------------------
# SCR, VisFIS and energy on a real VQA module: the class's term equals the functional core fed
# by hand (importance of each decision by autograd on the [B, N, D] features).

import functools  # noqa: E402
import warnings  # noqa: E402

from hint_lightning.data.batch import VQADataInfo  # noqa: E402
from hint_lightning.importance.replacement import tile_batch  # noqa: E402
from hint_lightning.models.updn_vqa import UpDnVQA  # noqa: E402
from hint_lightning.modules.decision import positive_answers_logit_sum  # noqa: E402
from hint_lightning.modules.vqa_module import VQAModule, soft_target_bce  # noqa: E402
from hint_lightning.objectives.energy import EnergyObjective, energy_loss  # noqa: E402
from hint_lightning.objectives.importance import network_importance  # noqa: E402
from hint_lightning.objectives.scr import scr_bucket_answers, scr_losses  # noqa: E402
from hint_lightning.objectives.scr_objective import SCRObjective  # noqa: E402
from hint_lightning.objectives.visfis import PUBLISHED_WEIGHTS, visfis_losses, visfis_total  # noqa: E402
from hint_lightning.objectives.visfis_objective import VisFISObjective  # noqa: E402

INFO = VQADataInfo(tuple("abcdef"), ("<pad>", "<unk>", "x", "y", "z"), 5, 8, "toy")


def vqa_module(objective: GroundingObjective) -> VQAModule:
    torch.manual_seed(0)
    net = functools.partial(
        UpDnVQA,
        embedding_dim=4,
        hidden_dim=8,
        classifier_dim=8,
        attention_dropout=0.0,
        classifier_dropout=0.0,
    )
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return VQAModule(
        net, INFO, optimizer, objective=objective, decision_score="all_answers"
    ).double()


def vqa_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    targets = torch.zeros(4, 6, dtype=torch.float64)
    targets[0, 1], targets[1, 2], targets[1, 4], targets[2, 0], targets[3, 5] = 1, 0.6, 1, 0.3, 1
    return {
        "features": torch.randn(4, 8, 5, generator=generator, dtype=torch.float64),
        "boxes": torch.rand(4, 8, 4, generator=generator, dtype=torch.float64),
        "proposal_mask": torch.ones(4, 8, dtype=torch.bool),
        "question_tokens": torch.tensor([[2, 3], [4, 0], [2, 2], [3, 4]]),
        "targets": targets,
        "answer_scores": targets.clone(),
        "answer_type": torch.tensor([0, 1, 2, 2]),
        "human_importance": torch.rand(4, 8, generator=generator, dtype=torch.float64),
        "has_importance": torch.tensor([True, True, False, True]),
        "question_id": torch.arange(4),
    }


def module_term(objective: GroundingObjective) -> tuple[VQAModule, dict, torch.Tensor]:
    """The grounding term of ``objective`` in a training step (loss minus the task loss)."""
    module, batch = vqa_module(objective), vqa_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(batch, 0)
    logits, _ = module.net(
        batch["features"], batch["boxes"], batch["question_tokens"], batch["proposal_mask"]
    )
    return module, batch, loss - soft_target_bce(logits, batch["targets"])


def hinted_inputs(module: VQAModule, batch: dict) -> dict[str, torch.Tensor]:
    rows = batch["has_importance"].nonzero(as_tuple=True)[0]
    data = {key: value[rows] for key, value in batch.items()}
    data["features"] = data["features"].clone().requires_grad_(True)
    data["logits"], _ = module.net(
        data["features"], data["boxes"], data["question_tokens"], data["proposal_mask"]
    )
    return data


def test_scr_objective_is_the_functional_core() -> None:
    objective = SCRObjective(2.0, num_sub=3, bucket=2, influence_weight=3.0, compare_weight=50.0)
    module, batch, term = module_term(objective)
    data = hinted_inputs(module, batch)
    logits, features = data["logits"], data["features"]
    gt = network_importance(positive_answers_logit_sum(logits, data["targets"]), features)
    answers = scr_bucket_answers(logits.detach(), bucket=2)
    bucket = torch.stack(
        [
            network_importance(logits.gather(1, answers[:, k : k + 1])[:, 0], features)
            for k in (0, 1)
        ],
        dim=1,
    )
    terms = scr_losses(
        logits,
        data["targets"],
        gt,
        bucket,
        data["human_importance"],
        answers,
        num_sub=3,
        influence_weight=3.0,
        compare_weight=50.0,
    )
    expected = 2.0 * sum(terms.public())
    assert expected.item() > 0
    torch.testing.assert_close(term, expected)


def test_visfis_objective_is_the_functional_core() -> None:
    module, batch, term = module_term(VisFISObjective(1.5, threshold=0.5))
    data = hinted_inputs(module, batch)
    importance = network_importance(
        positive_answers_logit_sum(data["logits"], data["targets"]), data["features"]
    )

    def forward_fn(proposals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rows = proposals.shape[0]
        boxes, tokens = tile_batch(data["boxes"], rows), tile_batch(data["question_tokens"], rows)
        return module.net(proposals, boxes, tokens, mask)[0]

    losses = visfis_losses(
        forward_fn,
        data["features"].detach(),
        data["targets"],
        importance,
        data["human_importance"],
        0.5,
        data["proposal_mask"],
    )
    expected = 1.5 * visfis_total(losses, PUBLISHED_WEIGHTS["updn_hat"])
    torch.testing.assert_close(term, expected)


def test_energy_objective_is_the_functional_core() -> None:
    module, batch, term = module_term(EnergyObjective(0.5, threshold=0.4))
    data = hinted_inputs(module, batch)
    importance = network_importance(
        positive_answers_logit_sum(data["logits"], data["targets"]), data["features"]
    )
    expected = 0.5 * energy_loss(
        importance, data["human_importance"], 0.4, data["proposal_mask"], reduction="mean"
    )
    torch.testing.assert_close(term, expected)


def test_visfis_needs_only_what_its_weighted_terms_need() -> None:
    assert VisFISObjective().requires == {"human_importance", "importance", "forward"}
    fi_only = VisFISObjective(sufficiency=0.0, uncertainty=0.0)
    assert fi_only.requires == {"human_importance", "importance"}
    outputs_only = VisFISObjective(fi_invariance=0.0, alignment=0.0, replacement="drop")
    assert outputs_only.requires == {"human_importance", "forward", "mask"}
