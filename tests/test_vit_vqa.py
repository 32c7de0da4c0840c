"""The ViT backbone (``model=vit_vqa``): patch tokens are the proposals, the shift path is exact,
internals are recorded, HINT's term on patch tokens is the hand-computed one, and the configs
train end to end (baseline, then HINT) on easy-VQA-CP patches."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
import torch

from hint_lightning.compose import compose_train_config
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.models.protocol import capabilities
from hint_lightning.models.vit_vqa import ViTVQA
from hint_lightning.modules.vqa_module import VQAModule, soft_target_bce
from hint_lightning.objectives.hint import HintObjective, hint_ranking_loss
from hint_lightning.objectives.importance import network_importance
from hint_lightning.train import train


def tiny(**kwargs: object) -> ViTVQA:
    torch.manual_seed(0)
    sizes = dict(feature_dim=12, num_patches=4, embedding_dim=5, hidden_dim=8, heads=2)
    sizes |= dict(classifier_dropout=0.0, max_question_length=4) | kwargs
    return ViTVQA(10, 3, **sizes).double().eval()  # type: ignore[arg-type]


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    targets = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]], dtype=torch.float64)
    return {
        "features": torch.rand(3, 4, 12, generator=generator, dtype=torch.float64) * 2 - 1,
        "boxes": torch.rand(3, 4, 4, generator=generator, dtype=torch.float64),
        "proposal_mask": torch.tensor([[True] * 4, [True, True, False, False], [False] * 4]),
        "question_tokens": torch.tensor([[1, 2, 0], [3, 0, 0], [4, 5, 6]]),
        "targets": targets,
        "answer_scores": targets.clone(),
        "answer_type": torch.tensor([0, 2, 2]),
        "human_importance": torch.rand(3, 4, generator=generator, dtype=torch.float64),
        "has_importance": torch.tensor([True, True, True]),
        "question_id": torch.tensor([1, 2, 3]),
    }


def test_shift_is_exact_attention_is_normalized_and_internals_are_recorded() -> None:
    net, data = tiny(), batch()
    tokens = net.embed_proposals(data["features"])
    shift = torch.randn(3, 4, dtype=torch.float64)
    args = (data["boxes"], data["question_tokens"], data["proposal_mask"])
    with net.record_internals() as internals:
        shifted = net(tokens + shift[..., None], *args)
    fast = net(tokens, *args, proposal_shift=shift)
    torch.testing.assert_close(fast.logits, shifted.logits)
    torch.testing.assert_close(fast.attention.sum(1), torch.tensor([1.0, 1.0, 0.0]).double())
    assert (fast.attention[1, 2:] == 0).all() and torch.isfinite(fast.logits).all()
    assert internals.proposal_start == 4 and len(internals.attentions) == len(net.layers)
    assert internals.attentions[-1].shape == (3, 2, 1 + 3 + 4, 1 + 3 + 4)
    assert net._recording is None  # recording stops with the context
    assert capabilities(net).offers() == {"shift", "mask", "attention", "internals"}


def test_wrong_patch_sizes_are_named() -> None:
    net = tiny()
    with pytest.raises(ValueError, match=r"expects \[B, 4, 12\] patch pixels .* got \(2, 4, 9\)"):
        net.embed_proposals(torch.zeros(2, 4, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="call embed_proposals on the patch pixels first"):
        net(torch.zeros(1, 4, 12).double(), torch.zeros(1, 4, 4), torch.ones(1, 2).long())


def hint_module(train_importance: object) -> VQAModule:
    """The tiny ViT in a VQAModule with HINT (λ = 2) on ``train_importance``."""
    info = VQADataInfo(("a", "b", "c"), tuple("pqrstuvwxy"), 12, 4)
    return VQAModule(
        lambda **k: tiny(),
        info,
        functools.partial(torch.optim.SGD, lr=0.1),
        objective=HintObjective(2.0),
        train_importance=train_importance,
    ).double()


def test_hint_on_patch_tokens_is_the_hand_computed_term() -> None:
    """HINT with token input x gradient: one pass, the tokens after the embedding as the probe,
    and the embedding is trained by the grounding term too."""
    module = hint_module("token_input_x_gradient")
    data = batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(data, 0)
    net = module.net

    def task_and_term() -> tuple[torch.Tensor, torch.Tensor]:
        tokens = net.embed_proposals(data["features"])
        logits, _ = net(tokens, data["boxes"], data["question_tokens"], data["proposal_mask"])
        score = logits.gather(1, data["targets"].argmax(1, keepdim=True))[:, 0]
        (gradient,) = torch.autograd.grad(score.sum(), tokens, create_graph=True)
        alpha = (gradient * tokens).sum(-1)
        human, mask = data["human_importance"], data["proposal_mask"]
        return soft_target_bce(logits, data["targets"]), hint_ranking_loss(alpha, human, mask)

    task, term = task_and_term()
    assert term[0] > 0
    torch.testing.assert_close(loss, task + 2.0 * term.mean())
    weight = net.patch_embedding.weight
    (got,) = torch.autograd.grad(loss, weight)
    (want,) = torch.autograd.grad(task + 2.0 * term.mean(), weight)
    torch.testing.assert_close(got, want)
    (task_only,) = torch.autograd.grad(task_and_term()[0], weight)
    assert not torch.allclose(got, task_only)  # the embedding learns from the grounding term


def test_summed_token_gradient_vanishes_under_layer_norm() -> None:
    """Why the ViT experiments use token input x gradient (importance/token_gradient.py)."""
    net, data = tiny(), batch()
    tokens = net.embed_proposals(data["features"]).detach().requires_grad_(True)
    logits, _ = net(tokens, data["boxes"], data["question_tokens"], data["proposal_mask"])
    alpha = network_importance(logits[:, 0], tokens)
    torch.testing.assert_close(alpha, torch.zeros_like(alpha), atol=1e-12, rtol=0)


QUICK = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "model.net.hidden_dim=16",
    "model.net.mlp_dim=16",
    "data.eval_batch_size=64",
)


@pytest.mark.slow
def test_easyvqa_cp_vit_trains_then_fine_tunes_with_hint(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    def run(*overrides: str, out: str) -> dict:
        cfg = compose_train_config(
            [f"paths.data_dir={easyvqa_data_dir}", *QUICK, *overrides], output_dir=tmp_path / out
        )
        return train(cfg)

    baseline = run("experiment=easyvqa_cp_vit", out="base")
    assert 0 <= baseline["test/acc"] <= 100 and -1 <= baseline["test/rho"] <= 1
    hint = run("experiment=easyvqa_cp_vit_hint", f"init_from={baseline['ckpt/last']}", out="hint")
    assert hint["train/loss_grounding"] > 0 and hint["train/hinted_frac"] == 1.0
    # Figure 2 for patches: base vs HINT, the importance grid over the raw image
    from hint_lightning.viz.figure2 import write_question_figures
    from hint_lightning.viz.questions import importance_for_questions, load_datamodule

    data, _, _ = load_datamodule(baseline["ckpt/last"], str(easyvqa_data_dir))
    ids = data.question_ids("test")[:2].tolist()
    runs = [
        (name, importance_for_questions(ckpt, ids, datamodule=data))
        for name, ckpt in (("base", baseline["ckpt/last"]), ("HINT", hint["ckpt/last"]))
    ]
    assert runs[0][1]["boxes"].shape == (2, 64, 4) and runs[0][1]["images"][0].shape == (64, 64, 3)
    paths = write_question_figures(runs, tmp_path / "figures")
    assert len(paths) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
