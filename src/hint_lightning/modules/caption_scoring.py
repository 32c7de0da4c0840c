"""Caption results as text and their scores: decoded word ids to captions, corpus metrics.

``score_results`` scores ``[{"image_id", "caption"}]`` against reference captions with the
official coco-caption pipeline (``scorer="coco"``: PTB tokenizer, BLEU, METEOR, ROUGE-L,
CIDEr-D; Java) or a Java-free scorer on lower-cased alphanumeric tokens (``"tokenized"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import torch  # noqa: F401  (the doctest examples use it)
from torch import Tensor

from hint_lightning.metrics.caption import score_captions, score_tokenized
from hint_lightning.models.updn_captioner import BOS_INDEX, EOS_INDEX, PAD_INDEX, UNK_INDEX

__all__ = ["SCORERS", "UNK_WORD", "score_results", "words_to_captions"]

SCORERS: Final[tuple[str, ...]] = ("coco", "tokenized")
"""Accepted values of ``scorer``."""
UNK_WORD: Final = "UNK"
"""How a generated ``<unk>`` is written in results (the neuraltalk2 convention)."""


def words_to_captions(words: Tensor, vocab: Sequence[str]) -> list[str]:
    """Decoded word ids as caption strings: up to ``<eos>``, specials dropped, ``<unk>`` as UNK.

    Args:
        words: ``[B, L]`` ids from a decoder (``<eos>`` included, 0 after it).
        vocab: the caption vocabulary.

    Returns:
        B captions (words joined by single spaces).

    Example:
        >>> vocab = ("<pad>", "<bos>", "<eos>", "<unk>", "a", "dog")
        >>> words_to_captions(torch.tensor([[4, 5, 2, 0], [4, 3, 5, 5]]), vocab)
        ['a dog', 'a UNK dog dog']
    """
    ended = (words == EOS_INDEX).long().cumsum(dim=1) > 0
    words = words.masked_fill(ended, PAD_INDEX)
    names = [UNK_WORD if i == UNK_INDEX else word for i, word in enumerate(vocab)]
    special = {PAD_INDEX, BOS_INDEX, EOS_INDEX}
    return [" ".join(names[i] for i in row if i not in special) for row in words.tolist()]


def _simple_tokens(text: str) -> str:
    """Lower-cased alphanumeric tokens joined by spaces (the Java-free scorer's tokenizer)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def score_results(
    results: Sequence[Mapping[str, Any]],
    references: Mapping[int, Sequence[str]],
    scorer: str = "coco",
    spice: bool = False,
) -> dict[str, float]:
    """Corpus caption scores of ``[{"image_id", "caption"}]`` against references.

    Args:
        results: one caption per image.
        references: image id -> reference captions (raw text).
        scorer: ``"coco"`` (official: PTB tokenizer, BLEU, METEOR, ROUGE-L, CIDEr-D; Java) or
            ``"tokenized"`` (lower-cased alphanumeric tokens, no METEOR, no Java).
        spice: also SPICE (``"coco"`` only; Java 8 and Stanford CoreNLP, downloaded at first
            use: impossible offline, see :func:`~hint_lightning.metrics.caption.score_captions`).

    Returns:
        Metric name -> score.

    Example:
        >>> refs = {1: ["A dog."], 2: ["a cat"]}
        >>> results = [{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": "a cat"}]
        >>> round(score_results(results, refs, "tokenized")["Bleu_1"], 6)
        1.0
    """
    if scorer == "coco":
        return score_captions(results, references, spice=spice)
    if scorer != "tokenized" or spice:
        raise ValueError(
            f"scorer must be one of {SCORERS} (spice only with 'coco'), got {scorer!r}, "
            f"spice={spice}"
        )
    res = {int(r["image_id"]): [_simple_tokens(r["caption"])] for r in results}
    gts = {i: [_simple_tokens(t) for t in references[i]] for i in res if i in references}
    missing = sorted(set(res) - set(gts))
    if missing:
        raise ValueError(f"images {missing[:5]} have results but no references")
    return score_tokenized(gts, res)
