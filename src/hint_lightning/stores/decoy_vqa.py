"""The decoy_vqa store: easy-VQA with a visual shortcut, every split in one checksummed file.

Built by :func:`hint_lightning.prepare.decoy_vqa.ensure_store` as
``<cache_dir>/decoy_vqa_<digest>.h5`` (the digest hashes every :class:`DecoyVQAParams` field and
:data:`DECOY_VQA_STORE_VERSION`). An image row is one *variant* of a package image (the same
picture with a coded, random, flipped or no decoy); a question row points at a variant.

=============================  ============  =======  ===========================================
dataset                        shape         dtype    content
=============================  ============  =======  ===========================================
``images/image_id``            [I]           int64    variant id: ``split * 10000 + package id``
``images/source_image_id``     [I]           int64    the package image (test: 4000 + k)
``images/split``               [I]           int8     index into :data:`SPLITS`
``images/pixels``              [I, H, W, 3]  uint8    the painted image (for patch tokens)
``images/features``            [I, N, D]     float32  proposal features (standardized, train)
``images/boxes``               [I, N, 4]     float32  proposals in [0, 1]
``images/human_importance``    [I, N]        float32  from the shape mask before painting
``images/decoy_proposals``     [I, N]        bool     proposals covering the decoy
``images/decoy_box``           [I, 4]        float32  where the decoy is (or would be) in [0, 1]
``images/decoy_color``         [I]           int8     colour index (-1: no decoy)
``images/shape``               [I]           int8     index into ``SHAPE_WORDS``
``questions/question_id``      [Q]           int64    ``split * 1000000 + package question id``
``questions/image_index``      [Q]           int64    row in ``images/``
``questions/tokens``           [Q, T]        int64    token ids, 0-padded
``questions/answer``           [Q]           int64    index into the ``answers`` attribute
``questions/answer_type``      [Q]           int64    index into ``ANSWER_TYPES``
``questions/shape_question``   [Q]           bool     the answer depends on the shape
``questions/question``         [Q]           str      question text
``questions/split``            [Q]           int8     index into :data:`SPLITS`
=============================  ============  =======  ===========================================

Also ``features/mean`` and ``features/std`` [D]; root attributes ``format_version``, ``params``,
``answers``, ``tokens``, ``splits`` (JSON). Every dataset carries XXH3 checksums (one block per
image, or per 8192 questions); :func:`load_store` checks them and every index, and stops with a
one-line :class:`~hint_lightning.stores.errors.StoreError` naming the file and the item.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hint_lightning.stores.checksum import Checksums, write_checksums
from hint_lightning.stores.errors import StoreError, open_store, read_errors
from hint_lightning.text.answers import ANSWER_TYPES
from hint_lightning.utils.io import atomic_path

__all__ = [
    "DECOY_FORMS",
    "DECOY_VQA_STORE_VERSION",
    "IMAGE_DATASETS",
    "QUESTION_DATASETS",
    "SPLITS",
    "DecoyVQAArrays",
    "DecoyVQAParams",
    "load_store",
    "write_store",
]

DECOY_VQA_STORE_VERSION: Final = 1
"""Format version of ``decoy_vqa_<digest>.h5``."""
SPLITS: Final[tuple[str, ...]] = (
    "train",
    "val",
    "val_random",
    "test_clean",
    "test_random",
    "test_flipped",
)
"""The named splits. ``train``/``val``: decoy coded with reliability ``p`` (none in the
decoy-free reference); ``val_random``: the val images with a random decoy colour (model
selection: it does not reward the shortcut); ``test_clean``: no decoy; ``test_random``: a random
colour; ``test_flipped``: always a wrong shape's colour."""
DECOY_FORMS: Final[tuple[str, ...]] = ("color",)
"""Implemented values of ``decoy.form`` (a position code is not implemented)."""
IMAGE_DATASETS: Final[tuple[str, ...]] = (
    "image_id",
    "source_image_id",
    "split",
    "pixels",
    "features",
    "boxes",
    "human_importance",
    "decoy_proposals",
    "decoy_box",
    "decoy_color",
    "shape",
)
QUESTION_DATASETS: Final[tuple[str, ...]] = (
    "question_id",
    "image_index",
    "tokens",
    "answer",
    "answer_type",
    "shape_question",
    "question",
    "split",
)
_QUESTION_BLOCK: Final = 8192


@dataclass(frozen=True)
class DecoyVQAParams:
    """Every parameter that changes the content of the store.

    Attributes:
        p: Probability that a train/val decoy has its shape's colour.
        form: What the decoy codes the shape with (:data:`DECOY_FORMS`).
        size: Side of the decoy square, in pixels.
        margin: Pixels between the decoy and the image edge.
        box: Add one proposal exactly on the decoy (N = ``num_proposals + 1``).
        train_decoy: Paint decoys on train/val; False builds the decoy-free reference.
        val_fraction: Share of the package's train images held out as val (by image).
        seed: Seed of the proposals, the val images, the corners and the colours.
        num_proposals: Proposals per image before the decoy box (>= 16).
        blur_sigma: Gaussian blur of the shape mask (pixels).
        max_question_length: T.
        max_images: Keep only the first this many package train and test images (tests).
    """

    p: float = 0.95
    form: str = "color"
    size: int = 6
    margin: int = 2
    box: bool = True
    train_decoy: bool = True
    val_fraction: float = 0.1
    seed: int = 0
    num_proposals: int = 24
    blur_sigma: float = 3.0
    max_question_length: int = 14
    max_images: int | None = None

    def __post_init__(self) -> None:
        if self.form not in DECOY_FORMS:
            raise ValueError(
                f"data.decoy.form={self.form!r} is not implemented (implemented: "
                f"{', '.join(DECOY_FORMS)})"
            )
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"data.decoy.p must be in [0, 1], got {self.p}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """The parameters and the format version, as a JSON-ready dict."""
        return {**asdict(self), "format_version": DECOY_VQA_STORE_VERSION}

    def digest(self) -> str:
        """A 12-hex-digit hash of :meth:`to_dict`."""
        payload = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def filename(self) -> str:
        """``decoy_vqa_<digest>.h5``."""
        return f"decoy_vqa_{self.digest()}.h5"


@dataclass(frozen=True)
class DecoyVQAArrays:
    """A loaded store (numpy arrays named as the datasets; see the module docstring)."""

    images: dict[str, np.ndarray]
    questions: dict[str, np.ndarray]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    answers: tuple[str, ...]
    tokens_vocab: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)

    def split_rows(self, split: str) -> np.ndarray:
        """Question rows of a named split, ascending."""
        return np.flatnonzero(self.questions["split"] == SPLITS.index(split))


def write_store(
    path: str | os.PathLike[str],
    images: Mapping[str, np.ndarray],
    questions: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
) -> Path:
    """Writes a store atomically (temporary file, then renamed).

    Args:
        path: The ``.h5`` file.
        images: :data:`IMAGE_DATASETS` plus ``feature_mean`` and ``feature_std``.
        questions: :data:`QUESTION_DATASETS` (strings as object arrays).
        attrs: JSON-ready ``params``, ``answers``, ``tokens``.
    """
    strings = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for group, arrays, names, rows in (
            ("images", images, IMAGE_DATASETS, 1),
            ("questions", questions, QUESTION_DATASETS, _QUESTION_BLOCK),
        ):
            for name in names:
                value = np.asarray(arrays[name])
                dtype = strings if value.dtype == object else None
                handle.create_dataset(f"{group}/{name}", data=value, dtype=dtype)
                write_checksums(handle, f"{group}/{name}", value, block_rows=rows)
        for key, name in (("feature_mean", "features/mean"), ("feature_std", "features/std")):
            handle.create_dataset(name, data=images[key])
        handle.attrs["format_version"] = DECOY_VQA_STORE_VERSION
        handle.attrs["splits"] = json.dumps(list(SPLITS))
        for key, value in attrs.items():
            handle.attrs[key] = json.dumps(value)
    return Path(path)


def _check_range(path: Path, name: str, values: np.ndarray, size: int) -> None:
    bad = np.flatnonzero(((values < 0) | (values >= size)).reshape(len(values), -1).any(axis=1))
    if bad.size:
        raise StoreError(
            path,
            f"questions/{name} of row {int(bad[0])} is {values[bad[0]].tolist()}, outside "
            f"[0, {size}) ({bad.size} row(s) in all)",
        )


def _item(group: str):
    """Names a checksum block in messages."""

    def name(start: int, stop: int) -> str:
        return f"image row {start}" if group == "images" else f"question rows {start}-{stop - 1}"

    return name


def load_store(path: str | os.PathLike[str]) -> DecoyVQAArrays:
    """Loads and checks a whole store (ranges, finite features, checksums).

    Raises:
        StoreError: On an unreadable file, another format version, an index out of range or
            content that differs from its checksums (one line naming the file and the item).
    """
    path = Path(path)
    with open_store(path, "decoy_vqa store") as handle, read_errors(path, "the store"):
        version = int(handle.attrs.get("format_version", -1))
        if version != DECOY_VQA_STORE_VERSION:
            raise StoreError(
                path, f"store format {version}, this code reads {DECOY_VQA_STORE_VERSION}"
            )
        checksums = Checksums.read(handle, path)
        if checksums is None:
            raise StoreError(path, "it carries no checksums: delete it to rebuild it")
        groups: dict[str, dict[str, np.ndarray]] = {"images": {}, "questions": {}}
        for group, names in (("images", IMAGE_DATASETS), ("questions", QUESTION_DATASETS)):
            for name in names:
                dataset = handle[group][name]
                if h5py.check_string_dtype(dataset.dtype) is not None:
                    value = np.array(dataset.asstr()[()], dtype=object)
                else:
                    value = dataset[()]
                checksums.verify_array(f"{group}/{name}", value, _item(group))
                groups[group][name] = value
        attrs = {key: json.loads(handle.attrs[key]) for key in ("answers", "tokens", "params")}
        mean, std = handle["features/mean"][()], handle["features/std"][()]
    questions, images = groups["questions"], groups["images"]
    _check_range(path, "answer", questions["answer"], len(attrs["answers"]))
    _check_range(path, "answer_type", questions["answer_type"], len(ANSWER_TYPES))
    _check_range(path, "image_index", questions["image_index"], len(images["image_id"]))
    _check_range(path, "split", questions["split"], len(SPLITS))
    _check_range(path, "tokens", questions["tokens"], len(attrs["tokens"]))
    if not np.isfinite(images["features"]).all():
        finite = np.isfinite(images["features"]).reshape(len(images["features"]), -1).all(1)
        row = int(np.argmin(finite))
        raise StoreError(path, f"images/features of image row {row} is not finite")
    return DecoyVQAArrays(
        images=images,
        questions=questions,
        feature_mean=mean,
        feature_std=std,
        answers=tuple(attrs["answers"]),
        tokens_vocab=tuple(attrs["tokens"]),
        params=attrs["params"],
    )
