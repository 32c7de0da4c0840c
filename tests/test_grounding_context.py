"""The grounding context and composed objectives on a real VQA module: two objectives are the
sum of each alone, importance is computed once per decision, a batch without human importance
is a plain step for every objective, decisions are what their names say."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pytest
import torch

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.importance import Gradient
from hint_lightning.models.updn_vqa import UpDnVQA
from hint_lightning.modules.vqa_module import VQAModule, soft_target_bce
from hint_lightning.objectives import context as context_module
from hint_lightning.objectives.attn_align import AttnAlignObjective
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import Decision, DecisionTargets, GroundingContext
from hint_lightning.objectives.hint import HintObjective
from hint_lightning.objectives.rrr import RRRObjective

INFO = VQADataInfo(
    answers=("yes", "no", "red", "2"),
    tokens=("<pad>", "<unk>", "a", "b", "c"),
    feature_dim=6,
    max_proposals=5,
    name="toy",
)


def make_module(objectives: dict[str, GroundingObjective], **kwargs: Any) -> VQAModule:
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
    return VQAModule(net, INFO, optimizer, objective=objectives or None, **kwargs).double()


def make_batch(has_importance: tuple[bool, ...] = (True, True, False)) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    targets = torch.tensor([[1.0, 0, 0, 0], [0, 0.3, 0, 0.9], [0, 0, 1.0, 0]], dtype=torch.float64)
    return {
        "features": torch.randn(3, 5, 6, generator=generator, dtype=torch.float64),
        "boxes": torch.rand(3, 5, 4, generator=generator, dtype=torch.float64),
        "proposal_mask": torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 5]),
        "question_tokens": torch.tensor([[2, 3, 0], [4, 0, 0], [2, 2, 4]]),
        "targets": targets,
        "answer_scores": targets.clone(),
        "answer_type": torch.tensor([0, 1, 2]),
        "human_importance": torch.rand(3, 5, generator=generator, dtype=torch.float64),
        "has_importance": torch.tensor(has_importance),
        "question_id": torch.tensor([10, 11, 12]),
    }


def step(module: VQAModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer only warns
        return module.training_step(batch, 0)


def gradients(module: VQAModule, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    names = [name for name, _ in module.named_parameters()]
    values = torch.autograd.grad(loss, list(module.parameters()), allow_unused=True)
    return {n: g for n, g in zip(names, values, strict=True) if g is not None}


OBJECTIVES = {
    "hint": lambda: HintObjective(0.7),
    "rrr": lambda: RRRObjective(0.3, threshold=0.5),
    "attn": lambda: AttnAlignObjective(2.0),
}


def test_two_objectives_are_the_sum_of_each_alone() -> None:
    """Loss and gradients: L(all) - L(plain) = sum over objectives of L(one) - L(plain)."""
    batch = make_batch()
    plain_module = make_module({})
    plain = step(plain_module, batch)
    plain_grads = gradients(plain_module, plain)
    expected, expected_grads = plain, dict(plain_grads)
    for name, build in OBJECTIVES.items():
        module = make_module({name: build()})
        loss = step(module, batch)
        assert (loss - plain).item() > 0, name
        expected = expected + (loss - plain)
        for key, value in gradients(module, loss).items():
            expected_grads[key] = expected_grads[key] + value - plain_grads[key]
    both = make_module({name: build() for name, build in OBJECTIVES.items()})
    loss = step(both, batch)
    torch.testing.assert_close(loss, expected)
    for key, value in gradients(both, loss).items():
        torch.testing.assert_close(value, expected_grads[key], msg=key)


def test_importance_is_computed_once_for_two_objectives(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = context_module.probe_gradient

    def counting(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(context_module, "probe_gradient", counting)
    module = make_module({"hint": HintObjective(1.0), "rrr": RRRObjective(1.0)})
    step(module, make_batch())
    assert len(calls) == 1


@pytest.mark.parametrize(
    "objectives",
    [
        {"hint": HintObjective(1.0)},
        {"attn": AttnAlignObjective(1.0)},
        {"hint": HintObjective(1.0), "rrr": RRRObjective(1.0), "attn": AttnAlignObjective(1.0)},
    ],
)
def test_a_batch_without_human_importance_is_a_plain_step(
    objectives: dict[str, GroundingObjective], monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("no importance may be computed on this batch")

    monkeypatch.setattr(context_module, "probe_gradient", forbidden)
    batch = make_batch((False, False, False))
    module = make_module(objectives)
    seen: list[torch.Tensor | None] = []
    forward = module.net.forward

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("proposal_shift"))
        assert not args[0].requires_grad  # no probe on the features either
        return forward(*args, **kwargs)

    monkeypatch.setattr(module.net, "forward", spy)
    loss = step(module, batch)
    assert seen == [None]  # one pass, no probe
    with torch.no_grad():
        logits, _ = forward(
            batch["features"], batch["boxes"], batch["question_tokens"], batch["proposal_mask"]
        )
    torch.testing.assert_close(loss, soft_target_bce(logits, batch["targets"]))


@pytest.mark.parametrize(
    "objective",
    [HintObjective, functools.partial(RRRObjective, threshold=0.5), AttnAlignObjective],
)
def test_random_importance_control_works_with_every_objective(objective: Any) -> None:
    batch = make_batch()
    module = make_module({"x": objective(1.0, random_importance_per_batch=True)})
    values = {round(step(module, batch).item(), 9) for _ in range(3)}
    fixed = round(step(make_module({"x": objective(1.0)}), batch).item(), 9)
    assert len(values) == 3 and fixed not in values  # fresh noise every batch


def toy_context(logits: torch.Tensor, targets: torch.Tensor) -> GroundingContext:
    rows = logits.shape[0]
    return GroundingContext(
        proposals=torch.zeros(rows, 2, 1),
        proposal_mask=torch.ones(rows, 2, dtype=torch.bool),
        human_importance=torch.zeros(rows, 2),
        has_importance=torch.ones(rows, dtype=torch.bool),
        decisions=DecisionTargets(
            targets,
            lambda out, t: out.gather(1, t.argmax(1, keepdim=True)).squeeze(1),
            positives=lambda t: t > 0,
        ),
        base=context_module.PassOutput(logits, None),
    )


def test_predicted_and_wrong_decisions_pick_the_ranked_classes() -> None:
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0], [5.0, 4.0, 0.0, 1.0]])
    targets = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.3, 0.0, 0.0, 1.0]])
    ctx = toy_context(logits, targets)
    assert ctx.answer_index("predicted:0").tolist() == [1, 0]
    assert ctx.answer_index("predicted:1").tolist() == [2, 1]
    # wrong answers skip the right ones (targets > 0): row 0 skips 1, row 1 skips 0 and 3
    assert ctx.answer_index("wrong:0").tolist() == [2, 1]
    assert ctx.answer_index(Decision("wrong", 1)).tolist() == [0, 2]
    # scores of tiled rows (K = 2 copies, copy-major) read each row's own class
    tiled = torch.cat([logits, 10 * logits])
    torch.testing.assert_close(
        ctx.decision_scores(tiled, "wrong:0"), torch.tensor([2.0, 4.0, 20.0, 40.0])
    )
    torch.testing.assert_close(ctx.decision_scores(tiled), torch.tensor([3.0, 1.0, 30.0, 10.0]))


def test_unknown_or_unavailable_decisions_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="kinds are ground_truth, predicted, wrong"):
        Decision.parse("best:0")
    ctx = toy_context(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    no_wrong = GroundingContext(
        proposals=ctx.proposals,
        proposal_mask=ctx.proposal_mask,
        human_importance=ctx.human_importance,
        has_importance=ctx.has_importance,
        decisions=DecisionTargets(ctx.targets, ctx.decisions.ground_truth),
        base=context_module.PassOutput(torch.zeros(1, 2), None),
    )
    with pytest.raises(ValueError, match="not available for this task"):
        no_wrong.importance("wrong:0")


def test_importance_through_a_method_equals_the_probe_of_the_main_pass() -> None:
    """``method.attribute`` on extra passes gives the single-pass numbers (eval mode)."""
    module = make_module({}).eval()
    batch = make_batch()
    rows = module.task.grounding_rows(module.net, batch, training=False)
    with torch.enable_grad():
        outputs, attention, probe = module._probed_pass(batch, rows, "shift")
        probed = module._context(rows, outputs, attention, probe, "shift", Gradient(), False)
        fast = probed.importance()
        outputs, attention, _ = module._probed_pass(batch, rows, None)
        plain = module._context(rows, outputs, attention, None, None, Gradient(False), False)
        extra = plain.importance()
        wrong = plain.importance("wrong:0")
        wrong_probe = probed.importance("wrong:0")
    torch.testing.assert_close(extra, fast)
    torch.testing.assert_close(wrong, wrong_probe)
    assert not torch.equal(wrong, extra)


def test_forward_tiles_the_rows_inputs_copy_major() -> None:
    module = make_module({}).eval()
    batch = make_batch()
    rows = module.task.grounding_rows(module.net, batch)
    with torch.no_grad():
        outputs, attention, _ = module._probed_pass(batch, rows, None)
        ctx = module._context(rows, outputs, attention, None, None, Gradient(), False)
        twice = torch.cat([batch["features"], batch["features"]])
        logits, att = ctx.forward(twice)
    torch.testing.assert_close(logits, torch.cat([outputs, outputs]))
    assert att is not None and att.shape == (6, 5)
    hinted = ctx.hinted()
    assert len(hinted) == 2 and hinted is ctx.hinted()
    torch.testing.assert_close(hinted.logits, outputs[:2])
