"""The COCO caption stores (``prepared/coco/<family>/<split>.h5``), vocabularies and references.

Caption store (one per split family and split; ``C`` captions, ``I`` images, ``T = 18``)::

    image_ids [I] int64          the split's images, in dataset_coco.json order
    captions [C, T] int32        <bos> w_1 .. w_L <eos> <pad> ..., L <= 16
    lengths [C] int32            L (words, without <bos> and <eos>)
    caption_image [C] int32      row of the caption's image in image_ids
    caption_ids [C] int64        the sentence's sentid (-1 when the file has none)
    word_category [C, T] int16   COCO category id of the visual word that the token completes
    _checksums/<dataset>         XXH3-64 per 8192 rows
    attrs: format_version, family, split, max_words, vocab_size, feature_store, sources (JSON),
           visual_word_duplicates

``vocab.json`` is the family's vocabulary (a JSON list, special tokens first:
:mod:`hint_lightning.text.tokens`); ``<split>_references.json`` the COCO caption-annotation
format pycocoevalcap reads (``{"info", "images", "annotations": [{"image_id", "id",
"caption"}], "type"}``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hint_lightning.stores.checksum import Checksums, write_checksums
from hint_lightning.stores.errors import StoreError, open_store, read_errors, warn_unverified
from hint_lightning.stores.versions import CAPTION_STORE_VERSION
from hint_lightning.utils.io import atomic_path, read_json, write_text

__all__ = [
    "CAPTION_DATASETS",
    "coco_references",
    "read_caption_store",
    "read_references",
    "write_caption_arrays",
    "write_references",
]

CAPTION_DATASETS: Final[tuple[str, ...]] = (
    "image_ids",
    "captions",
    "lengths",
    "caption_image",
    "caption_ids",
    "word_category",
)
"""The datasets of a caption store."""
_LOADED: Final[tuple[str, ...]] = ("image_ids", "captions", "caption_image", "word_category")
"""The datasets :func:`read_caption_store` returns."""


def write_caption_arrays(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]
) -> Path:
    """Writes a caption store atomically, with its checksums.

    Args:
        path: The ``.h5`` file.
        arrays: The datasets of :data:`CAPTION_DATASETS`.
        attrs: Root attributes; ``format_version`` is set here.

    Returns:
        ``path`` as a Path.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name in CAPTION_DATASETS:
            handle.create_dataset(name, data=arrays[name])
            write_checksums(handle, name, arrays[name])
        handle.attrs.update({**attrs, "format_version": CAPTION_STORE_VERSION})
    return Path(path)


def _check_range(path: Path, name: str, values: np.ndarray, high: int) -> None:
    """:class:`StoreError` naming the first caption (row) of ``name`` outside ``[0, high)``."""
    flat = values.reshape(len(values), -1)
    bad = np.flatnonzero(((flat < 0) | (flat >= high)).any(axis=1))
    if bad.size:
        row = int(bad[0])
        raise StoreError(
            path,
            f"{name} of caption row {row} is {values[row].tolist()}, outside [0, {high}) "
            f"({bad.size} row(s) in all)",
        )


def read_caption_store(
    path: str | os.PathLike[str], features: str, vocab_size: int | None = None
) -> dict[str, np.ndarray]:
    """Reads and checks a caption store.

    Args:
        path: The caption store.
        features: The configured feature store name (the store must have been prepared with
            it, when it says).
        vocab_size: V: token ids must be below it (None: unchecked).

    Returns:
        ``image_ids [I]``, ``captions [C, T]``, ``caption_image [C]`` and
        ``word_category [C, T]``, all int64.

    Raises:
        StoreError: (a ``ValueError``) When the file is unreadable (truncated), of another
            format version, holds an id out of range or differs from its checksums.
        ValueError: When it was prepared with another feature store.
    """
    path = Path(path)
    with open_store(path, "caption store") as handle, read_errors(path, "the caption store"):
        found = int(handle.attrs.get("format_version", -1))
        if found != CAPTION_STORE_VERSION:
            raise StoreError(
                path, f"format_version {found}, this code reads {CAPTION_STORE_VERSION}"
            )
        prepared_with = handle.attrs.get("feature_store")
        if prepared_with not in (None, features):
            raise ValueError(
                f"{path} was prepared with the feature store {prepared_with!r}, not "
                f"data.features={features!r}"
            )
        arrays = {name: handle[name][()] for name in _LOADED}
        checksums = Checksums.read(handle, path)
    if vocab_size is not None:
        _check_range(path, "captions", arrays["captions"], vocab_size)
    _check_range(path, "caption_image", arrays["caption_image"], len(arrays["image_ids"]))
    if checksums is None:
        warn_unverified(path)
    else:
        for name in _LOADED:
            checksums.verify_array(name, arrays[name])
    return {name: value.astype(np.int64) for name, value in arrays.items()}


def coco_references(dataset: Mapping[str, Any]) -> dict[int, list[str]]:
    """The references of a COCO caption annotation file, as the caption metrics take them.

    Args:
        dataset: a loaded COCO caption file (``captions_val2014.json`` format), of which only
            ``annotations`` (``{"image_id", "caption", ...}``) is read.

    Returns:
        image id -> raw reference captions, in annotation-file order (as ``COCO.imgToAnns``).

    Examples:
        >>> coco_references({"annotations": [{"image_id": 7, "caption": "A cat."},
        ...                                  {"image_id": 7, "caption": "a kitten"}]})
        {7: ['A cat.', 'a kitten']}
    """
    references: dict[int, list[str]] = {}
    for annotation in dataset["annotations"]:
        references.setdefault(int(annotation["image_id"]), []).append(annotation["caption"])
    return references


def read_references(path: str | os.PathLike[str]) -> dict[int, list[str]]:
    """Image id -> raw reference captions of a ``<split>_references.json`` file.

    Raises:
        ValueError: Naming the file when it is empty, not JSON or not in the COCO format.
    """
    payload = read_json(path, "COCO caption references file")
    try:
        return coco_references(payload)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a COCO caption references file ({error!r})") from None


def write_references(path: str | os.PathLike[str], references: Mapping[str, Any]) -> Path:
    """Writes references as compact JSON, atomically."""
    return write_text(path, json.dumps(references, separators=(",", ":")) + "\n")
