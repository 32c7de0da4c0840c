"""Official VQA question types and the longest-prefix rule that assigns them.

The list ships as package data in ``hint_lightning/resources/vqa_question_types/`` (copied
unchanged from GitHub ``GT-Vision-Lab/VQA`` @ ``a013f0043c1e2cdc995922dfe257f7149aa9af06``,
``QuestionTypes/``; BSD-2-clause style license, see ``LICENSE`` and ``ATTRIBUTION.md`` there).

Rule (upstream README): a question's type is the longest type in the list that is a
word-prefix of the question; a type of length n does not include the questions that belong to
a longer type with the same first n words. Questions that match no type get
``"none of the above"``.

Word matching: the question and each type are lowercased and split on whitespace, and
punctuation (``string.punctuation``, e.g. ``?``, ``,``, ``"``) is stripped from both ends of
each word; words that become empty are dropped. So ``"Why?"`` has the words ``("why",)`` and
``"what color is the dog?"`` matches ``"what color is the"`` but ``"whatever"`` does not match
``"what"``. Apostrophes inside words are kept (``"what's"`` is one word and is not ``"what"``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "NONE_OF_THE_ABOVE",
    "available_question_type_lists",
    "load_question_types",
    "question_type",
]

NONE_OF_THE_ABOVE: Final = "none of the above"
"""The type of questions that match no type of the list (also the list's last entry)."""

_SUFFIX: Final = "_question_types.txt"


def _resource_dir() -> Traversable:
    """The package-data folder that holds the question-type lists."""
    return resources.files("hint_lightning") / "resources" / "vqa_question_types"


def available_question_type_lists() -> tuple[str, ...]:
    """Names of the question-type lists shipped with the package.

    Returns:
        Sorted names, e.g. ``("mscoco",)`` for ``mscoco_question_types.txt``.

    Example:
        >>> "mscoco" in available_question_type_lists()
        True
    """
    files = _resource_dir().iterdir()
    return tuple(sorted(f.name[: -len(_SUFFIX)] for f in files if f.name.endswith(_SUFFIX)))


def load_question_types(name: str = "mscoco") -> tuple[str, ...]:
    """Loads an official VQA question-type list shipped with the package.

    Args:
        name: List name; ``"mscoco"`` is the 65-type list of VQA v1/v2 and VQA-CP on real
            images (its last entry is ``"none of the above"``).

    Returns:
        The types in file order, without surrounding whitespace or empty lines.

    Raises:
        ValueError: If no list of that name ships with the package.

    Example:
        >>> types = load_question_types()
        >>> len(types), types[:3]
        (65, ('how many', 'is the', 'what'))
    """
    available = available_question_type_lists()
    if name not in available:
        raise ValueError(f"unknown question-type list {name!r}; available: {list(available)}")
    text = (_resource_dir() / (name + _SUFFIX)).read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _words(text: str) -> tuple[str, ...]:
    """Lowercased whitespace-separated words with punctuation stripped from their ends.

    Args:
        text: A question or a question type.

    Returns:
        The non-empty words.
    """
    stripped = (word.strip(string.punctuation) for word in text.lower().split())
    return tuple(word for word in stripped if word)


@lru_cache(maxsize=16)
def _prefix_index(types: tuple[str, ...]) -> tuple[dict[tuple[str, ...], str], int]:
    """Maps each type's word tuple to the type, and returns the longest type length in words.

    Args:
        types: The question types.

    Returns:
        ``(index, max_words)``. When two types have the same words, the first one wins.
    """
    index: dict[tuple[str, ...], str] = {}
    for qtype in types:
        index.setdefault(_words(qtype), qtype)
    index.pop((), None)
    return index, max((len(words) for words in index), default=0)


def question_type(question: str, types: Sequence[str]) -> str:
    """The longest type in ``types`` that is a word-prefix of ``question``.

    Args:
        question: A question, e.g. ``"What color is the dog?"``.
        types: The question types, e.g. from :func:`load_question_types`.

    Returns:
        The matching type exactly as spelled in ``types``, or ``"none of the above"``.

    Example:
        >>> types = load_question_types()
        >>> question_type("What color is the dog?", types)
        'what color is the'
        >>> question_type("Why?", types)
        'why'
        >>> question_type("Whatever happened here?", types)
        'none of the above'
    """
    index, max_words = _prefix_index(tuple(types))
    words = _words(question)
    for length in range(min(max_words, len(words)), 0, -1):
        match = index.get(words[:length])
        if match is not None:
            return match
    return NONE_OF_THE_ABOVE
