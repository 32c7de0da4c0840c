"""VQA answers: the three answer types, and the official answer normalization.

The normalization re-implements ``processPunctuation`` and ``processDigitArticle`` of the official
VQA evaluation script (``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` of GT-Vision-Lab/VQA),
quirks included, with its tables (contractions, number words, articles, punctuation). Both the
prepare step (answer vocabulary, soft targets) and the metrics
(:mod:`hint_lightning.metrics.vqa_accuracy`) import it from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "ANSWER_TYPES",
    "ARTICLES",
    "CONTRACTIONS",
    "NUMBER_WORDS",
    "PUNCTUATION",
    "clean_answer",
    "normalize_answer",
]

ANSWER_TYPES: Final[tuple[str, ...]] = ("yes/no", "number", "other")
"""The VQA answer types; a store's ``answer_type`` is an index into this tuple."""

CONTRACTIONS: Final[Mapping[str, str]] = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
"""Official contraction table (word without apostrophe -> with). Keys with capitals never match
because words are lower-cased first; ``"somebody'd" -> "somebodyd"`` is official too."""

NUMBER_WORDS: Final[Mapping[str, str]] = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
"""Official ``manualMap``: number words (and ``"none"``) to digits."""

ARTICLES: Final[frozenset[str]] = frozenset({"a", "an", "the"})
"""Words dropped by the official normalization."""

PUNCTUATION: Final[tuple[str, ...]] = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
"""Official punctuation list, in its order (apostrophes, colons and periods are not in it)."""

# A comma between two digits ("1,000"): when present anywhere, all punctuation is deleted.
_COMMA_BETWEEN_DIGITS: Final = re.compile(r"(\d)(,)(\d)")
# Official ``periodStrip``. Its ``(?!<=\d)`` was meant as a look-behind but is a look-ahead for
# the text "<=" plus a digit, so it never blocks: every period not followed by a digit matches.
_PERIOD_NOT_BEFORE_DIGIT: Final = re.compile(r"(?!<=\d)(\.)(?!\d)")
# The official code passes ``re.UNICODE`` (== 32) as the ``count`` argument of ``sub``, so at
# most 32 periods are removed.
_PERIOD_STRIP_COUNT: Final[int] = int(re.UNICODE)


def clean_answer(text: str) -> str:
    """Replace newlines and tabs by spaces and strip, as done to every official answer."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def _process_punctuation(text: str) -> str:
    """Official ``processPunctuation``.

    Each punctuation mark is deleted if it touches a space somewhere in the *input* text (or if
    the input has a comma between digits anywhere), otherwise it is replaced by a space. Then
    at most 32 periods that are not followed by a digit are deleted.
    """
    delete_all = _COMMA_BETWEEN_DIGITS.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if delete_all or f"{mark} " in text or f" {mark}" in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_STRIP_COUNT)


def _process_digit_article(text: str) -> str:
    """Official ``processDigitArticle``: lower-case, split on whitespace, number words to
    digits, drop articles, expand contractions, join with single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(answer: str) -> str:
    """Normalize an answer exactly like the official VQA evaluation.

    Cleaning (newlines and tabs to spaces, ``strip()``), then the official
    ``processPunctuation`` and ``processDigitArticle``.

    Args:
        answer: a raw answer string.

    Returns:
        The normalized answer.

    Examples:
        >>> normalize_answer("Two")
        '2'
        >>> normalize_answer("the dog.")
        'dog'
        >>> normalize_answer("isnt")
        "isn't"
        >>> normalize_answer("1,000")
        '1000'
        >>> normalize_answer("1.5")
        '1.5'
    """
    return _process_digit_article(_process_punctuation(clean_answer(answer)))
