"""The raw VQA v2 / VQA-CP v2 question and annotation files, and their checks.

Formats (``/work/shared/design`` section 2, as officially distributed):

* **VQA-CP v2** (``layout="vqacp"``): the top level of ``vqacp_v2_*_questions.json`` and
  ``vqacp_v2_*_annotations.json`` is a plain JSON *list*; every item also carries
  ``"coco_split"`` (``"train2014"`` or ``"val2014"``).
* **VQA v2** (``layout="vqa_v2"``): the top level is a dict whose ``"questions"`` (resp.
  ``"annotations"``) entry is the list of items, next to ``"info"``, ``"license"``,
  ``"data_type"``, ``"data_subtype"`` (and ``"task_type"`` in question files).

A file of one layout given where the other is expected fails with a message that names the file
and the layout it looks like. An item without a required key, or whose value has the wrong type
(``"question": null``), fails with a message that names the file, the question id and the key.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np

from hint_lightning.utils.io import read_json

__all__ = [
    "ANNOTATION_KEYS",
    "MAX_LISTED",
    "QUESTION_KEYS",
    "ImageIndex",
    "Layout",
    "check_images",
    "join",
    "listed",
    "load_annotations",
    "load_questions",
]

Layout = Literal["vqacp", "vqa_v2"]
"""``"vqacp"``: plain JSON lists (VQA-CP v2); ``"vqa_v2"``: the official wrapper dicts."""

MAX_LISTED: Final = 5
"""How many offending ids an error message lists (followed by the total count)."""

QUESTION_KEYS: Final[tuple[str, ...]] = ("question_id", "image_id", "question")
"""Keys every question item has (VQA-CP items also have ``"coco_split"``)."""
ANNOTATION_KEYS: Final[tuple[str, ...]] = (
    "question_id",
    "image_id",
    "question_type",
    "answer_type",
    "multiple_choice_answer",
    "answers",
)
"""Keys every annotation item has (VQA-CP items also have ``"coco_split"``)."""

_VQACP_EXTRA_KEYS: Final[tuple[str, ...]] = ("coco_split",)
_KEY_TYPES: Final[Mapping[str, tuple[type | tuple[type, ...], str]]] = {
    "question_id": (int, "an integer"),
    "image_id": (int, "an integer"),
    "question": (str, "a string"),
    "coco_split": (str, "a string"),
    "question_type": (str, "a string"),
    "answer_type": (str, "a string"),
    "multiple_choice_answer": (str, "a string"),
    "answers": (list, "a list"),
}
"""The JSON type of every required key of a question or annotation item."""
_LAYOUT_NAMES: Final[Mapping[str, str]] = {
    "vqacp": "VQA-CP v2 (a plain JSON list of items with 'coco_split')",
    "vqa_v2": "VQA v2 (a JSON dict with 'info', 'data_subtype', ... and the list of items)",
}


class ImageIndex(Protocol):
    """What :func:`check_images` needs of a feature store."""

    @property
    def image_ids(self) -> Any:
        """The image ids of the store (an array or a sequence of ints)."""
        ...


def _check_layout(payload: Any, path: Path, layout: Layout, list_key: str) -> list[Any]:
    """Returns the item list of a raw file after checking its top-level layout.

    Args:
        payload: The parsed JSON.
        path: The file (for messages).
        layout: The expected layout.
        list_key: ``"questions"`` or ``"annotations"``: the item list of the VQA v2 wrapper.

    Returns:
        The list of items.

    Raises:
        ValueError: If the file has the other layout or neither.
    """
    if layout not in _LAYOUT_NAMES:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(_LAYOUT_NAMES)}")
    other_key = "annotations" if list_key == "questions" else "questions"
    if layout == "vqacp":
        if isinstance(payload, list):
            return payload
        if isinstance(payload, dict) and list_key in payload:
            raise ValueError(
                f"{path}: expected the VQA-CP v2 layout (a plain JSON list of {list_key}), but "
                f"the file looks like {_LAYOUT_NAMES['vqa_v2']}; use layout='vqa_v2' for it"
            )
    else:
        if isinstance(payload, dict) and isinstance(payload.get(list_key), list):
            return payload[list_key]
        if isinstance(payload, list):
            raise ValueError(
                f"{path}: expected the VQA v2 layout (a dict with a {list_key!r} list), but the "
                f"file looks like {_LAYOUT_NAMES['vqacp']}; use layout='vqacp' for it"
            )
    if isinstance(payload, dict) and other_key in payload:
        raise ValueError(
            f"{path}: expected a {list_key} file but it looks like an {other_key} file "
            f"(top-level keys {sorted(payload)})"
        )
    found = f"a dict with keys {sorted(payload)}" if isinstance(payload, dict) else type(payload)
    raise ValueError(f"{path}: expected {_LAYOUT_NAMES[layout]}, found {found}")


def _json_kind(value: object) -> str:
    """How a JSON value reads in a message: ``null``, ``a string``, ``a number``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    for kinds, name in ((int, "an integer"), (float, "a number"), (str, "a string")):
        if isinstance(value, kinds):
            return name
    return "a list" if isinstance(value, list) else "an object"


def _check_items(items: list[Any], path: Path, required: Sequence[str], kind: str) -> None:
    """Checks that every item is a dict with the required keys, each of its JSON type.

    Raises:
        ValueError: Naming the file, the first offending question id (or item position) and
            the missing keys, or the key whose value has the wrong type (e.g.
            ``"question": null``).
    """
    required_set = set(required)
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: {kind} item #{position} is not a JSON object: {item!r:.80}")
        qid = item.get("question_id")
        where = f"question_id {qid}" if "question_id" in item else f"item #{position}"
        if not required_set <= item.keys():
            missing = [key for key in required if key not in item]
            where = where if "question_id" in item else f"item #{position} (no question_id)"
            raise ValueError(f"{path}: {kind} of {where} lacks the keys {missing}")
        for key in required:
            expected, name = _KEY_TYPES[key]
            value = item[key]
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(
                    f"{path}: {kind} of {where}: {key!r} is {_json_kind(value)}, expected {name}"
                )


def _load_items(path: str | os.PathLike[str], layout: Layout, list_key: str) -> list[dict]:
    """Reads the items of a question or annotation file and validates their keys."""
    path = Path(path)
    items = _check_layout(read_json(path, f"VQA {list_key} file"), path, layout, list_key)
    base = QUESTION_KEYS if list_key == "questions" else ANNOTATION_KEYS
    required = base + _VQACP_EXTRA_KEYS if layout == "vqacp" else base
    kind = "question" if list_key == "questions" else "annotation"
    _check_items(items, path, required, kind)
    return items


def load_questions(path: str | os.PathLike[str], layout: Layout) -> list[dict]:
    """Reads a raw question file.

    Args:
        path: ``vqacp_v2_{train,test}_questions.json`` (``layout="vqacp"``) or
            ``v2_OpenEnded_mscoco_{train2014,val2014}_questions.json`` (``layout="vqa_v2"``).
        layout: The layout the file must have.

    Returns:
        The question items as in the file (dicts with at least ``question_id``, ``image_id``,
        ``question``; plus ``coco_split`` for VQA-CP).

    Raises:
        ValueError: If the file is not valid JSON, has the other layout (the message says which
            layout it looks like), is an annotation file, or an item lacks a key (the message
            names the file and the question id).
    """
    return _load_items(path, layout, "questions")


def load_annotations(path: str | os.PathLike[str], layout: Layout) -> list[dict]:
    """Reads a raw annotation file.

    Args:
        path: ``vqacp_v2_{train,test}_annotations.json`` (``layout="vqacp"``) or
            ``v2_mscoco_{train2014,val2014}_annotations.json`` (``layout="vqa_v2"``).
        layout: The layout the file must have.

    Returns:
        The annotation items as in the file (dicts with at least :data:`ANNOTATION_KEYS`;
        plus ``coco_split`` for VQA-CP).

    Raises:
        ValueError: As :func:`load_questions`.
    """
    return _load_items(path, layout, "annotations")


def listed(values: Sequence[Any]) -> str:
    """``"1, 2, 3, 4, 5, ... (7 in all)"``: at most :data:`MAX_LISTED` values and the count."""
    shown = ", ".join(str(v) for v in values[:MAX_LISTED])
    more = ", ..." if len(values) > MAX_LISTED else ""
    return f"{shown}{more} ({len(values)} in all)"


def _human_answers(annotation: Mapping[str, Any], path: Path) -> list[str]:
    """The raw human answer strings of one annotation item.

    Raises:
        ValueError: If ``answers`` is not a non-empty list of objects with an ``"answer"``.
    """
    answers = annotation["answers"]
    qid = annotation["question_id"]
    if not isinstance(answers, list) or not answers:
        raise ValueError(f"{path}: annotation of question_id {qid}: 'answers' is not a list")
    try:
        return [str(answer["answer"]) for answer in answers]
    except (TypeError, KeyError) as error:
        raise ValueError(
            f"{path}: annotation of question_id {qid}: every answer needs an 'answer' key"
        ) from error


def _index_by_question(items: Sequence[Mapping[str, Any]], path: Path, kind: str) -> dict:
    """``{question_id: item}``; duplicated ids are an error naming them."""
    index = {item["question_id"]: item for item in items}
    if len(index) != len(items):
        counts = Counter(item["question_id"] for item in items)
        duplicated = sorted(qid for qid, count in counts.items() if count > 1)
        raise ValueError(f"{path}: duplicated {kind} question ids {listed(duplicated)}")
    return index


def join(
    questions: Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
    questions_path: str | os.PathLike[str],
    annotations_path: str | os.PathLike[str],
) -> list[dict]:
    """Joins questions with their annotations by ``question_id``.

    Annotations without a question are ignored (a question file may be a subset).

    Args:
        questions: Items from :func:`load_questions`.
        annotations: Items from :func:`load_annotations`.
        questions_path: The question file (for messages).
        annotations_path: The annotation file (for messages).

    Returns:
        One entry per question, in question-file order: ``{"question_id": int, "image_id": int,
        "question": str, "question_type": str, "answer_type": str,
        "multiple_choice_answer": str, "answers": list[str] (raw human answers),
        "coco_split": str | None}``.

    Raises:
        ValueError: If questions lack annotations (names up to 5 ids, the count and both
            files), ids are duplicated, the image ids of a question and its annotation differ,
            or an annotation's ``answers`` are malformed.
    """
    questions_path, annotations_path = Path(questions_path), Path(annotations_path)
    _index_by_question(questions, questions_path, "question")
    by_id = _index_by_question(annotations, annotations_path, "annotation")
    missing = [q["question_id"] for q in questions if q["question_id"] not in by_id]
    if missing:
        raise ValueError(
            f"no annotation for question ids {listed(missing)} of {questions_path} in "
            f"{annotations_path}"
        )
    entries = []
    for question in questions:
        annotation = by_id[question["question_id"]]
        if annotation["image_id"] != question["image_id"]:
            raise ValueError(
                f"question_id {question['question_id']}: image_id {question['image_id']} in "
                f"{questions_path} but {annotation['image_id']} in {annotations_path}"
            )
        entries.append(
            {
                "question_id": int(question["question_id"]),
                "image_id": int(question["image_id"]),
                "question": str(question["question"]),
                "question_type": str(annotation["question_type"]),
                "answer_type": str(annotation["answer_type"]),
                "multiple_choice_answer": str(annotation["multiple_choice_answer"]),
                "answers": _human_answers(annotation, annotations_path),
                "coco_split": question.get("coco_split"),
            }
        )
    return entries


# --------------------------------------------------------------------------------------------
# Images.
# --------------------------------------------------------------------------------------------


def check_images(
    entries: Sequence[Mapping[str, Any]],
    store: ImageIndex,
    questions_path: str | os.PathLike[str],
) -> None:
    """Checks that the image of every question is in the feature store.

    Args:
        entries: Questions or joined entries with ``question_id`` and ``image_id``.
        store: The feature store (anything with ``image_ids``; its ``path`` is named in the
            message when it has one).
        questions_path: The question file (for the message).

    Raises:
        ValueError: Naming up to 5 (question id, image id) pairs, their count, the question
            file and the feature store file.
    """
    image_ids = np.fromiter((e["image_id"] for e in entries), np.int64, len(entries))
    known = np.asarray(store.image_ids, dtype=np.int64)
    missing = np.flatnonzero(~np.isin(image_ids, known))
    if missing.size == 0:
        return
    pairs = [
        f"question {entries[i]['question_id']} (image {entries[i]['image_id']})" for i in missing
    ]
    store_name = getattr(store, "path", None) or repr(store)
    raise ValueError(
        f"images of {listed(pairs)} of {questions_path} are not in the feature store "
        f"{store_name}; convert the features of these images (trainval covers COCO train2014 "
        "and val2014)"
    )
