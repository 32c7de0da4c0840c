"""Tiny raw COCO captioning files in exactly the distributed formats, for tests and examples.

* ``dataset_coco.json`` (Karpathy split, ``caption_datasets.zip``):
  ``{"images": [{"filepath", "sentids", "filename", "imgid", "split", "sentences":
  [{"tokens", "raw", "imgid", "sentid"}], "cocoid"}], "dataset": "coco"}``; ``tokens`` are the
  lowercase alphanumeric words of ``raw``.
* ``instances_{train,val}2014.json`` (COCO 2014 annotations): ``{"info", "images": [{"license",
  "file_name", "coco_url", "height", "width", "date_captured", "flickr_url", "id"}],
  "licenses", "annotations": [{"segmentation", "area", "iscrowd", "image_id", "bbox",
  "category_id", "id"}], "categories": [{"supercategory", "id", "name"}]}`` with the 80 official
  categories. Segmentations: polygons (``[[x1, y1, x2, y2, ...], ...]``, some with two rings),
  uncompressed RLE crowd regions (``{"counts": [int, ...], "size": [h, w]}``, column-major runs
  starting with background, as in the real files) and one compressed RLE (``counts`` a string,
  as pycocotools writes it; the real instances files have none, results files do).
* ``split_robust_coco.json`` (Neural Baby Talk): ``{"train_id", "val_id", "test_id"}`` lists of
  ``{"img_id"}``. The prepare step reads the shipped robust split unless
  ``raw/coco/split_robust_coco.json`` exists; the fixture writes one because its image ids are
  random, not real COCO ids.

:func:`make_coco_examples` builds them for given images (ids and sizes from the bottom-up
fixture, so every image has features). Image n has the categories ``2n``, ``2n + 1`` (and
``2n + 2`` for odd n) of :data:`FIXTURE_CATEGORY_WORDS`, cyclically, and five captions that
name them with visual words, in singular and plural (``men``, ``mice``, ``knives``) and with
two-word phrases (``teddy bears``, ``hot dog``, ``motor bike``, ``cell phone``). Image 0 has a
caption longer than 16 words; image 1 a caption that is empty after tokenization (``raw`` is
``" ."``). An image's first category has exactly one polygon, an axis-aligned rectangle with
integer corners, plus an uncompressed RLE crowd region on every third image (n = 0, 3, ...)
and a compressed RLE on image 1, so its union mask can be rasterized by hand; the other
categories have one or two random polygons each (two rings on images n = 1, 5, ...). Every
seventh image (n = 6, 13, ...) has no annotation at all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from pycocotools import mask as mask_utils

from hint_lightning.testing.tsv import BottomUpImage
from hint_lightning.text.visual_words import COCO_CATEGORIES
from hint_lightning.utils.io import write_text

__all__ = [
    "COCO_INSTANCES_INFO",
    "COCO_LICENSES",
    "FIXTURE_CATEGORY_WORDS",
    "FIXTURE_WORD_COUNT_THRESHOLD",
    "CocoExamples",
    "karpathy_split_of",
    "make_coco_examples",
    "rectangle_polygon",
    "robust_split_of",
    "uncompressed_rle",
    "write_coco_files",
    "write_coco_instances",
    "write_karpathy_split",
    "write_robust_split",
]

FIXTURE_WORD_COUNT_THRESHOLD: Final = 1
"""The ``--word-count-threshold`` to prepare a fixture tree with (the real data uses 5)."""

COCO_INSTANCES_INFO: Final[Mapping[str, Any]] = {
    "description": "This is stable 1.0 version of the 2014 MS COCO dataset.",
    "url": "http://mscoco.org",
    "version": "1.0",
    "year": 2014,
    "contributor": "Microsoft COCO group",
    "date_created": "2015-01-27 09:11:52.357475",
}
"""The ``info`` entry of the 2014 instances files."""

COCO_LICENSES: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
        "id": 1,
        "name": "Attribution-NonCommercial-ShareAlike License",
    },
    {
        "url": "http://creativecommons.org/licenses/by/2.0/",
        "id": 4,
        "name": "Attribution License",
    },
)
"""Two of the ``licenses`` entries of the instances files."""

FIXTURE_CATEGORY_WORDS: Final[Mapping[int, tuple[tuple[str, str], ...]]] = {
    1: (("man", "men"), ("woman", "women"), ("child", "people")),
    2: (("bike", "bicycles"),),
    4: (("motor bike", "motorcycles"),),
    10: (("traffic light", "traffic lights"),),
    18: (("dog", "puppies"),),
    20: (("sheep", "lambs"),),
    28: (("umbrella", "umbrellas"),),
    49: (("knife", "knives"),),
    58: (("hot dog", "hot dogs"),),
    63: (("couch", "sofas"),),
    74: (("mouse", "mice"),),
    77: (("cell phone", "phones"),),
    88: (("teddy bear", "teddy bears"),),
}
"""Categories of the fixture images and the ``(singular, plural)`` words captions use."""

_TEMPLATES: Final = (
    "{a} next to {b}.",
    "A photo of {a} and {b} on the street",
    "There is {a} near {b} in this picture.",
    "Close up of {a} beside {b}",
    "{a} sitting with {b} on a sunny day",
)
_LONG: Final = (
    "A very long caption about {a} that keeps going with many more words than the model "
    "keeps, next to {b}"
)
_COUNTS: Final = ("two", "three", "some", "many")
_FIRST_SENTID: Final = 770_000
_DATE: Final = "2013-11-14 16:28:13"


@dataclass
class CocoExamples:
    """The content of the raw COCO files of a fixture tree.

    Attributes:
        karpathy: The ``images`` items of ``dataset_coco.json``.
        instances: ``"train2014"`` / ``"val2014"`` -> ``(images, annotations)`` items.
        robust: ``{"train": [...], "val": [...], "test": [...]}`` image ids.
    """

    karpathy: list[dict[str, Any]] = field(default_factory=list)
    instances: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = field(
        default_factory=dict
    )
    robust: dict[str, list[int]] = field(default_factory=dict)


def karpathy_split_of(position: int, subtype: str) -> str:
    """The fixture's Karpathy split of image ``position``: train2014 images are ``train``;
    val2014 images (every third) cycle through ``test``, ``val``, ``restval`` (as in the real
    file, whose val and test images are val2014 images)."""
    return "train" if subtype == "train2014" else ("test", "val", "restval")[(position // 3) % 3]


def robust_split_of(position: int) -> str:
    """The fixture's robust split of image ``position`` (test and val mix train2014 and val2014
    images, as the real robust split does)."""
    return {2: "test", 3: "val"}.get(position % 4, "train")


def rectangle_polygon(x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """A one-ring polygon ``[x0, y0, x1, y0, x1, y1, x0, y1]``: pycocotools fills exactly the
    pixels ``[y0:y1, x0:x1]``."""
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """A binary mask as an uncompressed COCO RLE (column-major runs, background first).

    Args:
        mask: ``[H, W]`` 0/1.

    Returns:
        ``{"counts": [int, ...], "size": [H, W]}``.

    Example:
        >>> uncompressed_rle(np.array([[0, 1], [0, 1]]))
        {'counts': [2, 2], 'size': [2, 2]}
    """
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"counts": [int(r) for r in runs], "size": [int(s) for s in mask.shape]}


def _tokens(raw: str) -> list[str]:
    """Karpathy-style tokens: the lowercase alphanumeric words."""
    return re.findall(r"[a-z0-9]+", raw.lower())


def _phrase(word: tuple[str, str], plural: bool, rng: np.random.Generator) -> str:
    """``a dog`` / ``an umbrella``, or ``two puppies``."""
    singular, plurals = word
    if plural:
        return f"{_COUNTS[int(rng.integers(len(_COUNTS)))]} {plurals}"
    return f"{'an' if singular[0] in 'aeiou' else 'a'} {singular}"


def _captions(position: int, categories: Sequence[int], rng: np.random.Generator) -> list[str]:
    """Five raw captions naming the image's categories, in singular and plural."""
    captions = []
    for index, template in enumerate(_TEMPLATES):
        phrases = []
        for k in range(2):
            choices = FIXTURE_CATEGORY_WORDS[categories[(index + k) % len(categories)]]
            word = choices[(index + position) % len(choices)]
            phrases.append(_phrase(word, (index + k + position) % 2 == 1, rng))
        if position == 0 and index == 4:
            template = _LONG
        text = template.format(a=phrases[0], b=phrases[1])
        captions.append(text[0].upper() + text[1:])
    if position == 1:
        captions[-1] = " ."  # nothing left after tokenization
    return captions


def _polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    """A random convex-ish polygon ring inside the image (2-decimal coordinates)."""
    center = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height])
    radius = rng.uniform(0.05, 0.2) * min(width, height)
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
    points = center + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = np.clip(points, 0, [width - 1, height - 1]).round(2)
    return [float(v) for v in points.ravel()]


def _ellipse(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A filled ellipse [H, W] uint8."""
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.1, 0.25) * height, rng.uniform(0.1, 0.25) * width
    rows, cols = np.ogrid[:height, :width]
    return (((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0).astype(np.uint8)


def _annotation(
    segmentation: Any, image_id: int, category_id: int, height: int, width: int, crowd: bool
) -> dict[str, Any]:
    """An instances item (area and bbox computed by pycocotools, as in the real files)."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    return {
        "segmentation": segmentation,
        "area": float(mask_utils.area(rle)),
        "iscrowd": int(crowd),
        "image_id": image_id,
        "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)],
        "category_id": category_id,
        "id": 0,  # numbered later
    }


def _instances(
    position: int, image: BottomUpImage, categories: Sequence[int], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The annotations of one image (see the module docstring)."""
    image_id, width, height = image[0], image[1], image[2]
    if position % 7 == 6:
        return []
    x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    x1 = int(rng.integers(x0 + 2, width + 1))
    y1 = int(rng.integers(y0 + 2, height + 1))
    items = [
        _annotation(
            [rectangle_polygon(x0, y0, x1, y1)], image_id, categories[0], height, width, False
        )
    ]
    for category_id in categories[1:]:
        for _ in range(int(rng.integers(1, 3))):
            rings = [_polygon(rng, width, height) for _ in range(1 + int(position % 4 == 1))]
            items.append(_annotation(rings, image_id, category_id, height, width, False))
    if position % 3 == 0:
        crowd = uncompressed_rle(_ellipse(rng, width, height))
        items.append(_annotation(crowd, image_id, categories[0], height, width, True))
    if position == 1:
        mask = np.asfortranarray(_ellipse(rng, width, height))
        compressed = mask_utils.encode(mask)
        segmentation = {"size": [height, width], "counts": compressed["counts"].decode("ascii")}
        items.append(_annotation(segmentation, image_id, categories[0], height, width, True))
    return items


def _image_item(image: BottomUpImage, subtype: str) -> dict[str, Any]:
    """An ``images`` item of an instances file."""
    image_id, width, height = image[0], image[1], image[2]
    name = f"COCO_{subtype}_{image_id:012d}.jpg"
    return {
        "license": 4,
        "file_name": name,
        "coco_url": f"http://images.cocodataset.org/{subtype}/{name}",
        "height": int(height),
        "width": int(width),
        "date_captured": _DATE,
        "flickr_url": f"http://farm4.staticflickr.com/4000/{image_id}_0000000000_z.jpg",
        "id": int(image_id),
    }


def make_coco_examples(
    images: Sequence[BottomUpImage], coco_split: Mapping[int, str], seed: int = 0
) -> CocoExamples:
    """The fixture's Karpathy split, instances and robust split for ``images``.

    Args:
        images: ``(image_id, width, height, boxes, features)`` of the bottom-up fixture.
        coco_split: Image id -> ``"train2014"`` or ``"val2014"``.
        seed: Seed of every random choice.

    Returns:
        The file contents (:class:`CocoExamples`).
    """
    rng = np.random.default_rng(seed)
    pool = sorted(FIXTURE_CATEGORY_WORDS)
    examples = CocoExamples(
        instances={"train2014": ([], []), "val2014": ([], [])},
        robust={"train": [], "val": [], "test": []},
    )
    sentid = _FIRST_SENTID
    for position, image in enumerate(images):
        image_id, subtype = int(image[0]), coco_split[image[0]]
        count = 2 + int(position % 2)
        categories = [pool[(2 * position + k) % len(pool)] for k in range(count)]
        raws = _captions(position, categories, rng)
        sentences = [
            {"tokens": _tokens(raw), "raw": raw, "imgid": position, "sentid": sentid + i}
            for i, raw in enumerate(raws)
        ]
        examples.karpathy.append(
            {
                "filepath": subtype,
                "sentids": [s["sentid"] for s in sentences],
                "filename": f"COCO_{subtype}_{image_id:012d}.jpg",
                "imgid": position,
                "split": karpathy_split_of(position, subtype),
                "sentences": sentences,
                "cocoid": image_id,
            }
        )
        sentid += len(sentences)
        instance_images, items = examples.instances[subtype]
        instance_images.append(_image_item(image, subtype))
        items.extend(_instances(position, image, categories, rng))
        examples.robust[robust_split_of(position)].append(image_id)
    next_id = 100_000
    for _, items in examples.instances.values():
        for annotation in items:
            annotation["id"] = next_id
            next_id += 1
    return examples


def _write_compact_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """JSON without indentation (like the distributed files), atomically."""
    return write_text(path, json.dumps(payload, separators=(",", ":")))


def write_karpathy_split(path: str | os.PathLike[str], images: Sequence[Mapping[str, Any]]) -> Path:
    """Writes ``dataset_coco.json`` (``{"images": [...], "dataset": "coco"}``)."""
    return _write_compact_json(path, {"images": list(images), "dataset": "coco"})


def write_coco_instances(
    path: str | os.PathLike[str],
    images: Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
) -> Path:
    """Writes an ``instances_*2014.json`` file with the 80 official categories."""
    payload = {
        "info": dict(COCO_INSTANCES_INFO),
        "images": list(images),
        "licenses": [dict(item) for item in COCO_LICENSES],
        "annotations": list(annotations),
        "categories": [
            {"supercategory": supercategory, "id": category_id, "name": name}
            for category_id, name, supercategory in COCO_CATEGORIES
        ],
    }
    return _write_compact_json(path, payload)


def write_robust_split(path: str | os.PathLike[str], splits: Mapping[str, Sequence[int]]) -> Path:
    """Writes a robust split file (``{"val_id", "train_id", "test_id"}`` of ``{"img_id"}``)."""
    payload = {
        f"{split}_id": [{"img_id": int(i)} for i in splits[split]]
        for split in ("val", "train", "test")
    }
    return _write_compact_json(path, payload)


def write_coco_files(
    raw: str | os.PathLike[str],
    images: Sequence[BottomUpImage],
    coco_split: Mapping[int, str],
    seed: int = 0,
) -> list[Path]:
    """Writes ``raw/coco/``: the Karpathy split, both instances files and a robust split.

    Args:
        raw: The ``raw/`` folder.
        images: The bottom-up fixture's images.
        coco_split: Image id -> ``"train2014"`` or ``"val2014"``.
        seed: Seed of :func:`make_coco_examples`.

    Returns:
        The written files.
    """
    folder = Path(raw) / "coco"
    examples = make_coco_examples(images, coco_split, seed)
    written = [write_karpathy_split(folder / "dataset_coco.json", examples.karpathy)]
    for subtype, (instance_images, items) in examples.instances.items():
        path = folder / "annotations" / f"instances_{subtype}.json"
        written.append(write_coco_instances(path, instance_images, items))
    written.append(write_robust_split(folder / "split_robust_coco.json", examples.robust))
    return written
