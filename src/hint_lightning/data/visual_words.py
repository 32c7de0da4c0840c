"""Moved: the visual words of captions are :mod:`hint_lightning.text.visual_words`."""

from __future__ import annotations

from hint_lightning.text.visual_words import (
    COCO_CATEGORIES,
    COCO_CATEGORIES_BY_ID,
    COCO_CATEGORY_IDS,
    IRREGULAR_PLURALS,
    NO_PLURAL,
    VISUAL_WORDS_FILE,
    Duplicates,
    VisualWords,
    find_visual_words,
    load_visual_words,
    parse_visual_words,
    plural_forms,
    read_visual_words_text,
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
