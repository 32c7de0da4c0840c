"""The special tokens of the two vocabularies, and their fixed indices.

Question vocabulary (VQA, built by :func:`hint_lightning.text.tokenize.build_token_vocab`):
``<pad>`` at :data:`PAD_INDEX` 0, ``<unk>`` at :data:`QUESTION_UNK_INDEX` 1, then the tokens.

Caption vocabulary (COCO and the easy-VQA captions): ``<pad>`` 0, ``<bos>`` :data:`BOS_INDEX`
1, ``<eos>`` :data:`EOS_INDEX` 2, ``<unk>`` :data:`CAPTION_UNK_INDEX` 3, then the words. Teacher
forcing reads ``[<bos>, w_1, ..., w_{T-1}]`` and predicts ``[w_1, ..., w_{T-1}, <eos>]``.

Both vocabularies are stored with their special tokens first, so a store's vocabulary file
starts with :data:`QUESTION_SPECIAL_TOKENS` or :data:`CAPTION_SPECIAL_TOKENS`. This module
imports nothing: models, stores, prepare and data all take the tokens from here.

Example:
    >>> CAPTION_SPECIAL_TOKENS.index(EOS_TOKEN) == EOS_INDEX
    True
    >>> QUESTION_SPECIAL_TOKENS[QUESTION_UNK_INDEX]
    '<unk>'
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BOS_INDEX",
    "BOS_TOKEN",
    "CAPTION_SPECIAL_TOKENS",
    "CAPTION_UNK_INDEX",
    "EOS_INDEX",
    "EOS_TOKEN",
    "PAD_INDEX",
    "PAD_TOKEN",
    "QUESTION_SPECIAL_TOKENS",
    "QUESTION_UNK_INDEX",
    "UNK_TOKEN",
]

PAD_TOKEN: Final = "<pad>"
"""Right padding of token sequences (both vocabularies)."""
BOS_TOKEN: Final = "<bos>"
"""The first input token of every caption."""
EOS_TOKEN: Final = "<eos>"
"""The last target token of every caption; decoding stops after it."""
UNK_TOKEN: Final = "<unk>"
"""Every word outside the vocabulary."""

PAD_INDEX: Final = 0
"""Index of ``<pad>`` in both vocabularies (decoders write it after ``<eos>``)."""

QUESTION_SPECIAL_TOKENS: Final[tuple[str, ...]] = (PAD_TOKEN, UNK_TOKEN)
"""The first entries of every question vocabulary."""
QUESTION_UNK_INDEX: Final = 1
"""Index of ``<unk>`` in a question vocabulary."""

CAPTION_SPECIAL_TOKENS: Final[tuple[str, ...]] = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
"""The first entries of every caption vocabulary."""
BOS_INDEX: Final = 1
"""Index of ``<bos>`` in a caption vocabulary."""
EOS_INDEX: Final = 2
"""Index of ``<eos>`` in a caption vocabulary."""
CAPTION_UNK_INDEX: Final = 3
"""Index of ``<unk>`` in a caption vocabulary."""
