"""COCO captions as distributed: the Karpathy split file and the robust split.

* ``dataset_coco.json`` (Karpathy and Fei-Fei 2015; ``caption_datasets.zip``)::

      {"images": [{"cocoid": int, "split": "train"|"val"|"test"|"restval",
                   "filepath": "train2014"|"val2014", "filename": str, "imgid": int,
                   "sentids": [int], "sentences": [{"tokens": [str], "raw": str,
                                                    "imgid": int, "sentid": int}]}],
       "dataset": "coco"}

  123,287 images; the ``tokens`` are lowercase with punctuation removed. Read by
  :func:`load_karpathy`, which keeps ``cocoid``, ``split``, ``filepath``, ``filename`` and
  per sentence ``tokens`` (stripped, lowercased, empty tokens dropped), ``raw`` and ``sentid``
  (-1 when absent), and checks the types, naming the file and the ``cocoid`` of a bad entry.
* ``split_robust_coco.json`` (Neural Baby Talk): ``{"train_id", "val_id", "test_id"}``, each a
  list of ``{"img_id": int}``. The package ships it
  (``hint_lightning/resources/nbt/split_robust_coco.json``, see ``ATTRIBUTION.md`` there);
  :func:`load_robust_split` reads that copy, or another file in the same format.

Split families (:func:`family_splits`), images in ``dataset_coco.json`` order:

* ``karpathy``: ``train`` = Karpathy ``train`` + ``restval`` (113,287 images), ``val`` and
  ``test`` (5,000 each);
* ``robust``: the images of ``train_id``, ``val_id`` and ``test_id``. Every robust id must be
  an image of the Karpathy file (all of COCO 2014 train + val); Karpathy images in no robust
  split (none with the real files) are counted as ``rest``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from hint_lightning.utils.io import read_json

__all__ = [
    "KARPATHY_SPLITS",
    "ROBUST_SPLIT_FILE",
    "KarpathyImage",
    "KarpathySentence",
    "RobustSplit",
    "clean_tokens",
    "family_splits",
    "load_karpathy",
    "load_robust_split",
]

KARPATHY_SPLITS: Final[tuple[str, ...]] = ("train", "val", "test", "restval")
"""The ``split`` values of ``dataset_coco.json``."""
ROBUST_SPLIT_FILE: Final = "split_robust_coco.json"
"""The robust split's file name (in the package and in ``raw/coco/``)."""
_ROBUST_KEYS: Final[dict[str, str]] = {"train": "train_id", "val": "val_id", "test": "test_id"}
_FAMILY_OF_KARPATHY: Final[dict[str, str]] = {
    "train": "train",
    "restval": "train",
    "val": "val",
    "test": "test",
}


@dataclass(frozen=True, slots=True)
class KarpathySentence:
    """One caption of ``dataset_coco.json``.

    Attributes:
        tokens: The ``tokens``, stripped and lowercased, empty ones dropped (may be empty).
        raw: The ``raw`` text as written by the annotator.
        sentid: The ``sentid`` (-1 when absent).
    """

    tokens: tuple[str, ...]
    raw: str
    sentid: int


@dataclass(frozen=True, slots=True)
class KarpathyImage:
    """One image of ``dataset_coco.json``.

    Attributes:
        cocoid: The COCO image id.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"restval"``.
        filepath: ``"train2014"`` or ``"val2014"``.
        filename: E.g. ``"COCO_val2014_000000391895.jpg"``.
        sentences: Its captions, in file order.
    """

    cocoid: int
    split: str
    filepath: str
    filename: str
    sentences: tuple[KarpathySentence, ...]


def clean_tokens(tokens: Sequence[str]) -> tuple[str, ...]:
    """Tokens stripped and lowercased, empty ones dropped.

    Example:
        >>> clean_tokens(["A", " dog ", "", "  "])
        ('a', 'dog')
    """
    return tuple(t for t in (token.strip().lower() for token in tokens) if t)


def _is_int(value: object) -> bool:
    """Whether ``value`` is a JSON integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _sentence(item: object, path: Path, cocoid: int, index: int) -> KarpathySentence:
    """A validated sentence."""
    where = f"{path}: image {cocoid}, sentence {index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    tokens, raw, sentid = item.get("tokens"), item.get("raw", ""), item.get("sentid", -1)
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"{where}: 'tokens' must be a list of strings")
    if not isinstance(raw, str) or not _is_int(sentid):
        raise ValueError(f"{where}: 'raw' must be a string and 'sentid' an integer")
    return KarpathySentence(clean_tokens(tokens), raw, int(sentid))


def _image(item: object, path: Path, position: int) -> KarpathyImage:
    """A validated image entry."""
    if not isinstance(item, dict) or not _is_int(item.get("cocoid")):
        raise ValueError(f"{path}: images[{position}] has no integer 'cocoid'")
    cocoid = int(item["cocoid"])
    split = item.get("split")
    if split not in KARPATHY_SPLITS:
        raise ValueError(
            f"{path}: image {cocoid} has the split {split!r}, expected one of "
            f"{list(KARPATHY_SPLITS)}"
        )
    sentences = item.get("sentences")
    if not isinstance(sentences, list):
        raise ValueError(f"{path}: image {cocoid} has no 'sentences' list")
    return KarpathyImage(
        cocoid=cocoid,
        split=split,
        filepath=str(item.get("filepath", "")),
        filename=str(item.get("filename", "")),
        sentences=tuple(_sentence(s, path, cocoid, i) for i, s in enumerate(sentences)),
    )


def load_karpathy(path: str | os.PathLike[str]) -> list[KarpathyImage]:
    """Reads and validates ``dataset_coco.json``.

    Args:
        path: The file.

    Returns:
        Its images, in file order.

    Raises:
        ValueError: For a malformed file (naming the file and the image's ``cocoid``), or an
            image id listed twice.
    """
    path = Path(path)
    payload = read_json(path, "Karpathy split file (dataset_coco.json)")
    if not isinstance(payload, dict) or not isinstance(payload.get("images"), list):
        raise ValueError(f"{path} is not a Karpathy split file (no 'images' list)")
    images = [_image(item, path, i) for i, item in enumerate(payload["images"])]
    seen: set[int] = set()
    for image in images:
        if image.cocoid in seen:
            raise ValueError(f"{path}: image {image.cocoid} is listed twice")
        seen.add(image.cocoid)
    return images


@dataclass(frozen=True)
class RobustSplit:
    """The robust split's image ids.

    Attributes:
        splits: ``{"train": [...], "val": [...], "test": [...]}`` COCO image ids, in file order.
        source: Where it was read from (a path, or ``package:...`` for the shipped copy).
        sha256: Digest of the file's bytes (for up-to-date checks).
    """

    splits: Mapping[str, tuple[int, ...]]
    source: str
    sha256: str


def _shipped_robust_split() -> bytes:
    """The bytes of the robust split that ships with the package."""
    path = resources.files("hint_lightning") / "resources" / "nbt" / ROBUST_SPLIT_FILE
    return path.read_bytes()


def load_robust_split(path: str | os.PathLike[str] | None = None) -> RobustSplit:
    """Reads a robust split file (by default the shipped copy of NBT's).

    Args:
        path: A file in the format of ``split_robust_coco.json``; None for the shipped one.

    Returns:
        The split.

    Raises:
        ValueError: When the file is malformed or an image id is listed twice (naming the
            file and the id).

    Example:
        >>> split = load_robust_split()
        >>> {name: len(ids) for name, ids in split.splits.items()}
        {'train': 110234, 'val': 3915, 'test': 9138}
    """
    if path is None:
        data, source = (
            _shipped_robust_split(),
            f"package:hint_lightning/resources/nbt/{ROBUST_SPLIT_FILE}",
        )
    else:
        data, source = Path(path).read_bytes(), str(path)
    try:
        payload: Any = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        empty = "empty file" if not data.strip() else f"not valid JSON ({error})"
        raise ValueError(f"{source}: {empty}, expected a robust split file") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{source} is not a robust split file (not an object)")
    splits: dict[str, tuple[int, ...]] = {}
    owner: dict[int, str] = {}
    for split, key in _ROBUST_KEYS.items():
        items = payload.get(key)
        if not isinstance(items, list):
            raise ValueError(f"{source}: no {key!r} list")
        ids = []
        for item in items:
            if not isinstance(item, dict) or not _is_int(item.get("img_id")):
                raise ValueError(f"{source}: {key} holds {item!r}, expected {{'img_id': int}}")
            image_id = int(item["img_id"])
            if image_id in owner:
                raise ValueError(
                    f"{source}: image {image_id} is listed in {owner[image_id]} and in {split}"
                )
            owner[image_id] = split
            ids.append(image_id)
        splits[split] = tuple(ids)
    return RobustSplit(splits, source, hashlib.sha256(data).hexdigest())


def family_splits(
    images: Sequence[KarpathyImage],
    family: str,
    robust: RobustSplit | None = None,
    karpathy_path: str | os.PathLike[str] = "dataset_coco.json",
) -> dict[str, list[int]]:
    """The images of each split of a family, as positions in ``images``.

    Args:
        images: The Karpathy file's images.
        family: ``"karpathy"`` or ``"robust"``.
        robust: The robust split (required for ``"robust"``).
        karpathy_path: The Karpathy file, for error messages.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each in Karpathy-file order.

    Raises:
        ValueError: For an unknown family, or a robust id that is no image of the Karpathy
            file (naming both files and the id).
    """
    result: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    if family == "karpathy":
        for position, image in enumerate(images):
            result[_FAMILY_OF_KARPATHY[image.split]].append(position)
        return result
    if family != "robust" or robust is None:
        raise ValueError(f"unknown split family {family!r} (robust needs the robust split)")
    split_of = {image_id: split for split, ids in robust.splits.items() for image_id in ids}
    known = {image.cocoid for image in images}
    for split, ids in robust.splits.items():
        missing = next((i for i in ids if i not in known), None)
        if missing is not None:
            raise ValueError(
                f"image {missing} of the robust {split} split ({robust.source}) is not in "
                f"{karpathy_path}"
            )
    for position, image in enumerate(images):
        split = split_of.get(image.cocoid)
        if split is not None:
            result[split].append(position)
    return result
