"""Visual words: caption words that name one of the 80 COCO object categories.

HINT for captioning (Selvaraju et al. 2019, section 3.1) takes the COCO instance segmentations
of a category as the human attention for the caption words that name it ("child", "man",
"woman", ... -> person), using the word -> category mapping of Neural Baby Talk (Lu et al.
2018). The mapping ships as package data, ``hint_lightning/resources/nbt/coco_class_name.txt``
(copied unchanged from ``jiasenlu/NeuralBabyTalk`` @ ``c351ae6c``, MIT license; see
``ATTRIBUTION.md`` there): 80 lines, line ``i`` (0-based) is the category with the ``i``-th
smallest COCO id (:data:`COCO_CATEGORY_IDS`: the official ids 1..90 with ten gaps,
hard-coded here together with the official names, which equal the first entry of each line),
entries separated by ``", "``.

How the file is read (:func:`load_visual_words`), on purpose:

* **Whitespace.** Each entry is stripped, runs of whitespace inside it collapse to one space,
  and it is lowercased (captions are lowercase). So ``' motor bike'`` (double space in the
  file) is the two-token form ``("motor", "bike")``, ``'bison '`` is ``"bison"``,
  ``' cheesecake'`` and ``'chesterfield '`` are found at all (NBT's own ``split(', ')`` keeps
  the spaces, so those four never match there) and ``'iPhone'`` is ``"iphone"``. Empty entries
  are dropped; repeats within a line (``bicycle, bike, bicycle, bike``) count once.
* **Words listed under two categories** (surfboard: boat and surfboard; cattle and ewe: sheep
  and cow; recliner: chair and couch). ``duplicates="last"`` (the default) keeps the LAST
  line, as NBT's ``wtod`` dict does (surfboard -> surfboard, cattle -> cow, ewe -> cow,
  recliner -> couch), so the mapping is the one NBT-based code uses. ``duplicates="exclude"``
  drops them instead, except a word that is a category's own name (surfboard -> surfboard):
  those words then are not visual words at all. Either way :attr:`VisualWords.ambiguous`
  lists them with all their categories.
* **Plural forms** are added (the paper's 830 visual words include them; the file lists
  singulars): the explicit irregular table :data:`IRREGULAR_PLURALS` first (person ->
  people and persons, man -> men, woman -> women, child -> children, mouse -> mice, knife ->
  knives, calf -> calves, goose -> geese, ox -> oxen, ...), no plural for the words that are
  already plural or uncountable (:data:`NO_PLURAL`: people, children, cattle, oxen, skis,
  scissors, lemons, sheep, bison, aircraft, watercraft, luggage, broccoli, soccer), else the
  regular rules: ``s, x, z, ch, sh`` -> ``+es``; consonant + ``y`` -> ``ies``; otherwise
  ``+s``. Two-word phrases pluralize their last word (``teddy bear`` -> ``teddy bears``,
  ``wine glass`` -> ``wine glasses``). A plural gets the category its singular resolved to
  (``ewes`` -> cow under ``"last"``; no ``ewes`` under ``"exclude"``), and a listed word
  always keeps its own entry: a plural never overrides it (``ski`` -> ``skis`` and ``ox`` ->
  ``oxen`` are listed already).

With the shipped file this gives **801 word forms** (409 distinct listed words + 392 plurals)
under ``duplicates="last"``, and 796 under ``"exclude"`` (cattle, ewe, recliner, ewes and
recliners dropped); the paper counts 830, with a mapping and plural rules it does not publish.

:func:`find_visual_words` finds them in a tokenized caption, longest match first (a two-word
phrase before a single word: ``hot dog`` is a hot dog, not a dog; ``baseball bat`` a bat, not
a ball), scanning left to right without overlaps. Each match is reported at the index of its
LAST token: with teacher forcing, that is the time step whose decision (predicting that token)
completes the visual word, the decision whose network importance HINT aligns with the
category's segmentation.

Example:
    >>> words = load_visual_words()
    >>> len(words)
    801
    >>> words.category_of("women"), words.category_of("motor bike"), words.category_of("dog")
    (1, 4, 18)
    >>> tokens = "a man eating two hot dogs next to a teddy bear".split()
    >>> find_visual_words(tokens)
    [(1, 1), (5, 58), (10, 88)]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Final, Literal

from hint_lightning.text.coco_categories import (
    COCO_CATEGORIES,
    COCO_CATEGORIES_BY_ID,
    COCO_CATEGORY_IDS,
)

__all__ = [
    "COCO_CATEGORIES",
    "COCO_CATEGORIES_BY_ID",
    "COCO_CATEGORY_IDS",
    "IRREGULAR_PLURALS",
    "NO_PLURAL",
    "VISUAL_WORDS_FILE",
    "Duplicates",
    "VisualWords",
    "find_visual_words",
    "load_visual_words",
    "parse_visual_words",
    "plural_forms",
    "read_visual_words_text",
]

Duplicates = Literal["last", "exclude"]
"""Policy for words listed under several categories (see the module docstring)."""

VISUAL_WORDS_FILE: Final = "coco_class_name.txt"
"""The mapping file's name in ``hint_lightning/resources/nbt/``."""

IRREGULAR_PLURALS: Final[Mapping[str, tuple[str, ...]]] = {
    "person": ("people", "persons"),
    "man": ("men",),
    "woman": ("women",),
    "gentleman": ("gentlemen",),
    "policeman": ("policemen",),
    "serviceman": ("servicemen",),
    "child": ("children",),
    "grandchild": ("grandchildren",),
    "mouse": ("mice",),
    "knife": ("knives",),
    "pocketknife": ("pocketknives",),
    "calf": ("calves",),
    "goose": ("geese",),
    "thief": ("thieves",),
    "ox": ("oxen",),
    "buffalo": ("buffaloes", "buffalos"),
    "flamingo": ("flamingos", "flamingoes"),
}
"""Plurals that the regular rules would get wrong (or miss a common variant of)."""

NO_PLURAL: Final[frozenset[str]] = frozenset(
    {
        # listed in plural form already
        "people",
        "children",
        "cattle",
        "oxen",
        "skis",
        "scissors",
        "lemons",
        # plural = singular
        "sheep",
        "bison",
        "aircraft",
        "watercraft",
        # uncountable
        "luggage",
        "broccoli",
        "soccer",
    }
)
"""Listed words that get no plural form."""

_ES_ENDINGS: Final = ("s", "x", "z", "ch", "sh")
_VOWELS: Final = frozenset("aeiou")


def plural_forms(word: str) -> tuple[str, ...]:
    """The plural forms of a (lowercase, single-spaced) word or phrase.

    Args:
        word: One word or a phrase; a phrase pluralizes its last word.

    Returns:
        The plural forms (none for :data:`NO_PLURAL` words).

    Example:
        >>> plural_forms("woman"), plural_forms("wine glass"), plural_forms("puppy")
        (('women',), ('wine glasses',), ('puppies',))
        >>> plural_forms("cowboy"), plural_forms("sheep"), plural_forms("teddy bear")
        (('cowboys',), (), ('teddy bears',))
    """
    head, _, last = word.rpartition(" ")
    prefix = f"{head} " if head else ""
    if last in NO_PLURAL:
        return ()
    if last in IRREGULAR_PLURALS:
        return tuple(prefix + form for form in IRREGULAR_PLURALS[last])
    if last.endswith(_ES_ENDINGS):
        return (f"{prefix}{last}es",)
    if len(last) > 1 and last.endswith("y") and last[-2] not in _VOWELS:
        return (f"{prefix}{last[:-1]}ies",)
    return (f"{prefix}{last}s",)


@dataclass(frozen=True)
class VisualWords:
    """Visual word forms -> COCO category id.

    Attributes:
        forms: Word form (tuple of tokens: ``("dog",)``, ``("teddy", "bears")``) -> COCO
            category id.
        listed: The forms listed in the file (the others are added plurals).
        ambiguous: Listed words under several categories -> all their category ids, in file
            order (whatever the policy did with them).
        duplicates: The policy applied to them (``"last"`` or ``"exclude"``).
        max_tokens: Tokens of the longest form (2).
    """

    forms: Mapping[tuple[str, ...], int]
    listed: frozenset[tuple[str, ...]]
    ambiguous: Mapping[str, tuple[int, ...]]
    duplicates: Duplicates
    max_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_tokens", max((len(f) for f in self.forms), default=1))

    def __len__(self) -> int:
        """The number of word forms."""
        return len(self.forms)

    def __contains__(self, form: object) -> bool:
        """Whether ``form`` (a string or a tuple of tokens) is a visual word."""
        if isinstance(form, str):
            return tuple(form.split()) in self.forms
        return isinstance(form, tuple) and form in self.forms

    def category_of(self, form: str | Sequence[str]) -> int | None:
        """The COCO category id of a word form (``"dogs"``, ``"hot dog"``, ``["hot", "dog"]``),
        or None when it is not a visual word."""
        key = tuple(form.lower().split()) if isinstance(form, str) else tuple(form)
        return self.forms.get(key)

    def forms_of(self, category_id: int) -> list[str]:
        """The word forms of one category, as space-joined strings, sorted."""
        return sorted(" ".join(f) for f, c in self.forms.items() if c == category_id)

    def find(self, tokens: Sequence[str]) -> list[tuple[int, int]]:
        """Visual words in a tokenized caption (see :func:`find_visual_words`)."""
        lowered = [t.lower() for t in tokens]
        found: list[tuple[int, int]] = []
        position, count = 0, len(lowered)
        while position < count:
            for length in range(min(self.max_tokens, count - position), 0, -1):
                category = self.forms.get(tuple(lowered[position : position + length]))
                if category is not None:
                    found.append((position + length - 1, category))
                    position += length
                    break
            else:
                position += 1
        return found


def read_visual_words_text() -> str:
    """The shipped mapping file's text (``hint_lightning/resources/nbt/coco_class_name.txt``)."""
    path = resources.files("hint_lightning") / "resources" / "nbt" / VISUAL_WORDS_FILE
    return path.read_text(encoding="utf-8")


def _clean(entry: str) -> str:
    """An entry stripped, whitespace runs collapsed to one space, lowercased."""
    return re.sub(r"\s+", " ", entry).strip().lower()


def _resolve(
    candidates: Mapping[str, list[int]], names: frozenset[str], duplicates: Duplicates
) -> dict[str, int]:
    """One category per word: the last (``"last"``), or only unambiguous words and category
    names (``"exclude"``)."""
    resolved = {}
    for word, categories in candidates.items():
        distinct = list(dict.fromkeys(categories))
        if len(distinct) == 1 or duplicates == "last":
            resolved[word] = distinct[-1]
        elif word in names:
            resolved[word] = next(c for c in distinct if COCO_CATEGORIES_BY_ID[c][1] == word)
    return resolved


def parse_visual_words(text: str, *, duplicates: Duplicates = "last") -> VisualWords:
    """Parses a mapping file's text (see the module docstring for the rules).

    Args:
        text: 80 lines of comma-separated entries, line ``i`` = ``COCO_CATEGORY_IDS[i]``.
        duplicates: ``"last"`` (NBT's choice) or ``"exclude"``.

    Returns:
        The visual words, with plural forms.

    Raises:
        ValueError: When the text has not 80 non-empty lines, or a line's first entry is not
            the official name of its category (the file would not be in COCO id order).
    """
    if duplicates not in ("last", "exclude"):
        raise ValueError(f"duplicates must be 'last' or 'exclude', got {duplicates!r}")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != len(COCO_CATEGORIES):
        raise ValueError(f"expected {len(COCO_CATEGORIES)} category lines, got {len(lines)}")
    listed: dict[str, list[int]] = {}
    for line_number, (line, (category_id, name, _)) in enumerate(
        zip(lines, COCO_CATEGORIES, strict=True), start=1
    ):
        words = [w for w in map(_clean, line.split(",")) if w]
        if not words or words[0] != name:
            raise ValueError(
                f"line {line_number} of the visual-word mapping starts with "
                f"{(words or [''])[0]!r}, expected the name of COCO category {category_id} "
                f"({name!r})"
            )
        for word in dict.fromkeys(words):
            listed.setdefault(word, []).append(category_id)
    names = frozenset(name for _, name, _ in COCO_CATEGORIES)
    singular = _resolve(listed, names, duplicates)
    plurals: dict[str, list[int]] = {}
    for word, category_id in sorted(singular.items(), key=lambda item: item[1]):
        for form in plural_forms(word):
            if form not in listed:
                plurals.setdefault(form, []).append(category_id)
    forms = {**singular, **_resolve(plurals, frozenset(), duplicates)}
    ambiguous = {w: tuple(dict.fromkeys(c)) for w, c in listed.items() if len(set(c)) > 1}
    return VisualWords(
        forms={tuple(form.split()): category for form, category in forms.items()},
        listed=frozenset(tuple(word.split()) for word in singular),
        ambiguous=ambiguous,
        duplicates=duplicates,
    )


@lru_cache(maxsize=2)
def load_visual_words(duplicates: Duplicates = "last") -> VisualWords:
    """The shipped visual words (cached): 801 forms with ``"last"``, 796 with ``"exclude"``.

    Args:
        duplicates: Policy for words listed under two categories (module docstring).

    Returns:
        The :class:`VisualWords`.
    """
    return parse_visual_words(read_visual_words_text(), duplicates=duplicates)


def find_visual_words(
    tokens: Sequence[str], visual_words: VisualWords | None = None
) -> list[tuple[int, int]]:
    """``(position, category id)`` of every visual word in a tokenized caption.

    Matching is case-insensitive, left to right, longest form first and without overlaps
    (``["hot", "dog"]`` is one hot dog, not a dog). ``position`` is the index of the match's
    LAST token: the time step whose decision completes the visual word.

    Args:
        tokens: The caption's tokens (e.g. the ``tokens`` of a Karpathy-split sentence).
        visual_words: The mapping (default: :func:`load_visual_words`).

    Returns:
        ``[(position, category_id), ...]`` in caption order.

    Example:
        >>> find_visual_words(["two", "sheep", "and", "a", "cell", "phone"])
        [(1, 20), (5, 77)]
    """
    return (visual_words or load_visual_words()).find(tokens)
