"""Question tokenization shared by every VQA dataset.

The rule is the one of the common UpDn code (``Dictionary.tokenize`` of
``hengyuan-hu/bottom-up-attention-vqa``): lowercase, delete ``,`` and ``?``, split ``'s`` off
its word (``"man's"`` -> ``"man 's"``), then split on whitespace. Other punctuation stays part
of its word, exactly as there.

Vocabularies are plain tuples: index 0 is ``<pad>``, index 1 is ``<unk>``
(:mod:`hint_lightning.text.tokens`), the other tokens follow in sorted order, so a vocabulary
depends only on the set of tokens (and ``min_count``), never on the order of the questions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from hint_lightning.text.tokens import PAD_TOKEN, QUESTION_UNK_INDEX, UNK_TOKEN

__all__ = [
    "build_token_vocab",
    "encode_questions",
    "encode_tokens",
    "tokenize",
]


def tokenize(question: str) -> list[str]:
    """Splits a question into lowercase tokens, the way the common UpDn code does.

    Args:
        question: A question, e.g. ``"What color is the man's shirt?"``.

    Returns:
        The tokens, e.g. ``["what", "color", "is", "the", "man", "'s", "shirt"]``.

    Example:
        >>> tokenize("What color is the man's shirt, left?")
        ['what', 'color', 'is', 'the', 'man', "'s", 'shirt', 'left']
        >>> tokenize("  Is  there a   dog? ")
        ['is', 'there', 'a', 'dog']
    """
    text = question.lower().replace(",", "").replace("?", "").replace("'s", " 's")
    return text.split()


def build_token_vocab(tokenized: Iterable[Sequence[str]], min_count: int = 1) -> tuple[str, ...]:
    """Builds a deterministic token vocabulary.

    Args:
        tokenized: Token lists, one per question (e.g. from :func:`tokenize`).
        min_count: Keep the tokens that occur at least this often (over all questions).

    Returns:
        ``("<pad>", "<unk>", *sorted tokens)``. The special tokens are never repeated, even if a
        question contains them literally.

    Raises:
        ValueError: If ``min_count < 1``.

    Example:
        >>> build_token_vocab([["is", "it", "red"], ["is", "it", "blue"]])
        ('<pad>', '<unk>', 'blue', 'is', 'it', 'red')
        >>> build_token_vocab([["is", "it", "red"], ["is", "it", "blue"]], min_count=2)
        ('<pad>', '<unk>', 'is', 'it')
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts: Counter[str] = Counter()
    for tokens in tokenized:
        counts.update(tokens)
    kept = sorted(
        t for t, c in counts.items() if c >= min_count and t not in (PAD_TOKEN, UNK_TOKEN)
    )
    return (PAD_TOKEN, UNK_TOKEN, *kept)


def encode_tokens(
    tokens: Sequence[str], token_index: Mapping[str, int], max_length: int = 14
) -> np.ndarray:
    """Turns tokens into a fixed-length id array: truncated, right-padded with 0.

    Args:
        tokens: The question's tokens.
        token_index: Token -> id, e.g. ``{t: i for i, t in enumerate(vocab)}``.
        max_length: T, the output length.

    Returns:
        Int64 array of shape [T]: ids of the first ``T`` tokens (unknown tokens -> 1), then 0.

    Example:
        >>> vocab = ("<pad>", "<unk>", "is", "it", "red")
        >>> index = {t: i for i, t in enumerate(vocab)}
        >>> encode_tokens(["is", "it", "green"], index, max_length=5)
        array([2, 3, 1, 0, 0])
        >>> encode_tokens(["is", "it", "red"], index, max_length=2)
        array([2, 3])
    """
    out = np.zeros(max_length, dtype=np.int64)
    ids = [token_index.get(t, QUESTION_UNK_INDEX) for t in tokens[:max_length]]
    out[: len(ids)] = ids
    return out


def encode_questions(
    questions: Sequence[str], token_index: Mapping[str, int], max_length: int = 14
) -> np.ndarray:
    """Tokenizes and encodes many questions (each distinct text is encoded once).

    Args:
        questions: Q question texts.
        token_index: Token -> id.
        max_length: T, the encoded length.

    Returns:
        Int64 array of shape [Q, T].

    Example:
        >>> index = {"<pad>": 0, "<unk>": 1, "is": 2, "it": 3, "red": 4}
        >>> encode_questions(["Is it red?", "is it?"], index, max_length=4)
        array([[2, 3, 4, 0],
               [2, 3, 0, 0]])
    """
    distinct: dict[str, int] = {}
    inverse = np.fromiter(
        (distinct.setdefault(q, len(distinct)) for q in questions), dtype=np.int64, count=-1
    )
    table = np.zeros((len(distinct), max_length), dtype=np.int64)
    for text, row in distinct.items():
        table[row] = encode_tokens(tokenize(text), token_index, max_length)
    return table[inverse] if len(questions) else np.zeros((0, max_length), dtype=np.int64)
