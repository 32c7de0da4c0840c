"""Moved: :mod:`hint_lightning.prepare.easyvqa_source` (its constants: ``stores.easyvqa``)."""

from __future__ import annotations

from hint_lightning.prepare.easyvqa_source import (
    COLOR_WORDS,
    SHAPE_WORDS,
    TEST_IMAGE_ID_OFFSET,
    TEST_QUESTION_ID_OFFSET,
    EasyVQASource,
    answer_type_index,
    question_template,
    vqa_question_types,
)

__all__ = [
    "COLOR_WORDS",
    "SHAPE_WORDS",
    "TEST_IMAGE_ID_OFFSET",
    "TEST_QUESTION_ID_OFFSET",
    "EasyVQASource",
    "answer_type_index",
    "question_template",
    "vqa_question_types",
]
