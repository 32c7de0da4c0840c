"""VQAModule: the training loss, the fast and reference importance paths, evaluation metrics."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.models.updn_vqa import UpDnVQA
from hint_lightning.modules.vqa_module import VQAModule, soft_target_bce
from hint_lightning.objectives.hint import HintObjective

INFO = VQADataInfo(
    answers=("yes", "no", "red", "2"),
    tokens=("<pad>", "<unk>", "a", "b", "c"),
    feature_dim=6,
    max_proposals=5,
    name="toy",
)


def make_module(fast: bool, weight: float = 1.0) -> VQAModule:
    torch.manual_seed(0)
    net = functools.partial(
        UpDnVQA,
        embedding_dim=4,
        hidden_dim=8,
        classifier_dim=8,
        attention_dropout=0.0,
        classifier_dropout=0.0,
    )
    return VQAModule(
        net,
        INFO,
        functools.partial(torch.optim.Adamax, lr=1e-3),
        objective=HintObjective(weight=weight),
        fast_importance=fast,
    ).double()


def make_batch() -> dict[str, torch.Tensor]:
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
        "has_importance": torch.tensor([True, True, False]),
        "question_id": torch.tensor([10, 11, 12]),
    }


def training_loss(module: VQAModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer only warns
        return module.training_step(batch, 0)


def test_fast_and_reference_importance_give_the_same_loss_and_gradients() -> None:
    batch = make_batch()
    losses, grads = [], []
    for fast in (True, False):
        module = make_module(fast)
        assert module.fast_importance is fast
        loss = training_loss(module, batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_loss_is_task_loss_plus_the_hint_term() -> None:
    batch = make_batch()
    plain = make_module(fast=True, weight=0.0)
    with torch.no_grad():
        logits, _ = plain.net(
            batch["features"], batch["boxes"], batch["question_tokens"], batch["proposal_mask"]
        )
    task = soft_target_bce(logits, batch["targets"])
    torch.testing.assert_close(training_loss(plain, batch).detach(), task)
    assert training_loss(make_module(fast=True, weight=1.0), batch).item() > task.item()


def test_compile_is_refused_with_hint() -> None:
    with pytest.raises(ValueError, match="double backward"):
        VQAModule(
            UpDnVQA(vocab_size=5, num_answers=4, feature_dim=6),
            INFO,
            functools.partial(torch.optim.Adamax),
            objective=HintObjective(),
            compile=True,
        )


def test_evaluation_in_inference_mode_says_what_to_change() -> None:
    module = make_module(fast=True)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode=false"):
        module._evaluation_step(make_batch(), "val")
