"""The second VQA backbone: a small transformer over question tokens and proposals. Its shift
path is exact, HINT's double backward through it is correct, and it trains end to end (on a
toy task by hand, and through the CLI config on easy-VQA-CP, baseline then HINT)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
from torch.func import functional_call

from hint_lightning.compose import compose_train_config
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.models.transformer_vqa import TransformerVQA
from hint_lightning.modules.vqa_module import VQAModule
from hint_lightning.objectives.hint import HintObjective, hint_ranking_loss
from hint_lightning.objectives.importance import network_importance
from hint_lightning.train import train


def tiny(**kwargs: object) -> TransformerVQA:
    torch.manual_seed(0)
    sizes = dict(feature_dim=6, embedding_dim=5, hidden_dim=8, layers=2, heads=2, dropout=0.0)
    sizes |= dict(classifier_dropout=0.0) | kwargs
    return TransformerVQA(10, 4, **sizes).double().eval()  # type: ignore[arg-type]


def inputs() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(3, 5, 6, generator=generator, dtype=torch.float64)
    boxes = torch.rand(3, 5, 4, generator=generator, dtype=torch.float64)
    tokens = torch.tensor([[1, 2, 0], [3, 0, 0], [4, 5, 6]])
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    return features, boxes, tokens, mask


def test_proposal_shift_equals_shifting_every_feature() -> None:
    model = tiny()
    features, boxes, tokens, mask = inputs()
    shift = torch.randn(3, 5, dtype=torch.float64)
    shifted, attention = model(features + shift[..., None], boxes, tokens, mask)
    fast, fast_attention = model(features, boxes, tokens, mask, proposal_shift=shift)
    torch.testing.assert_close(fast, shifted)
    torch.testing.assert_close(fast_attention, attention)
    torch.testing.assert_close(attention.sum(1), torch.ones(3, dtype=torch.float64))
    assert (attention[1, 3:] == 0).all()


def test_fast_importance_equals_the_reference_in_value_and_second_order() -> None:
    model = tiny()
    features, boxes, tokens, mask = inputs()
    probe = features.clone().requires_grad_(True)
    logits, _ = model(probe, boxes, tokens, mask)
    reference = network_importance(logits[:, 1], probe)
    (reference_grad,) = torch.autograd.grad(reference.pow(2).sum(), model.cls)
    shift = torch.zeros(3, 5, dtype=torch.float64, requires_grad=True)
    logits, _ = model(features, boxes, tokens, mask, proposal_shift=shift)
    (fast,) = torch.autograd.grad(logits[:, 1].sum(), shift, create_graph=True)
    (fast_grad,) = torch.autograd.grad(fast.pow(2).sum(), model.cls)
    torch.testing.assert_close(fast, reference)
    torch.testing.assert_close(fast_grad, reference_grad)


def test_gradcheck_of_the_hint_term_through_the_transformer() -> None:
    model = tiny(hidden_dim=4, layers=1)
    features, boxes, tokens, mask = (x[:2, :3] if x.ndim > 1 else x for x in inputs())
    tokens = tokens[:2]
    human = torch.rand(2, 3, dtype=torch.float64)
    names = ["cls", "layers.0.attention.qkv.bias"]
    params = dict(model.named_parameters())

    def term(proposals: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        overrides = {**params, **dict(zip(names, tensors, strict=True))}
        logits, _ = functional_call(model, overrides, (proposals, boxes, tokens, mask))
        alpha = network_importance(logits[:, 0], proposals, create_graph=True)
        return hint_ranking_loss(alpha, human, mask).sum()

    probe = features.clone().requires_grad_(True)
    tensors = [params[n].detach().clone().requires_grad_(True) for n in names]
    assert torch.autograd.gradcheck(term, (probe, *tensors), eps=1e-6, atol=1e-5)


def test_learns_a_toy_task_with_hint_on() -> None:
    """The answer is the class of the one bright proposal; HINT's human importance points at
    it. A few hundred Adam steps reach a high accuracy and a falling ranking loss."""
    generator = torch.Generator().manual_seed(0)
    count, slots, dim = 128, 4, 6
    position = torch.randint(0, slots, (count,), generator=generator)
    answer = torch.randint(0, 3, (count,), generator=generator)
    features = 0.1 * torch.randn(count, slots, dim, generator=generator)
    features[torch.arange(count), position, answer] += 2.0
    features[torch.arange(count), position, 5] += 2.0
    human = torch.nn.functional.one_hot(position, slots).float()
    targets = torch.nn.functional.one_hot(answer, 3).float()
    info = VQADataInfo(("a", "b", "c"), ("<pad>", "<unk>", "q"), dim, slots)
    torch.manual_seed(0)
    net = functools.partial(
        TransformerVQA, embedding_dim=8, hidden_dim=16, layers=2, heads=2, dropout=0.0
    )
    module = VQAModule(
        net, info, functools.partial(torch.optim.Adam, lr=3e-3), objective=HintObjective(0.1)
    )
    optimizer = module.configure_optimizers()
    batch = {
        "features": features,
        "boxes": torch.rand(count, slots, 4, generator=generator),
        "proposal_mask": torch.ones(count, slots, dtype=torch.bool),
        "question_tokens": torch.full((count, 3), 2),
        "targets": targets,
        "answer_scores": targets,
        "answer_type": torch.full((count,), 2),
        "human_importance": human,
        "has_importance": torch.ones(count, dtype=torch.bool),
        "question_id": torch.arange(count),
    }
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(100):
            optimizer.zero_grad()
            loss = module.training_step(batch, 0)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    module.eval()
    logits, _, importance = module.answer_with_importance(batch)
    accuracy = (logits.argmax(1) == answer).float().mean().item()
    assert accuracy > 0.9
    assert losses[-1] < 0.5 * losses[0]
    assert importance is not None and (importance.argmax(1) == position).float().mean() > 0.5


QUICK = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
)


def test_easyvqa_cp_transformer_trains_then_fine_tunes_with_hint(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    def run(*overrides: str, out: str) -> dict:
        cfg = compose_train_config(
            [f"paths.data_dir={easyvqa_data_dir}", *QUICK, *overrides], output_dir=tmp_path / out
        )
        return train(cfg)

    baseline = run("experiment=easyvqa_cp_transformer", out="base")
    assert 0 <= baseline["test/acc"] <= 100 and -1 <= baseline["test/rho"] <= 1
    assert "test/rho_attention" in baseline
    hint = run(
        "experiment=easyvqa_cp_transformer_hint", f"init_from={baseline['ckpt/last']}", out="hint"
    )
    assert hint["train/loss_grounding"] > 0 and hint["train/hinted_frac"] == 1.0
    assert "test/acc" in hint
