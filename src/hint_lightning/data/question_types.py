"""Moved: the official VQA question types are :mod:`hint_lightning.text.question_types`."""

from __future__ import annotations

from hint_lightning.text.question_types import (
    NONE_OF_THE_ABOVE,
    available_question_type_lists,
    load_question_types,
    question_type,
)

__all__ = [
    "NONE_OF_THE_ABOVE",
    "available_question_type_lists",
    "load_question_types",
    "question_type",
]
