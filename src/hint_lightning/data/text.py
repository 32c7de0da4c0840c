"""Moved: question tokenization is :mod:`hint_lightning.text.tokenize` (tokens: ``text.tokens``)."""

from __future__ import annotations

from hint_lightning.text.tokenize import (
    build_token_vocab,
    encode_questions,
    encode_tokens,
    tokenize,
)
from hint_lightning.text.tokens import PAD_INDEX, PAD_TOKEN, UNK_TOKEN
from hint_lightning.text.tokens import QUESTION_UNK_INDEX as UNK_INDEX

__all__ = [
    "PAD_INDEX",
    "PAD_TOKEN",
    "UNK_INDEX",
    "UNK_TOKEN",
    "build_token_vocab",
    "encode_questions",
    "encode_tokens",
    "tokenize",
]
