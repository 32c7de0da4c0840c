"""The UpDn VQA model: shapes, masking, and padding invariance."""

from __future__ import annotations

import torch

from hint_lightning.models.updn_vqa import UpDnVQA


def tiny_model(**kwargs: object) -> UpDnVQA:
    torch.manual_seed(0)
    sizes = dict(
        vocab_size=12,
        num_answers=5,
        feature_dim=6,
        embedding_dim=4,
        hidden_dim=8,
        classifier_dim=10,
    )
    return UpDnVQA(**{**sizes, **kwargs}).eval()


def test_output_shapes_and_attention_is_a_distribution() -> None:
    model = tiny_model()
    logits, attention = model(
        torch.randn(3, 7, 6), torch.rand(3, 7, 4), torch.randint(1, 12, (3, 5))
    )
    assert logits.shape == (3, 5) and attention.shape == (3, 7)
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(3))


def test_padded_proposals_get_no_attention_and_do_not_change_the_answer() -> None:
    model = tiny_model()
    features, boxes = torch.randn(1, 4, 6), torch.rand(1, 4, 4)
    tokens = torch.tensor([[3, 4, 5]])
    logits, _ = model(features, boxes, tokens)
    padded_features = torch.cat([features, 100 * torch.randn(1, 2, 6)], dim=1)
    padded_boxes = torch.cat([boxes, torch.rand(1, 2, 4)], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    padded_logits, attention = model(padded_features, padded_boxes, tokens, mask)
    assert torch.all(attention[0, 4:] == 0)
    torch.testing.assert_close(padded_logits, logits)


def test_trailing_padding_tokens_do_not_change_the_question_encoding() -> None:
    model = tiny_model()
    features, boxes = torch.randn(1, 3, 6), torch.rand(1, 3, 4)
    short, _ = model(features, boxes, torch.tensor([[3, 4]]))
    padded, _ = model(features, boxes, torch.tensor([[3, 4, 0, 0, 0]]))
    torch.testing.assert_close(short, padded)


def test_boxes_are_used_only_when_asked() -> None:
    features, tokens = torch.randn(2, 3, 6), torch.tensor([[1, 2], [3, 0]])
    plain = tiny_model()
    a, _ = plain(features, torch.rand(2, 3, 4), tokens)
    b, _ = plain(features, torch.rand(2, 3, 4), tokens)
    torch.testing.assert_close(a, b)
    with_boxes = tiny_model(use_boxes=True)
    c, _ = with_boxes(features, torch.rand(2, 3, 4), tokens)
    d, _ = with_boxes(features, torch.rand(2, 3, 4), tokens)
    assert not torch.allclose(c, d)


def test_reference_sizes_by_default() -> None:
    model = UpDnVQA(vocab_size=100, num_answers=3129)
    assert model.question_encoder.embedding.embedding_dim == 300
    assert model.question_encoder.gru.hidden_size == 1024
    assert model.classifier[0].out_features == 2048
    assert model.classifier[3].out_features == 3129
