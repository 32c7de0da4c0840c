"""CaptionModule: the HINT term at visual words is the mixin's term, computed one decision at a
time by hand; the fast and reference importance paths agree; evaluation helpers."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from hint_lightning.data import caption_batch as C
from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.data.caption_collate import collate_captions
from hint_lightning.models.updn_captioner import UpDnCaptioner
from hint_lightning.modules.caption_module import (
    CaptionModule,
    caption_cross_entropy,
    score_results,
    words_to_captions,
)
from hint_lightning.objectives.attn_align import AttnAlignObjective, attention_alignment_loss
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.hint import HintObjective, hint_ranking_loss

VOCAB = ("<pad>", "<bos>", "<eos>", "<unk>", "a", "red", "dog", "cat", "on", "sofa")
INFO = CaptionDataInfo(vocab=VOCAB, feature_dim=6, max_proposals=5, name="toy")


def make_module(objective: GroundingObjective | None, fast: bool = True) -> CaptionModule:
    torch.manual_seed(0)
    net = functools.partial(
        UpDnCaptioner, embedding_dim=4, hidden_dim=5, attention_dim=3, dropout=0.0
    )
    return CaptionModule(
        net,
        INFO,
        functools.partial(torch.optim.Adam, lr=1e-3),
        objective=objective,
        fast_importance=fast,
        scorer="tokenized",
    ).double()


def make_batch() -> dict[str, Tensor]:
    """Three captions: two visual words ("dog", "sofa"), none, one ("cat"); image 1 has 3 real
    proposals of 5."""
    generator = torch.Generator().manual_seed(1)

    def image(n: int) -> dict[str, np.ndarray]:
        return {
            "features": torch.randn(n, 6, generator=generator, dtype=torch.float64).numpy(),
            "boxes": torch.rand(n, 4, generator=generator).numpy(),
        }

    items = [
        {
            **image(5),
            "caption": [1, 4, 6, 8, 4, 9, 2],  # a dog on a sofa
            "image_id": 1,
            "decode": True,
            "decision_step": [1, 4],
            "decision_importance": torch.rand(2, 5, generator=generator).numpy(),
        },
        {**image(3), "caption": [1, 4, 5, 2], "image_id": 2, "decode": True},  # a red
        {
            **image(5),
            "caption": [1, 4, 7, 2],  # a cat
            "image_id": 3,
            "decode": True,
            "decision_step": [1],
            "decision_importance": torch.rand(1, 5, generator=generator).numpy(),
        },
    ]
    batch = collate_captions(items)
    batch[C.FEATURES] = batch[C.FEATURES].double()
    batch[C.BOXES] = batch[C.BOXES].double()
    batch[C.DECISION_IMPORTANCE] = batch[C.DECISION_IMPORTANCE].double()
    return batch


def quietly(function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function``; ``self.log`` outside a Trainer only warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


def hint_term_by_hand(module: CaptionModule, batch: dict[str, Tensor], weight: float) -> Tensor:
    """``weight`` times the mean ranking loss of the decisions, each one computed alone: its
    caption only, cut after its step, gradient of its word's logit with respect to the
    [1, N, D] features summed over D (the paper's equation 1)."""
    losses = []
    for k in range(batch[C.DECISION_ROW].numel()):
        row, step = int(batch[C.DECISION_ROW][k]), int(batch[C.DECISION_STEP][k])
        word = int(batch[C.DECISION_WORD][k])
        features = batch[C.FEATURES][row : row + 1].detach().requires_grad_(True)
        mask = batch[C.PROPOSAL_MASK][row : row + 1]
        logits, _ = module.net(
            features,
            batch[C.BOXES][row : row + 1],
            batch[C.CAPTION_INPUTS][row : row + 1, : step + 1],
            mask,
        )
        (gradient,) = torch.autograd.grad(logits[0, step, word], features, create_graph=True)
        importance = gradient.sum(dim=-1)
        human = batch[C.DECISION_IMPORTANCE][k : k + 1]
        losses.append(hint_ranking_loss(importance, human, mask))
    return weight * torch.cat(losses).mean()


def task_loss(module: CaptionModule, batch: dict[str, Tensor]) -> Tensor:
    logits, _ = module.net(
        batch[C.FEATURES], batch[C.BOXES], batch[C.CAPTION_INPUTS], batch[C.PROPOSAL_MASK]
    )
    return caption_cross_entropy(logits, batch[C.CAPTION_TARGETS])


@pytest.mark.parametrize("fast", [True, False])
def test_hint_term_is_the_mixins_term_of_each_decision_computed_alone(fast: bool) -> None:
    batch = make_batch()
    module = make_module(HintObjective(weight=0.7), fast=fast)
    assert module.fast_importance is fast
    loss = quietly(module.training_step, batch, 0)
    expected_term = hint_term_by_hand(module, batch, weight=0.7)
    expected = task_loss(module, batch) + expected_term
    assert expected_term.item() > 0
    torch.testing.assert_close(loss, expected)
    # The gradient of the gradient reaches the parameters exactly as by hand.
    got = torch.autograd.grad(loss, list(module.parameters()), allow_unused=True)
    want = torch.autograd.grad(expected, list(module.parameters()), allow_unused=True)
    for (name, _), g, w in zip(module.named_parameters(), got, want, strict=True):
        if w is None:
            assert g is None or torch.count_nonzero(g) == 0, name
        else:
            torch.testing.assert_close(g, w, msg=name)


def test_fast_and_reference_paths_give_the_same_loss_and_gradients() -> None:
    batch = make_batch()
    losses, grads = [], []
    for fast in (True, False):
        module = make_module(HintObjective(weight=1.0), fast=fast)
        loss = quietly(module.training_step, batch, 0)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


@pytest.mark.parametrize("objective", [None, HintObjective(weight=0.0)])
def test_without_a_term_the_loss_is_the_task_loss(objective: HintObjective | None) -> None:
    batch = make_batch()
    module = make_module(objective)
    torch.testing.assert_close(quietly(module.training_step, batch, 0), task_loss(module, batch))


def test_a_batch_without_decisions_adds_only_the_task_loss() -> None:
    batch = make_batch()
    for key in (C.DECISION_ROW, C.DECISION_STEP, C.DECISION_WORD):
        batch[key] = batch[key][:0]
    batch[C.DECISION_IMPORTANCE] = batch[C.DECISION_IMPORTANCE][:0]
    module = make_module(HintObjective(weight=1.0))
    torch.testing.assert_close(quietly(module.training_step, batch, 0), task_loss(module, batch))


def test_attention_objective_reads_the_attention_at_each_decision_step() -> None:
    batch = make_batch()
    module = make_module(AttnAlignObjective(weight=1.0))
    loss = quietly(module.training_step, batch, 0)
    _, attention = module.net(
        batch[C.FEATURES], batch[C.BOXES], batch[C.CAPTION_INPUTS], batch[C.PROPOSAL_MASK]
    )
    row, step = batch[C.DECISION_ROW], batch[C.DECISION_STEP]
    term = attention_alignment_loss(
        attention[row, step], batch[C.DECISION_IMPORTANCE], batch[C.PROPOSAL_MASK][row]
    ).mean()
    torch.testing.assert_close(loss, task_loss(module, batch) + term)


@pytest.mark.parametrize("fast", [True, False])
def test_evaluation_importance_is_the_gradient_of_each_decision(fast: bool) -> None:
    batch = make_batch()
    module = make_module(None, fast=fast).eval()
    decisions, importance, attention = module.decision_importance(batch)
    assert not importance.requires_grad and importance.shape == (3, 5)
    for k in range(3):
        row, step = int(decisions.row[k]), int(decisions.step[k])
        features = batch[C.FEATURES][row : row + 1].detach().requires_grad_(True)
        logits, att = module.net(
            features,
            batch[C.BOXES][row : row + 1],
            batch[C.CAPTION_INPUTS][row : row + 1],
            batch[C.PROPOSAL_MASK][row : row + 1],
        )
        (gradient,) = torch.autograd.grad(logits[0, step, int(decisions.word[k])], features)
        torch.testing.assert_close(importance[k], gradient.sum(dim=-1)[0])
        torch.testing.assert_close(attention[k], att[0, step].detach())


def test_evaluation_in_inference_mode_says_what_to_change() -> None:
    module = make_module(None)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode=false"):
        module._evaluation_step(make_batch(), "val")


def test_decoded_words_become_captions_up_to_eos() -> None:
    words = torch.tensor([[4, 6, 8, 4, 9, 2, 0], [4, 3, 2, 7, 7, 7, 7], [2, 0, 0, 0, 0, 0, 0]])
    assert words_to_captions(words, VOCAB) == ["a dog on a sofa", "a UNK", ""]


def test_tokenized_scorer_lowercases_and_drops_punctuation() -> None:
    references = {1: ["A dog on a sofa.", "a dog"], 2: ["A red cat!", "a cat"]}
    results = [{"image_id": 1, "caption": "a dog on a sofa"}, {"image_id": 2, "caption": "a cat"}]
    scores = score_results(results, references, "tokenized")
    assert scores["Bleu_1"] == pytest.approx(1.0) and "METEOR" not in scores
    with pytest.raises(ValueError, match="no references"):
        score_results([{"image_id": 3, "caption": "a"}], references, "tokenized")
    with pytest.raises(ValueError, match="scorer"):
        score_results(results, references, "bleu")


def test_grounding_gives_the_training_steps_term() -> None:
    batch = make_batch()
    module = make_module(HintObjective(weight=0.7))
    loss = quietly(module.training_step, batch, 0)
    _, attention = module.net(
        batch[C.FEATURES], batch[C.BOXES], batch[C.CAPTION_INPUTS], batch[C.PROPOSAL_MASK]
    )
    term = module.grounding(batch, attention)
    assert term.hinted == 3
    torch.testing.assert_close(term.loss, loss - task_loss(module, batch))
