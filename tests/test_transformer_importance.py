"""Importance methods for patch tokens and transformers, against references: Captum for the
token gradients, a hand-written forward of the ViT with the attention maps as leaves (Grad-CAM,
Chefer et al.'s relevance) and loop-by-loop formulas (rollout)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from captum.attr import InputXGradient, Saliency

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.importance import (
    AttentionGradCAM,
    AttentionRollout,
    CheferRelevance,
    DecisionFunction,
    TokenGradient,
    TokenInputXGradient,
)
from hint_lightning.models.layers import masked_softmax
from hint_lightning.models.transformer_vqa import TransformerVQA
from hint_lightning.models.vit_vqa import ViTVQA
from hint_lightning.modules.vqa_module import VQAModule

ANSWER = torch.tensor([0, 2, 1])


def setup() -> tuple[ViTVQA, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = (
        ViTVQA(
            10,
            3,
            feature_dim=6,
            num_patches=4,
            embedding_dim=5,
            hidden_dim=8,
            heads=2,
            layers=2,
            classifier_dropout=0.0,
            max_question_length=4,
        )
        .double()
        .eval()
    )
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # non-trivial attention: scale the query/key weights up
        for layer in net.layers:
            layer.attention.qkv.weight.mul_(4.0)
    pixels = torch.rand(3, 4, 6, generator=generator, dtype=torch.float64) * 2 - 1
    tokens = net.embed_proposals(pixels).detach()
    question = torch.tensor([[1, 2, 0], [3, 0, 0], [4, 5, 6]])
    mask = torch.tensor([[True] * 4, [True, True, True, False], [True] * 4])
    return net, tokens, question, mask


def decision(net: ViTVQA, question: torch.Tensor) -> DecisionFunction:
    boxes = torch.zeros(3, 4, 4, dtype=torch.float64)

    def score(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return net(tokens, boxes, question, mask).logits.gather(1, ANSWER[:, None])[:, 0]

    def internals(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, object]:
        with net.record_internals() as recorded:
            scores = score(tokens, mask)
        return scores, recorded

    return DecisionFunction(score, internals=internals)


def manual_maps(
    net: ViTVQA, tokens: torch.Tensor, question: torch.Tensor, mask: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The attention maps and d score / d map, by a forward written out here: layer ``l``'s map
    is made a leaf and the rest of the forward reads it (one forward per layer, so the
    gradient of map ``l`` includes its paths through the later maps, as autograd's does)."""
    batch, length = question.shape
    words = net.token_proj(net.embedding(question)) + net.types[0]
    text = torch.cat([net.cls.expand(batch, 1, -1), words], 1) + net.positions[: length + 1]
    x0 = torch.cat([text, tokens + net.types[1]], 1)
    keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool), question != 0, mask], 1)

    def run(leaf_layer: int) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        x, maps, leaf = x0, [], None
        for index, layer in enumerate(net.layers):
            h = layer.norm1(x)
            q, k, v = layer.attention.qkv(h).view(batch, -1, 3, 2, 4).permute(2, 0, 3, 1, 4)
            scores = q @ k.transpose(-1, -2) / math.sqrt(4)
            weights = masked_softmax(scores, keep[:, None, None, :].expand_as(scores))
            if index == leaf_layer:
                leaf = weights.detach().requires_grad_(True)
                weights = leaf
            maps.append(weights.detach())
            mixed = (weights @ v).transpose(1, 2).reshape(batch, -1, 8)
            x = x + layer.attention.out(mixed)
            x = x + layer.mlp(layer.norm2(x))
        logits = net.classifier(net.norm(x[:, 0]))
        assert leaf is not None
        return logits.gather(1, ANSWER[:, None])[:, 0], maps, leaf

    maps, gradients = [], []
    for layer in range(len(net.layers)):
        score, maps, leaf = run(layer)
        (gradient,) = torch.autograd.grad(score.sum(), leaf)
        gradients.append(gradient)
    return maps, gradients


def test_token_gradients_equal_captum() -> None:
    net, tokens, question, mask = setup()
    fn = decision(net, question)
    forward = lambda t: fn(t, mask)  # noqa: E731
    saliency = Saliency(forward).attribute(tokens, abs=False).sum(-1).masked_fill(~mask, 0)
    ixg = InputXGradient(forward).attribute(tokens).sum(-1).masked_fill(~mask, 0)
    torch.testing.assert_close(TokenGradient(use_shift=False).attribute(fn, tokens, mask), saliency)
    torch.testing.assert_close(TokenInputXGradient().attribute(fn, tokens, mask), ixg)


def test_attention_gradcam_chefer_and_rollout_match_their_references() -> None:
    net, tokens, question, mask = setup()
    fn = decision(net, question)
    maps, gradients = manual_maps(net, tokens, question, mask)
    start, patches = question.shape[1] + 1, range(question.shape[1] + 1, question.shape[1] + 5)
    length = maps[0].shape[-1]
    gradcam = torch.zeros(3, 4, dtype=torch.float64)
    chefer = torch.zeros(3, 4, dtype=torch.float64)
    roll = torch.zeros(3, 4, dtype=torch.float64)
    for b in range(3):
        for j, k in enumerate(patches):  # Grad-CAM: last layer, [CLS] row, mean over heads
            gradcam[b, j] = (
                sum(maps[-1][b, h, 0, k] * max(gradients[-1][b, h, 0, k], 0) for h in range(2)) / 2
            )
        relevance, flow = torch.eye(length, dtype=torch.float64), torch.eye(length).double()
        for a, g in zip(maps, gradients, strict=True):
            weighted = torch.zeros(length, length, dtype=torch.float64)
            mixed = torch.zeros(length, length, dtype=torch.float64)
            for i in range(length):
                for k in range(length):
                    weighted[i, k] = (
                        sum(max(a[b, h, i, k] * g[b, h, i, k], 0) for h in range(2)) / 2
                    )
                    mixed[i, k] = 0.5 * (a[b, 0, i, k] + a[b, 1, i, k]) / 2 + 0.5 * (i == k)
                mixed[i] /= mixed[i].sum()
            relevance = relevance + weighted @ relevance
            flow = mixed @ flow
        chefer[b] = relevance[0, start:]
        roll[b] = flow[0, start:]
    chefer, roll, gradcam = (t.masked_fill(~mask, 0) for t in (chefer, roll, gradcam))
    torch.testing.assert_close(AttentionGradCAM().attribute(fn, tokens, mask), gradcam)
    torch.testing.assert_close(CheferRelevance().attribute(fn, tokens, mask), chefer)
    torch.testing.assert_close(AttentionRollout().attribute(fn, tokens, mask), roll)
    assert gradcam.abs().sum() > 0 and (chefer - roll).abs().sum() > 0


@pytest.mark.parametrize("method", [AttentionGradCAM(), CheferRelevance(), AttentionRollout()])
def test_differentiable_for_training(method: object) -> None:
    net, tokens, question, mask = setup()
    values = method.attribute(decision(net, question), tokens, mask, create_graph=True)
    (gradient,) = torch.autograd.grad(values.pow(2).sum(), net.layers[0].attention.qkv.weight)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0
    assert not method.attribute(decision(net, question), tokens, mask).requires_grad


def test_a_method_needing_attention_maps_on_a_model_without_them_is_refused() -> None:
    info = VQADataInfo(("a", "b"), ("<pad>", "x"), 4, 3)
    net = functools.partial(TransformerVQA, embedding_dim=4, hidden_dim=4, layers=1, heads=1)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match=r"AttentionRollout.*backbone TransformerVQA.*internals"):
        VQAModule(net, info, optimizer, eval_importance="attention_rollout")


@pytest.mark.parametrize("method", [AttentionGradCAM(), CheferRelevance(), AttentionRollout()])
def test_one_pass_and_inference_mode(method: object) -> None:
    net, tokens, question, mask = setup()
    fn, calls = decision(net, question), []
    counting = DecisionFunction(
        fn, internals=lambda t, m: (calls.append(len(t)), fn.internals(t, m))[1]
    )
    method.attribute(counting, tokens, mask)
    assert sum(calls) == method.forward_passes(4) * 3
    with torch.inference_mode():
        if method.uses_gradients:
            with pytest.raises(ValueError, match="inference_mode"):
                method.attribute(fn, tokens.clone(), mask)
