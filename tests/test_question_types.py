"""Specification of the official VQA question types and the longest-word-prefix rule."""

from __future__ import annotations

import pytest

from hint_lightning.text.question_types import (
    NONE_OF_THE_ABOVE,
    available_question_type_lists,
    load_question_types,
    question_type,
)


@pytest.fixture(scope="module")
def mscoco() -> tuple[str, ...]:
    return load_question_types("mscoco")


def test_official_list_has_65_distinct_lowercase_types(mscoco: tuple[str, ...]) -> None:
    assert len(mscoco) == 65
    assert len(set(mscoco)) == 65
    assert mscoco == load_question_types()  # "mscoco" is the default
    assert mscoco[0] == "how many"
    assert mscoco[-1] == NONE_OF_THE_ABOVE == "none of the above"
    assert all(t == t.strip().lower() and t for t in mscoco)


def test_the_list_ships_as_package_data() -> None:
    assert "mscoco" in available_question_type_lists()


def test_unknown_list_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown question-type list 'abstract'"):
        load_question_types("abstract")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what color is the dog?", "what color is the"),
        ("is there a cat?", "is there a"),
        ("Why?", "why"),
        ("Why is the sky blue?", "why is the"),
        # longest prefix wins over its shorter prefixes
        ("What color are the flowers?", "what color are the"),
        ("What color is it?", "what color is"),
        ("What color shirt?", "what color"),
        ("How many people are in the room?", "how many people are in"),
        ("How many people are there?", "how many people are"),
        ("How many dogs are there?", "how many"),
        ("Is this an apple?", "is this an"),
        ("Is this a dog?", "is this a"),
        ("Is this person happy?", "is this person"),
        ("Is this real?", "is this"),
        ("Is there any milk?", "is there"),
        ("Is it raining?", "is it"),
        ("Is anyone here?", "is"),
        ("What is the name of the street?", "what is the name"),
        ("what is the man doing", "what is the man"),
        ("What?", "what"),
    ],
)
def test_longest_word_prefix(mscoco: tuple[str, ...], question: str, expected: str) -> None:
    assert question_type(question, mscoco) == expected


@pytest.mark.parametrize(
    "question",
    [
        "Whatever happened here?",  # "what" must match a whole word
        "Name the animal.",
        "The dog is brown?",
        "",
        "?",
    ],
)
def test_questions_without_a_type_are_none_of_the_above(
    mscoco: tuple[str, ...], question: str
) -> None:
    assert question_type(question, mscoco) == "none of the above"


def test_case_whitespace_and_punctuation_are_ignored(mscoco: tuple[str, ...]) -> None:
    for question in ["IS THERE A CAT?", "  is   there a,  cat ", '"Is there a" cat!', "Is there a"]:
        assert question_type(question, mscoco) == "is there a"


def test_apostrophes_inside_words_are_kept(mscoco: tuple[str, ...]) -> None:
    # "what's" is one word, which is not "what".
    assert question_type("What's that?", mscoco) == "none of the above"


def test_custom_type_lists_return_the_type_as_spelled() -> None:
    types = ["Is", "is there", "What Color"]
    assert question_type("is there a cat?", types) == "is there"
    assert question_type("Is it red?", types) == "Is"
    assert question_type("what color is it?", types) == "What Color"
    assert question_type("how many?", types) == "none of the above"
    assert question_type("is there?", []) == "none of the above"
