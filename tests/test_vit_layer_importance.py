"""Input x gradient at a later layer of the ViT, and the ``[CLS]``-only last layer that keeps
HINT's double backward cheap: Captum's ``LayerGradientXActivation`` on the last block's input is
the reference, and the training term is checked against a forward hook written here."""

from __future__ import annotations

import warnings

import pytest
import torch
from captum.attr import LayerGradientXActivation

from hint_lightning.importance import DecisionFunction, TokenInputXGradient
from hint_lightning.models.transformer_vqa import TransformerVQA
from hint_lightning.modules.vqa_module import soft_target_bce
from hint_lightning.objectives.hint import hint_ranking_loss
from tests.test_transformer_importance import ANSWER, decision, setup
from tests.test_vit_vqa import batch, hint_module


def test_the_cls_only_last_layer_gives_the_full_layers_output() -> None:
    net, tokens, question, mask = setup()
    boxes = torch.zeros(3, 4, 4, dtype=torch.float64)
    fast = net(tokens, boxes, question, mask)
    with net.record_internals() as internals:  # every map recorded: the full last layer
        full = net(tokens, boxes, question, mask)
    assert internals.attentions[-1].shape[2] == internals.attentions[-1].shape[3]
    torch.testing.assert_close(fast.logits, full.logits)
    torch.testing.assert_close(fast.attention, full.attention)
    with net.record_internals(attention_maps=False) as light:
        net(tokens, boxes, question, mask)
    assert light.attentions == [] and len(light.layer_tokens) == len(net.layers)
    assert light.layer_tokens[0].shape == tokens.shape


def test_transformer_vqa_reads_cls_from_a_one_query_last_layer() -> None:
    torch.manual_seed(0)
    net = TransformerVQA(9, 3, feature_dim=5, embedding_dim=4, hidden_dim=8, heads=2, layers=2)
    net = net.double().eval()
    features = torch.randn(2, 3, 5, dtype=torch.float64)
    boxes = torch.rand(2, 3, 4, dtype=torch.float64)
    question = torch.tensor([[1, 2, 0], [3, 0, 0]])
    got = net(features, boxes, question, torch.tensor([[True] * 3, [True, False, False]]))
    calls: list[int | None] = []
    for layer in net.layers:
        original = layer.forward

        def every_row(x, keep, queries=None, _f=original):  # type: ignore[no-untyped-def]
            calls.append(queries)
            return _f(x, keep, None)

        layer.forward = every_row  # type: ignore[method-assign]
    want = net(features, boxes, question, torch.tensor([[True] * 3, [True, False, False]]))
    assert calls == [None, 1]  # the last layer asked for [CLS] only
    torch.testing.assert_close(got.logits, want.logits)
    torch.testing.assert_close(got.attention, want.attention)


def test_last_layer_input_x_gradient_equals_captum_layer_gradient_x_activation() -> None:
    net, tokens, question, mask = setup()
    fn = decision(net, question)
    boxes = torch.zeros(3, 4, 4, dtype=torch.float64)

    def forward(t: torch.Tensor) -> torch.Tensor:
        return net(t, boxes, question, mask).logits.gather(1, ANSWER[:, None])[:, 0]

    # Captum hooks the input of the last block's first norm: the block's input, the sequence
    # [CLS] q_1..q_T p_1..p_N (the gradient with respect to that tensor: every path, residual too)
    reference = LayerGradientXActivation(forward, net.layers[-1].norm1).attribute(
        tokens, attribute_to_layer_input=True
    )
    start = question.shape[1] + 1
    want = reference.sum(-1)[:, start:].masked_fill(~mask, 0)
    got = TokenInputXGradient(layer=-1).attribute(fn, tokens, mask)
    torch.testing.assert_close(got, want)
    first = TokenInputXGradient(layer=0).attribute(fn, tokens, mask)
    assert not torch.allclose(first, got)  # another layer, other numbers


def test_a_layer_that_does_not_exist_or_a_backbone_without_internals_is_named() -> None:
    net, tokens, question, mask = setup()
    with pytest.raises(ValueError, match=r"layer 5 does not exist: .* tokens of 2 layers"):
        TokenInputXGradient(layer=5).attribute(decision(net, question), tokens, mask)
    with pytest.raises(ValueError, match="needs what backbone UpDnVQA does not offer: internals"):
        TokenInputXGradient(layer=-1).check_capabilities({"mask", "attention"}, "backbone UpDnVQA")
    plain = DecisionFunction(lambda t, m: t.sum(dim=(1, 2)))
    with pytest.raises(ValueError, match="internals"):
        TokenInputXGradient(layer=-1).attribute(plain, tokens, mask)


def test_hint_at_the_last_layer_is_the_hand_computed_term_from_one_pass() -> None:
    module = hint_module({"name": "token_input_x_gradient", "layer": -1})
    data = batch()
    net = module.net
    forwards = []
    net.register_forward_hook(lambda *args: forwards.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(data, 0)
    assert len(forwards) == 1  # the importance came from the main pass

    captured: list[torch.Tensor] = []
    hook = net.layers[-1].register_forward_pre_hook(lambda mod, args: captured.append(args[0]))
    tokens = net.embed_proposals(data["features"])
    logits, _ = net(tokens, data["boxes"], data["question_tokens"], data["proposal_mask"])
    hook.remove()
    score = logits.gather(1, data["targets"].argmax(1, keepdim=True))[:, 0]
    (gradient,) = torch.autograd.grad(score.sum(), captured[0], create_graph=True)
    start = data["question_tokens"].shape[1] + 1
    alpha = (gradient * captured[0]).sum(-1)[:, start:]
    human, mask = data["human_importance"], data["proposal_mask"]
    term = hint_ranking_loss(alpha, human, mask)
    want = soft_target_bce(logits, data["targets"]) + 2.0 * term.mean()
    assert term[0] > 0
    torch.testing.assert_close(loss, want)
    weight = net.layers[0].attention.qkv.weight  # below the probe: first-order paths only
    torch.testing.assert_close(
        torch.autograd.grad(loss, weight)[0], torch.autograd.grad(want, weight)[0]
    )
