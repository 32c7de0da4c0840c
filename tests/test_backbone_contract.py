"""The backbone contract: a backbone without attention or without the shift path still trains
with HINT; what a chosen objective or method truly needs is refused at start-up with a message
naming it; every shipped backbone handles a row whose proposals are all masked."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.models.patch_classifier import PatchMLP
from hint_lightning.models.protocol import Backbone, capabilities
from hint_lightning.models.transformer_vqa import TransformerVQA
from hint_lightning.models.updn_captioner import UpDnCaptioner
from hint_lightning.models.updn_vqa import UpDnVQA
from hint_lightning.modules.caption_module import CaptionModule
from hint_lightning.modules.classification_module import ClassificationModule
from hint_lightning.modules.vqa_module import VQAModule, soft_target_bce
from hint_lightning.objectives.attn_align import AttnAlignObjective
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext
from hint_lightning.objectives.hint import HintObjective, hint_ranking_loss
from hint_lightning.objectives.importance import network_importance

INFO = VQADataInfo(("yes", "no", "red"), ("<pad>", "<unk>", "a", "b"), 4, 3, "toy")


class PooledVQA(nn.Module):
    """A backbone with neither attention nor the shift path: mean of the real proposals."""

    returns_attention = False

    def __init__(self, vocab_size: int, num_answers: int, feature_dim: int) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab_size, feature_dim, padding_idx=0)
        self.out = nn.Linear(feature_dim, num_answers)

    def forward(
        self, features: Tensor, boxes: Tensor, tokens: Tensor, proposal_mask: Tensor
    ) -> tuple[Tensor, None]:
        weights = proposal_mask.to(features.dtype).unsqueeze(-1)
        pooled = (features * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.out(torch.tanh(pooled * self.words(tokens).mean(1))), None


def batch() -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(0)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return {
        "features": torch.randn(2, 3, 4, generator=generator, dtype=torch.float64),
        "boxes": torch.rand(2, 3, 4, generator=generator, dtype=torch.float64),
        "proposal_mask": torch.tensor([[True, True, True], [True, True, False]]),
        "question_tokens": torch.tensor([[2, 3], [3, 0]]),
        "targets": targets,
        "answer_scores": targets.clone(),
        "answer_type": torch.tensor([0, 2]),
        "human_importance": torch.rand(2, 3, generator=generator, dtype=torch.float64),
        "has_importance": torch.tensor([True, True]),
        "question_id": torch.tensor([1, 2]),
    }


def vqa_module(net: Any, **kwargs: Any) -> VQAModule:
    torch.manual_seed(0)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return VQAModule(net, INFO, optimizer, **kwargs).double()


def test_a_backbone_without_attention_or_shift_trains_with_hint() -> None:
    module = vqa_module(functools.partial(PooledVQA), objective=HintObjective(2.0))
    assert not module.caps.shift and not module.caps.attention and module.caps.mask
    data = batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(data, 0)
    features = data["features"].clone().requires_grad_(True)
    logits, _ = module.net(features, data["boxes"], data["question_tokens"], data["proposal_mask"])
    alpha = network_importance(
        logits.gather(1, data["targets"].argmax(1, keepdim=True))[:, 0], features
    )
    expected = (
        soft_target_bce(logits, data["targets"])
        + 2.0 * hint_ranking_loss(alpha, data["human_importance"], data["proposal_mask"]).mean()
    )
    torch.testing.assert_close(loss, expected)


def test_attention_objective_on_a_backbone_without_attention_is_refused() -> None:
    with pytest.raises(ValueError, match=r"objective attn_align needs the backbone's attention"):
        vqa_module(functools.partial(PooledVQA), objective=AttnAlignObjective())
    with pytest.raises(ValueError, match=r"objective attn_align .* backbone PatchMLP returns none"):
        ClassificationModule(
            PatchMLP(num_proposals=4, feature_dim=2, num_classes=3),
            object(),
            functools.partial(torch.optim.SGD, lr=0.1),
            objective=AttnAlignObjective(),
        )


class NeedsWrongAnswers(GroundingObjective):
    """An objective comparing the ground truth with the most confident wrong answer."""

    name = "compare"
    needs_network_importance = True
    extra_requires = frozenset({"wrong_answers"})

    def loss(self, ctx: GroundingContext) -> Tensor:
        return (ctx.importance() - ctx.importance("wrong:0")).abs().sum(1).mean()


def test_an_objective_needing_wrong_answers_is_refused_for_captioning() -> None:
    info = CaptionDataInfo(("<pad>", "<bos>", "<eos>", "<unk>", "dog"), 4, 3)
    with pytest.raises(ValueError, match=r"objective compare .* task captioning has no wrong"):
        CaptionModule(
            functools.partial(UpDnCaptioner, embedding_dim=2, hidden_dim=2, attention_dim=2),
            info,
            functools.partial(torch.optim.SGD, lr=0.1),
            objective=NeedsWrongAnswers(),
            scorer="tokenized",
        )
    # ...and works for VQA, where the wrong answers are the answers with a zero target
    module = vqa_module(functools.partial(PooledVQA), objective=NeedsWrongAnswers())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert module.training_step(batch(), 0).item() > 0


def test_unknown_importance_methods_list_the_available_ones() -> None:
    with pytest.raises(
        ValueError, match=r"model.train_importance: unknown importance method 'nope'.*gradient"
    ):
        vqa_module(functools.partial(PooledVQA), train_importance="nope")
    with pytest.raises(ValueError, match=r"model.eval_importance=gradient: .*unexpected keyword"):
        vqa_module(functools.partial(PooledVQA), eval_importance={"name": "gradient", "steps": 3})


def test_declared_capabilities() -> None:
    updn = UpDnVQA(5, 3, feature_dim=4, embedding_dim=2, hidden_dim=2, classifier_dim=2)
    assert isinstance(updn, Backbone)
    caps = capabilities(updn)
    assert (caps.shift, caps.mask, caps.attention, caps.word_embeddings) == (True, True, True, True)
    patch = capabilities(PatchMLP(4, 2, 3), mask=False, attention=False)
    assert patch.offers() == frozenset()
    pooled = capabilities(PooledVQA(5, 3, 4))
    assert pooled.offers() == {"mask"}


def all_masked_cases() -> list[tuple[str, nn.Module, tuple[Any, ...]]]:
    torch.manual_seed(0)
    features, boxes = torch.randn(2, 3, 4), torch.rand(2, 3, 4)
    tokens = torch.tensor([[2, 3], [3, 0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    updn = UpDnVQA(5, 3, feature_dim=4, embedding_dim=2, hidden_dim=3, classifier_dim=4)
    transformer = TransformerVQA(
        5, 3, feature_dim=4, embedding_dim=2, hidden_dim=4, layers=1, heads=2
    )
    captioner = UpDnCaptioner(6, feature_dim=4, embedding_dim=2, hidden_dim=3, attention_dim=2)
    captions = torch.tensor([[1, 4, 5], [1, 5, 0]])
    return [
        ("updn", updn, (features, boxes, tokens, mask)),
        ("transformer", transformer, (features, boxes, tokens, mask)),
        ("captioner", captioner, (features, boxes, captions, mask)),
    ]


@pytest.mark.parametrize(
    "name, net, args", all_masked_cases(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_a_row_with_every_proposal_masked_has_zero_attention_and_finite_gradients(
    name: str, net: nn.Module, args: tuple[Tensor, ...]
) -> None:
    net.eval()
    features = args[0].clone().requires_grad_(True)
    logits, attention = net(features, *args[1:])
    assert torch.isfinite(logits).all()
    assert torch.equal(attention[1], torch.zeros_like(attention[1]))  # the all-masked row
    assert (attention[0][..., 1] == 0).all()  # a masked proposal of the other row
    # importance (a gradient) and its gradient (HINT's double backward) stay finite
    (gradient,) = torch.autograd.grad(logits.sum(), features, create_graph=True)
    gradient.pow(2).sum().backward()
    assert torch.isfinite(gradient).all()
    for parameter in net.parameters():
        assert parameter.grad is None or torch.isfinite(parameter.grad).all()


def test_a_method_the_backbone_cannot_serve_is_refused_naming_objective_method_and_capability() -> (
    None
):
    patch = functools.partial(PatchMLP, hidden_dim=4)
    info = type("Info", (), {"num_proposals": 4, "feature_dim": 2, "num_classes": 3})()
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    with pytest.raises(
        ValueError, match=r"objective hint .*LeaveOneOut\(replacement='drop'\).*mask"
    ):
        ClassificationModule(
            patch, info, optimizer, objective=HintObjective(), train_importance="leave_one_out"
        )
    with pytest.raises(ValueError, match=r"model.eval_importance=Attention\(\).*attention"):
        ClassificationModule(patch, info, optimizer, eval_importance="attention")
    # zeros instead of dropping needs no mask: accepted
    ClassificationModule(
        patch,
        info,
        optimizer,
        objective=HintObjective(),
        train_importance={"name": "leave_one_out", "replacement": "zeros"},
    )


@pytest.mark.parametrize("method", ["input_x_gradient", "attention", "leave_one_out"])
def test_hint_trains_with_any_importance_method(method: str) -> None:
    """The HINT term with another training method is the ranking loss of that method's
    importance of the ground truth (computed here through its own forward function)."""
    from hint_lightning.importance import DecisionFunction, get_method
    from hint_lightning.importance.replacement import tile_batch

    net = functools.partial(
        UpDnVQA,
        embedding_dim=2,
        hidden_dim=3,
        classifier_dim=4,
        attention_dropout=0.0,
        classifier_dropout=0.0,
    )
    module = vqa_module(net, objective=HintObjective(1.0), train_importance=method)
    data = batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(data, 0)
    tokens, boxes, targets = data["question_tokens"], data["boxes"], data["targets"]

    def outputs(proposals: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        rows = proposals.shape[0]
        return module.net(proposals, tile_batch(boxes, rows), tile_batch(tokens, rows), mask)

    def score(proposals: Tensor, mask: Tensor) -> Tensor:
        logits, _ = outputs(proposals, mask)
        truth = tile_batch(targets, logits.shape[0]).argmax(1, keepdim=True)
        return logits.gather(1, truth)[:, 0]

    fn = DecisionFunction(score, attention=lambda p, m: outputs(p, m)[1])
    importance = get_method(method).attribute(
        fn, data["features"], data["proposal_mask"], create_graph=True
    )
    logits, _ = outputs(data["features"], data["proposal_mask"])
    expected = (
        soft_target_bce(logits, targets)
        + hint_ranking_loss(importance, data["human_importance"], data["proposal_mask"]).mean()
    )
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, module.net.classifier[0].bias)
    assert torch.isfinite(grad).all()


def test_checkpoints_keep_the_net_prefix_layout() -> None:
    """Checkpoints written before the toolkit load as they are: the state dict holds the
    backbone under ``net.`` and nothing else (objectives and metrics keep no state in it)."""
    vqa = vqa_module(
        functools.partial(UpDnVQA, embedding_dim=2, hidden_dim=3, classifier_dim=4),
        objective={"hint": HintObjective(), "attn": AttnAlignObjective()},
    )
    info = CaptionDataInfo(("<pad>", "<bos>", "<eos>", "<unk>", "dog"), 4, 3)
    caption = CaptionModule(
        functools.partial(UpDnCaptioner, embedding_dim=2, hidden_dim=2, attention_dim=2),
        info,
        functools.partial(torch.optim.SGD, lr=0.1),
        objective=HintObjective(),
        scorer="tokenized",
    )
    for module in (vqa, caption):
        keys = module.state_dict()
        assert {key.split(".")[0] for key in keys} == {"net"}
        assert {f"net.{key}" for key in module.net.state_dict()} == set(keys)
