"""The VQA-CP re-split (public names; implemented in :mod:`hint_lightning.prepare.cp_split`)."""

from __future__ import annotations

from hint_lightning.prepare.cp_split import (
    ANSWER_CONCEPT_PREFIX,
    DEFAULT_STOP_WORDS,
    CPSplit,
    format_split_report,
    make_cp_split,
    question_concepts,
)

__all__ = [
    "ANSWER_CONCEPT_PREFIX",
    "DEFAULT_STOP_WORDS",
    "CPSplit",
    "format_split_report",
    "make_cp_split",
    "question_concepts",
]
