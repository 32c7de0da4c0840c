"""Karpathy-split captions -> vocabulary, caption stores and COCO-format references.

Vocabulary (:func:`build_caption_vocab`): ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2,
``<unk>`` = 3, then every token seen MORE than ``threshold`` times (5: the usual threshold of
neuraltalk2 / NBT) in the training captions of the family (whole captions, before the cut),
by decreasing count, ties alphabetically. Stored as a JSON list (index = id).

Caption store (:func:`write_caption_store`, :mod:`hint_lightning.stores.captions`; ``C`` captions,
``I`` images, ``T = max_words + 2`` = 18)::

    image_ids [I] int64          the split's images, in dataset_coco.json order
    captions [C, T] int32        <bos> w_1 .. w_L <eos> <pad> ..., L <= max_words (16): longer
                                 captions are cut after 16 words; rare words are <unk>
    lengths [C] int32            L (words, without <bos> and <eos>)
    caption_image [C] int32      row of the caption's image in image_ids
    caption_ids [C] int64        the sentence's sentid (-1 when the file has none)
    word_category [C, T] int16   COCO category id of the visual word that the token
                                 captions[c, j] completes (the last token of a two-word
                                 phrase; hint_lightning.text.visual_words), 0 elsewhere and
                                 where that token is <unk>
    attrs: format_version, family, split, max_words, vocab_size, feature_store, sources (JSON),
           visual_word_duplicates

Captions whose tokens are empty are skipped (:func:`empty_captions` lists them for the
report). Images keep their row in ``image_ids`` even when all their captions are empty.

References (:func:`caption_references`): the COCO caption-annotation format that
pycocoevalcap's ``COCO`` reader takes, for every image of a split::

    {"info": {...}, "images": [{"id", "file_name"}],
     "annotations": [{"image_id", "id", "caption"}], "type": "captions"}

``caption`` is the ``raw`` text (stripped; metrics tokenize it themselves), ``id`` the
``sentid`` (sequential numbers when sentids are missing or repeated).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from hint_lightning.prepare.coco_splits import KarpathyImage
from hint_lightning.stores.captions import write_caption_arrays, write_references
from hint_lightning.text.tokens import (
    BOS_INDEX,
    CAPTION_SPECIAL_TOKENS,
    CAPTION_UNK_INDEX,
    EOS_INDEX,
    PAD_INDEX,
)
from hint_lightning.text.visual_words import VisualWords

__all__ = [
    "MAX_WORDS",
    "WORD_COUNT_THRESHOLD",
    "build_caption_vocab",
    "caption_references",
    "check_features",
    "empty_captions",
    "encode_caption",
    "write_caption_store",
    "write_references",
]

MAX_WORDS: Final = 16
"""Words kept per caption (the rest is cut)."""
WORD_COUNT_THRESHOLD: Final = 5
"""Tokens seen more than this many times in training captions enter the vocabulary."""


def build_caption_vocab(
    captions: Iterable[Sequence[str]], threshold: int = WORD_COUNT_THRESHOLD
) -> list[str]:
    """The caption vocabulary: special tokens, then tokens seen more than ``threshold`` times.

    Args:
        captions: Token lists (the training captions).
        threshold: Keep tokens with ``count > threshold``.

    Returns:
        ``["<pad>", "<bos>", "<eos>", "<unk>", ...]`` with the kept tokens by decreasing count,
        ties alphabetically.

    Example:
        >>> build_caption_vocab([["a", "dog"], ["a", "cat"], ["a", "dog"]], threshold=1)
        ['<pad>', '<bos>', '<eos>', '<unk>', 'a', 'dog']
    """
    counts = Counter(token for caption in captions for token in caption)
    kept = sorted((t for t, n in counts.items() if n > threshold), key=lambda t: (-counts[t], t))
    return [*CAPTION_SPECIAL_TOKENS, *(t for t in kept if t not in CAPTION_SPECIAL_TOKENS)]


def encode_caption(
    tokens: Sequence[str], index: Mapping[str, int], max_words: int = MAX_WORDS
) -> np.ndarray:
    """``<bos> w_1 .. w_L <eos>`` padded with ``<pad>``, cut after ``max_words`` words.

    Args:
        tokens: The caption's tokens.
        index: Token -> id (unknown tokens become ``<unk>``).
        max_words: L at most.

    Returns:
        ``[max_words + 2]`` int32.

    Example:
        >>> encode_caption(["a", "red", "dog"], {"a": 4, "dog": 5}, max_words=2)
        array([1, 4, 3, 2], dtype=int32)
    """
    row = np.full(max_words + 2, PAD_INDEX, dtype=np.int32)
    words = [index.get(t, CAPTION_UNK_INDEX) for t in tokens[:max_words]]
    row[0] = BOS_INDEX
    row[1 : len(words) + 1] = words
    row[len(words) + 1] = EOS_INDEX
    return row


def empty_captions(images: Sequence[KarpathyImage]) -> list[dict[str, Any]]:
    """The captions with no token, as ``{"image_id", "sentid", "raw"}``."""
    return [
        {"image_id": image.cocoid, "sentid": sentence.sentid, "raw": sentence.raw}
        for image in images
        for sentence in image.sentences
        if not sentence.tokens
    ]


def check_features(
    image_ids: Sequence[int] | np.ndarray,
    feature_ids: np.ndarray,
    karpathy_path: str | os.PathLike[str],
    store_path: str | os.PathLike[str],
) -> None:
    """Raises ``ValueError`` naming the first image without features, the Karpathy file and
    the feature store.

    Args:
        image_ids: ``[I]`` images that need features.
        feature_ids: ``[J]`` image ids of the feature store.
        karpathy_path: The Karpathy file (for the message).
        store_path: The feature store (for the message).
    """
    ids = np.asarray(image_ids, dtype=np.int64)
    missing = ids[~np.isin(ids, feature_ids)]
    if missing.size:
        more = f" (and {missing.size - 1} more)" if missing.size > 1 else ""
        raise ValueError(
            f"image {int(missing[0])}{more} of {karpathy_path} has no features in the feature "
            f"store {store_path}"
        )


def _caption_rows(
    images: Sequence[KarpathyImage],
    positions: Sequence[int],
    index: Mapping[str, int],
    visual_words: VisualWords,
    max_words: int,
) -> dict[str, np.ndarray]:
    """The arrays of a caption store."""
    width = max_words + 2
    rows, lengths, owners, sentids, categories = [], [], [], [], []
    for row, position in enumerate(positions):
        for sentence in images[position].sentences:
            if not sentence.tokens:
                continue
            tokens = sentence.tokens[:max_words]
            encoded = encode_caption(tokens, index, max_words)
            category = np.zeros(width, dtype=np.int16)
            for word, category_id in visual_words.find(tokens):
                if encoded[word + 1] != CAPTION_UNK_INDEX:
                    category[word + 1] = category_id
            rows.append(encoded)
            categories.append(category)
            lengths.append(len(tokens))
            owners.append(row)
            sentids.append(sentence.sentid)
    return {
        "image_ids": np.array([images[p].cocoid for p in positions], dtype=np.int64),
        "captions": np.array(rows, dtype=np.int32).reshape(-1, width),
        "lengths": np.array(lengths, dtype=np.int32),
        "caption_image": np.array(owners, dtype=np.int32),
        "caption_ids": np.array(sentids, dtype=np.int64),
        "word_category": np.array(categories, dtype=np.int16).reshape(-1, width),
    }


def write_caption_store(
    path: str | os.PathLike[str],
    images: Sequence[KarpathyImage],
    positions: Sequence[int],
    vocab: Sequence[str],
    visual_words: VisualWords,
    *,
    attrs: Mapping[str, Any],
    max_words: int = MAX_WORDS,
) -> dict[str, int]:
    """Writes the caption store of one split atomically (layout: module docstring).

    Args:
        path: The ``.h5`` file.
        images: The Karpathy file's images.
        positions: The split's images (positions in ``images``).
        vocab: The family's vocabulary.
        visual_words: The visual-word mapping (for ``word_category``).
        attrs: Root attributes to add (family, split, feature_store, sources, ...).
        max_words: Words kept per caption.

    Returns:
        ``{"images", "captions", "visual_words"}`` counts.
    """
    index = {token: i for i, token in enumerate(vocab)}
    arrays = _caption_rows(images, positions, index, visual_words, max_words)
    write_caption_arrays(path, arrays, {"max_words": max_words, "vocab_size": len(vocab), **attrs})
    return {
        "images": int(arrays["image_ids"].shape[0]),
        "captions": int(arrays["captions"].shape[0]),
        "visual_words": int(np.count_nonzero(arrays["word_category"])),
    }


def _annotation_ids(sentences: Sequence[Any]) -> list[int]:
    """The sentids when all are set and distinct, else 1, 2, ..."""
    sentids = [s.sentid for s in sentences]
    if all(i >= 0 for i in sentids) and len(set(sentids)) == len(sentids):
        return sentids
    return list(range(1, len(sentids) + 1))


def caption_references(
    images: Sequence[KarpathyImage], positions: Sequence[int], description: str
) -> dict[str, Any]:
    """COCO-format references of the images at ``positions`` (every one of them).

    Args:
        images: The Karpathy file's images.
        positions: The split's images.
        description: The ``info.description``.

    Returns:
        ``{"info", "images": [{"id", "file_name"}], "annotations": [{"image_id", "id",
        "caption"}], "type": "captions"}``; captions without tokens are left out.
    """
    chosen = [images[p] for p in positions]
    sentences = [(image.cocoid, s) for image in chosen for s in image.sentences if s.tokens]
    ids = _annotation_ids([s for _, s in sentences])
    return {
        "info": {"description": description},
        "images": [{"id": image.cocoid, "file_name": image.filename} for image in chosen],
        "annotations": [
            {"image_id": image_id, "id": ann_id, "caption": sentence.raw.strip()}
            for (image_id, sentence), ann_id in zip(sentences, ids, strict=True)
        ],
        "type": "captions",
    }
