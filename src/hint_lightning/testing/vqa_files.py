"""Tiny raw VQA files in exactly the distributed formats, for tests and examples.

* VQA v2 (``v2_OpenEnded_mscoco_*_questions.json``, ``v2_mscoco_*_annotations.json``): a dict
  wrapper. Question files have ``info``, ``task_type`` (``"Open-Ended"``), ``data_type``
  (``"mscoco"``), ``license``, ``data_subtype`` and ``questions``; annotation files have
  ``info``, ``license``, ``data_subtype``, ``annotations`` and ``data_type`` (the real
  annotation files have no ``task_type``).
* VQA-CP v2 (``vqacp_v2_*_{questions,annotations}.json``): a plain JSON list of the same items,
  each with ``"coco_split"``.
* VQA-HAT (``vqahat_{train,val}.zip``): 8-bit grayscale PNGs named ``{question_id}_{k}.png``.
* GloVe (``glove.6B.300d.txt``): ``word v_1 ... v_d`` per line.

:func:`make_vqa_examples` produces plausible questions and annotations: official question
types, answer types and 10 human answers each, with disagreement, capitals, punctuation,
articles and number words, so that answer normalization matters.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image

from hint_lightning.text.question_types import load_question_types, question_type
from hint_lightning.utils.io import atomic_path, write_text

__all__ = [
    "VQA_V2_INFO",
    "VQA_V2_LICENSE",
    "encode_png",
    "make_hat_maps",
    "make_vqa_examples",
    "write_glove",
    "write_hat_folder",
    "write_hat_zip",
    "write_vqa_v2_annotations",
    "write_vqa_v2_questions",
    "write_vqacp_annotations",
    "write_vqacp_questions",
]

VQA_V2_INFO: Final[Mapping[str, Any]] = {
    "description": "This is v2.0 of the VQA dataset.",
    "url": "http://visualqa.org",
    "version": "2.0",
    "year": 2017,
    "contributor": "VQA Team",
    "date_created": "2017-04-26 17:07:13",
}
"""The ``info`` entry of the VQA v2 files."""
VQA_V2_LICENSE: Final[Mapping[str, str]] = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}
"""The ``license`` entry of the VQA v2 files."""

PathLike = str | os.PathLike[str]

# --------------------------------------------------------------------------------------------
# JSON files.
# --------------------------------------------------------------------------------------------


def _write_compact_json(path: PathLike, payload: Any) -> Path:
    """Writes JSON without indentation (like the distributed files), atomically."""
    return write_text(path, json.dumps(payload, separators=(",", ":")))


def write_vqa_v2_questions(
    path: PathLike, questions: Sequence[Mapping[str, Any]], data_subtype: str
) -> Path:
    """Writes a VQA v2 question file.

    Args:
        path: E.g. ``raw/vqa_v2/v2_OpenEnded_mscoco_train2014_questions.json``.
        questions: Items ``{"image_id", "question", "question_id"}`` (other keys are dropped).
        data_subtype: ``"train2014"`` or ``"val2014"``.

    Returns:
        The path.
    """
    items = [
        {"image_id": q["image_id"], "question": q["question"], "question_id": q["question_id"]}
        for q in questions
    ]
    payload = {
        "info": dict(VQA_V2_INFO),
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": dict(VQA_V2_LICENSE),
        "data_subtype": data_subtype,
        "questions": items,
    }
    return _write_compact_json(path, payload)


_ANNOTATION_KEYS: Final = (
    "question_type",
    "multiple_choice_answer",
    "answers",
    "image_id",
    "answer_type",
    "question_id",
)


def _annotation_item(annotation: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a distributed annotation item, in their usual order."""
    return {key: annotation[key] for key in _ANNOTATION_KEYS}


def write_vqa_v2_annotations(
    path: PathLike, annotations: Sequence[Mapping[str, Any]], data_subtype: str
) -> Path:
    """Writes a VQA v2 annotation file.

    Args:
        path: E.g. ``raw/vqa_v2/v2_mscoco_train2014_annotations.json``.
        annotations: Items with ``question_type``, ``multiple_choice_answer``, ``answers``
            (10 x ``{"answer", "answer_confidence", "answer_id"}``), ``image_id``,
            ``answer_type``, ``question_id`` (other keys are dropped).
        data_subtype: ``"train2014"`` or ``"val2014"``.

    Returns:
        The path.
    """
    payload = {
        "info": dict(VQA_V2_INFO),
        "license": dict(VQA_V2_LICENSE),
        "data_subtype": data_subtype,
        "annotations": [_annotation_item(a) for a in annotations],
        "data_type": "mscoco",
    }
    return _write_compact_json(path, payload)


def _coco_split_of(item: Mapping[str, Any], coco_split: str | Mapping[int, str]) -> str:
    """The item's own ``coco_split``, else the default (a string or image id -> split)."""
    if "coco_split" in item:
        return str(item["coco_split"])
    if isinstance(coco_split, str):
        return coco_split
    return coco_split[item["image_id"]]


def write_vqacp_questions(
    path: PathLike,
    questions: Sequence[Mapping[str, Any]],
    coco_split: str | Mapping[int, str] = "train2014",
) -> Path:
    """Writes a VQA-CP v2 question file (a plain list; every item has ``coco_split``).

    Args:
        path: E.g. ``raw/vqacp_v2/vqacp_v2_train_questions.json``.
        questions: Items ``{"image_id", "question", "question_id"}``, optionally with their
            own ``coco_split``.
        coco_split: The COCO split of items without one: a string, or image id -> split.

    Returns:
        The path.
    """
    items = [
        {
            "image_id": q["image_id"],
            "question": q["question"],
            "question_id": q["question_id"],
            "coco_split": _coco_split_of(q, coco_split),
        }
        for q in questions
    ]
    return _write_compact_json(path, items)


def write_vqacp_annotations(
    path: PathLike,
    annotations: Sequence[Mapping[str, Any]],
    coco_split: str | Mapping[int, str] = "train2014",
) -> Path:
    """Writes a VQA-CP v2 annotation file (a plain list; every item has ``coco_split``).

    Args:
        path: E.g. ``raw/vqacp_v2/vqacp_v2_train_annotations.json``.
        annotations: Annotation items as for :func:`write_vqa_v2_annotations`.
        coco_split: As for :func:`write_vqacp_questions`.

    Returns:
        The path.
    """
    items = [
        _annotation_item(a) | {"coco_split": _coco_split_of(a, coco_split)} for a in annotations
    ]
    return _write_compact_json(path, items)


# --------------------------------------------------------------------------------------------
# VQA-HAT maps and GloVe.
# --------------------------------------------------------------------------------------------


def encode_png(attention_map: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a map.

    Args:
        attention_map: [h, w] uint8, or float in [0, 1] (scaled by 255 and rounded).

    Returns:
        The PNG bytes.
    """
    array = np.asarray(attention_map)
    if array.ndim != 2:
        raise ValueError(f"a map must have shape [h, w], got {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_hat_zip(path: PathLike, maps: Mapping[str, np.ndarray]) -> Path:
    """Writes a VQA-HAT zip.

    Args:
        path: E.g. ``raw/vqahat/vqahat_val.zip``.
        maps: Member name (e.g. ``"123_1.png"`` or ``"vqahat_val/123_1.png"``) -> map
            (see :func:`encode_png`).

    Returns:
        The path.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, attention_map in maps.items():
            archive.writestr(name, encode_png(attention_map))
    return Path(path)


def write_hat_folder(path: PathLike, maps: Mapping[str, np.ndarray]) -> Path:
    """Writes VQA-HAT maps as an extracted folder (names as for :func:`write_hat_zip`).

    Returns:
        The folder.
    """
    folder = Path(path)
    for name, attention_map in maps.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode_png(attention_map))
    return folder


def make_hat_maps(
    question_ids: Sequence[int],
    *,
    maps_per_question: int = 1,
    size: tuple[int, int] = (40, 30),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Plausible VQA-HAT maps: a bright Gaussian blob on a dark background, per question.

    Args:
        question_ids: The questions.
        maps_per_question: 1 (train) or 3 (val).
        size: ``(width, height)`` of every map (VQA-HAT maps have their own resolution).
        seed: Seed of the blob positions and sizes.

    Returns:
        ``{"{question_id}_{k}.png": uint8 [height, width]}`` with ``k = 1..maps_per_question``.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    rows, cols = np.mgrid[0:height, 0:width]
    maps = {}
    for question_id in question_ids:
        for k in range(1, maps_per_question + 1):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            sigma = rng.uniform(0.1, 0.3) * min(width, height)
            blob = np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2))
            maps[f"{question_id}_{k}.png"] = np.rint(255 * blob).astype(np.uint8)
    return maps


def write_glove(path: PathLike, vectors: Mapping[str, np.ndarray]) -> Path:
    """Writes a GloVe text file (``word v_1 ... v_d`` per line, float32 shortest repr).

    Args:
        path: E.g. ``raw/glove/glove.6B.300d.txt``.
        vectors: Word -> [d] vector.

    Returns:
        The path.
    """
    lines = []
    for word, vector in vectors.items():
        values = np.asarray(vector, dtype=np.float32).reshape(-1)
        numbers = " ".join(np.format_float_positional(v, trim="-") for v in values)
        lines.append(f"{word} {numbers}\n")
    return write_text(path, "".join(lines))


# --------------------------------------------------------------------------------------------
# Plausible questions and answers.
# --------------------------------------------------------------------------------------------

_NUMBER_WORDS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven")
_POOLS: Final[Mapping[str, tuple[str, ...]]] = {
    "yes/no": ("yes", "no"),
    "number": ("0", "1", "2", "3", "4", "5", "6"),
    "color": ("red", "white", "blue", "black", "green", "yellow", "brown"),
    "sport": ("tennis", "baseball", "skiing", "surfing", "soccer"),
    "room": ("kitchen", "bathroom", "living room", "bedroom"),
    "object": ("frisbee", "umbrella", "phone", "kite", "bat", "pizza"),
    "place": ("on table", "on floor", "in street", "on bed", "in water"),
    "animal": ("dog", "cat", "horse", "giraffe", "zebra", "elephant"),
}
_OBJECTS: Final = ("dog", "cat", "bus", "car", "horse", "pizza", "truck", "kite")
_ODD_ANSWERS: Final = ("i don't know", "unknown", "not sure")


@dataclass(frozen=True)
class _Template:
    """A question pattern (``{obj}``, ``{objs}``, ``{color}``), its answer type and pool."""

    text: str
    answer_type: str
    pool: str


_TEMPLATES: Final[tuple[_Template, ...]] = (
    _Template("Is there a {obj} in the picture?", "yes/no", "yes/no"),
    _Template("Is the {obj} {color}?", "yes/no", "yes/no"),
    _Template("Are there any {objs}?", "yes/no", "yes/no"),
    _Template("Does the {obj} look happy?", "yes/no", "yes/no"),
    _Template("How many {objs} are there?", "number", "number"),
    _Template("How many people are in the photo?", "number", "number"),
    _Template("What color is the {obj}?", "other", "color"),
    _Template("What sport is being played?", "other", "sport"),
    _Template("What room is this?", "other", "room"),
    _Template("What is the man holding?", "other", "object"),
    _Template("Where is the {obj}?", "other", "place"),
    _Template("What animal is this?", "other", "animal"),
)


def _variants(answer: str, pool: str) -> list[str]:
    """Surface forms of an answer that normalize to it (capitals, period, article, words)."""
    forms = [answer, answer.capitalize(), answer + "."]
    if pool == "number":
        word = _NUMBER_WORDS[int(answer)]
        forms += [word, word.capitalize()]
    elif pool == "place":
        preposition, noun = answer.split(" ", 1)
        forms += [f"{preposition} the {noun}", f"{preposition.capitalize()} the {noun}"]
    elif pool != "yes/no":
        forms += [f"the {answer}", f"a {answer}"]
    return forms


def _human_answers(answer: str, pool: str, rng: np.random.Generator) -> list[str]:
    """10 human answers: agreeing variants of ``answer`` and some disagreeing ones, shuffled."""
    agree = int(rng.choice([10, 10, 10, 9, 8, 7, 6, 5, 4]))
    if agree == 10 and rng.random() < 0.5:
        return [answer] * 10  # all identical: the official metric normalizes nothing
    forms = _variants(answer, pool)
    answers = [answer if rng.random() < 0.6 else str(rng.choice(forms)) for _ in range(agree)]
    others = [a for a in _POOLS[pool] if a != answer]
    for _ in range(10 - agree):
        odd = rng.random() < 0.1
        answers.append(str(rng.choice(_ODD_ANSWERS if odd else others)))
    return [answers[i] for i in rng.permutation(10)]


def _annotation_answers(answers: Sequence[str], rng: np.random.Generator) -> list[dict[str, Any]]:
    """The ``answers`` entry of an annotation: answer, confidence and id 1..10."""
    confidences = rng.choice(["yes", "maybe", "no"], size=len(answers), p=[0.8, 0.15, 0.05])
    return [
        {"answer": answer, "answer_confidence": str(confidence), "answer_id": i + 1}
        for i, (answer, confidence) in enumerate(zip(answers, confidences, strict=True))
    ]


def _make_example(
    image_id: int, question_id: int, rng: np.random.Generator, types: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One question item and its annotation item."""
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    obj = str(rng.choice(_OBJECTS))
    plural = obj + ("es" if obj.endswith("s") else "s")
    text = template.text.format(obj=obj, objs=plural, color=str(rng.choice(_POOLS["color"])))
    answer = str(rng.choice(_POOLS[template.pool]))
    answers = _human_answers(answer, template.pool, rng)
    question = {"image_id": image_id, "question": text, "question_id": question_id}
    annotation = {
        "question_type": question_type(text, types),
        "multiple_choice_answer": answer,
        "answers": _annotation_answers(answers, rng),
        "image_id": image_id,
        "answer_type": template.answer_type,
        "question_id": question_id,
    }
    return question, annotation


def make_vqa_examples(
    image_ids: Sequence[int], *, questions_per_image: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Plausible VQA questions and annotations for some images.

    Question ids follow VQA: ``image_id * 1000 + i`` for the ``i``-th question of an image.
    Every question has an official question type (``"how many"``, ``"what color is the"``,
    ...), an answer type (``"yes/no"``, ``"number"``, ``"other"``), a lower-case
    ``multiple_choice_answer`` and 10 human answers: sometimes all identical, otherwise a
    mix of variants of the right answer (``"Two"``, ``"2."``, ``"the frisbee"``) and some
    wrong or odd answers.

    Args:
        image_ids: The images.
        questions_per_image: Questions per image (1..1000).
        seed: Seed of every choice.

    Returns:
        ``(questions, annotations)``: VQA v2 items (no ``coco_split``), in the same order.

    Example:
        >>> questions, annotations = make_vqa_examples([9, 25], questions_per_image=2, seed=0)
        >>> [q["question_id"] for q in questions]
        [9000, 9001, 25000, 25001]
        >>> len(annotations[0]["answers"]), annotations[0]["answer_type"] in (
        ...     "yes/no", "number", "other")
        (10, True)
    """
    if not 1 <= questions_per_image <= 1000:
        raise ValueError(f"questions_per_image must be in 1..1000, got {questions_per_image}")
    rng = np.random.default_rng(seed)
    types = load_question_types()
    questions, annotations = [], []
    for image_id in image_ids:
        for i in range(questions_per_image):
            question, annotation = _make_example(
                int(image_id), int(image_id) * 1000 + i, rng, types
            )
            questions.append(question)
            annotations.append(annotation)
    return questions, annotations
