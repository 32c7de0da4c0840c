"""The raw easy-VQA data (PyPI ``easy-vqa``, MIT) with deterministic ids and question templates.

easy-VQA ships 5,000 64x64 RGB images with one colored shape each (4,000 train, 1,000 test),
48,248 generated questions (38,575 train, 9,673 test) and 13 answers, with no question ids
and no question types. This module gives them what a VQA pipeline needs:

* **Question ids.** Train question ``k`` (position in the package's train list) gets id ``k``,
  test question ``k`` gets ``100000 + k`` (:data:`TEST_QUESTION_ID_OFFSET`).
* **Image ids.** The package numbers train and test images from 0 each; train image ``i``
  keeps id ``i``, test image ``i`` becomes ``4000 + i`` (:data:`TEST_IMAGE_ID_OFFSET`), so the
  5,000 ids are exactly ``0 .. 4999``.
* **Templates.** Color words become ``<C>``, shape words ``<S>``, and the ``?`` is dropped:
  the 24 question templates (e.g. ``"is there a <C> shape in the image"``). They serve as the
  question types of the CP split. For reporting, each question also gets its official VQA
  question type (longest word-prefix rule over the ``mscoco`` list, e.g. ``"is there a"``).
* **Answer types.** ``"yes/no"`` for the answers yes and no, ``"other"`` for colors and
  shapes (easy-VQA has no counting questions).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from hint_lightning.stores.easyvqa import (
    COLOR_WORDS,
    SHAPE_WORDS,
    TEST_IMAGE_ID_OFFSET,
    TEST_QUESTION_ID_OFFSET,
)
from hint_lightning.text.answers import ANSWER_TYPES
from hint_lightning.text.question_types import load_question_types, question_type

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

_COLOR_RE: Final = re.compile(r"\b(" + "|".join(COLOR_WORDS) + r")\b")
_SHAPE_RE: Final = re.compile(r"\b(" + "|".join(SHAPE_WORDS) + r")\b")


def question_template(question: str) -> str:
    """The template of an easy-VQA question: colors -> ``<C>``, shapes -> ``<S>``, no ``?``.

    Args:
        question: An easy-VQA question.

    Returns:
        The lowercased template, whitespace-normalized.

    Example:
        >>> question_template("Is there a red shape in the image?")
        'is there a <C> shape in the image'
        >>> question_template("what color is the triangle?")
        'what color is the <S>'
    """
    text = question.lower().replace("?", " ")
    text = _SHAPE_RE.sub("<S>", _COLOR_RE.sub("<C>", text))
    return " ".join(text.split())


def vqa_question_types(questions: Sequence[str]) -> list[str]:
    """The official VQA question type of each question (``mscoco`` list, longest prefix).

    Args:
        questions: Q questions.

    Returns:
        Q question types (each distinct question is matched once).

    Example:
        >>> vqa_question_types(["is there a red shape?", "what shape is present?"])
        ['is there a', 'what']
    """
    types = load_question_types("mscoco")
    cache: dict[str, str] = {}
    for question in questions:
        if question not in cache:
            cache[question] = question_type(question, types)
    return [cache[question] for question in questions]


def answer_type_index(answers: Sequence[str]) -> np.ndarray:
    """Index into ``ANSWER_TYPES`` of each answer: yes/no for yes and no, else other.

    Args:
        answers: Q answers.

    Returns:
        Int64 array of shape [Q].

    Example:
        >>> answer_type_index(["yes", "red", "no"]).tolist()
        [0, 2, 0]
    """
    yes_no = np.isin(np.asarray(answers, dtype=object), ["yes", "no"])
    return np.where(yes_no, ANSWER_TYPES.index("yes/no"), ANSWER_TYPES.index("other")).astype(
        np.int64
    )


@dataclass(frozen=True)
class EasyVQASource:
    """The easy-VQA questions and image files, train and test pooled, with our ids.

    Attributes:
        questions: Q question texts (package train list, then test list).
        answers: Q answers.
        question_ids: Int64 array of shape [Q] (train ``k`` -> ``k``, test ``k`` -> ``100000 + k``).
        image_ids: Int64 array of shape [Q], the image of each question (test ``i`` -> 4000 + i).
        image_paths: ``{image_id: path}`` of every image.
        answer_vocab: The candidate answers in the package's order.
    """

    questions: tuple[str, ...]
    answers: tuple[str, ...]
    question_ids: np.ndarray
    image_ids: np.ndarray
    image_paths: dict[int, str]
    answer_vocab: tuple[str, ...]

    @classmethod
    def from_parts(
        cls,
        train: tuple[Sequence[str], Sequence[str], Sequence[int]],
        test: tuple[Sequence[str], Sequence[str], Sequence[int]],
        train_image_paths: dict[int, str],
        test_image_paths: dict[int, str],
        answer_vocab: Sequence[str],
        image_id_offset: int = TEST_IMAGE_ID_OFFSET,
    ) -> EasyVQASource:
        """Pools train and test in the package's format and assigns our ids.

        Args:
            train: ``(texts, answers, image_ids)`` as ``easy_vqa.get_train_questions()``.
            test: The same for the test questions.
            train_image_paths: ``{image_id: path}`` as ``easy_vqa.get_train_image_paths()``.
            test_image_paths: The same for the test images.
            answer_vocab: The answers, as ``easy_vqa.get_answers()``.
            image_id_offset: Added to test image ids; must exceed every train image id.

        Returns:
            The pooled source.

        Raises:
            ValueError: If the offset would make image ids collide, or a question refers to a
                missing image.
        """
        if train_image_paths and max(train_image_paths) >= image_id_offset:
            raise ValueError(
                f"train image ids reach {max(train_image_paths)}; image_id_offset "
                f"{image_id_offset} would make them collide with test ids"
            )
        (train_q, train_a, train_i), (test_q, test_a, test_i) = train, test
        paths = dict(train_image_paths)
        paths.update({image_id_offset + i: p for i, p in test_image_paths.items()})
        image_ids = np.concatenate(
            [np.asarray(train_i, dtype=np.int64), image_id_offset + np.asarray(test_i, np.int64)]
        )
        missing = set(np.unique(image_ids).tolist()) - set(paths)
        if missing:
            raise ValueError(
                f"{len(missing)} questions refer to missing images, e.g. {min(missing)}"
            )
        question_ids = np.concatenate(
            [
                np.arange(len(train_q), dtype=np.int64),
                TEST_QUESTION_ID_OFFSET + np.arange(len(test_q), dtype=np.int64),
            ]
        )
        return cls(
            questions=(*train_q, *test_q),
            answers=(*train_a, *test_a),
            question_ids=question_ids,
            image_ids=image_ids,
            image_paths=paths,
            answer_vocab=tuple(answer_vocab),
        )

    @classmethod
    def from_package(cls) -> EasyVQASource:
        """Reads the data that ships with the installed ``easy-vqa`` package.

        Returns:
            The pooled source: 48,248 questions about 5,000 images.
        """
        import easy_vqa

        return cls.from_parts(
            easy_vqa.get_train_questions(),
            easy_vqa.get_test_questions(),
            easy_vqa.get_train_image_paths(),
            easy_vqa.get_test_image_paths(),
            easy_vqa.get_answers(),
        )

    @property
    def num_questions(self) -> int:
        """Q, the number of questions."""
        return len(self.questions)

    def sorted_image_ids(self) -> np.ndarray:
        """Int64 array of shape [I]: every image id, ascending."""
        return np.asarray(sorted(self.image_paths), dtype=np.int64)
