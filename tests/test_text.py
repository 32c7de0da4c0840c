"""Tests of the shared question tokenization (hint_lightning.text.tokenize)."""

from __future__ import annotations

import numpy as np
import pytest

from hint_lightning.text.tokenize import (
    build_token_vocab,
    encode_questions,
    encode_tokens,
    tokenize,
)
from hint_lightning.text.tokens import PAD_INDEX, PAD_TOKEN, UNK_TOKEN
from hint_lightning.text.tokens import QUESTION_UNK_INDEX as UNK_INDEX


@pytest.mark.parametrize(
    ("question", "tokens"),
    [
        ("What color is the shape?", ["what", "color", "is", "the", "shape"]),
        ("Is the man's hat red?", ["is", "the", "man", "'s", "hat", "red"]),
        ("Left, or right?", ["left", "or", "right"]),
        ("  Many   SPACES\there ", ["many", "spaces", "here"]),
        ("What is it.", ["what", "is", "it."]),  # other punctuation stays, as in UpDn code
        ("", []),
    ],
)
def test_tokenize_follows_updn_rule(question: str, tokens: list[str]) -> None:
    assert tokenize(question) == tokens


def test_vocab_special_tokens_first_then_sorted() -> None:
    vocab = build_token_vocab([["b", "a"], ["c", "a"]])
    assert vocab == (PAD_TOKEN, UNK_TOKEN, "a", "b", "c")
    assert vocab.index(PAD_TOKEN) == PAD_INDEX and vocab.index(UNK_TOKEN) == UNK_INDEX


def test_vocab_is_independent_of_question_order() -> None:
    questions = [tokenize(q) for q in ["is it red?", "what color is it?", "is there a dog?"]]
    assert build_token_vocab(questions) == build_token_vocab(questions[::-1])


def test_vocab_min_count_and_no_duplicate_specials() -> None:
    vocab = build_token_vocab([["x", "y", "<unk>"], ["x", "<pad>"]], min_count=2)
    assert vocab == (PAD_TOKEN, UNK_TOKEN, "x")
    with pytest.raises(ValueError, match="min_count"):
        build_token_vocab([["x"]], min_count=0)


def test_encode_pads_truncates_and_maps_unknown() -> None:
    index = {t: i for i, t in enumerate(build_token_vocab([["is", "it", "red"]]))}
    padded = encode_tokens(["is", "it", "blue"], index, max_length=6)
    assert padded.dtype == np.int64 and padded.shape == (6,)
    assert padded.tolist() == [index["is"], index["it"], UNK_INDEX, 0, 0, 0]
    cut = encode_tokens(["red"] * 20, index, max_length=14)
    assert cut.tolist() == [index["red"]] * 14
    assert encode_tokens([], index).tolist() == [0] * 14


def test_encode_questions_matches_encode_tokens() -> None:
    questions = ["Is it red?", "what color is it?", "Is it red?", "unknown words here"]
    vocab = build_token_vocab(tokenize(q) for q in questions[:3])
    index = {t: i for i, t in enumerate(vocab)}
    encoded = encode_questions(questions, index, max_length=5)
    assert encoded.shape == (4, 5) and encoded.dtype == np.int64
    for row, question in zip(encoded, questions, strict=True):
        np.testing.assert_array_equal(row, encode_tokens(tokenize(question), index, 5))
    assert encode_questions([], index).shape == (0, 14)
