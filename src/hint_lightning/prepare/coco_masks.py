"""COCO instance segmentations -> human importance of every proposal for each category.

For captioning, HINT takes the segmentation of the category that a visual word names as the
human attention map (Selvaraju et al. 2019, section 3.1). Per image and per category with at
least one instance in the image, the map is the union of the category's instance masks
(crowd regions included), rasterized at the image's size with pycocotools exactly as
``COCO.annToMask`` does: polygons through ``frPyObjects`` (all rings of an instance),
uncompressed RLE (``{"counts": [int], "size": [h, w]}``, the crowd annotations of the
instances files) through ``frPyObjects``, compressed RLE (``counts`` a string) as is. The
importance of each proposal is
:func:`hint_lightning.prepare.human_importance.proposal_importance` of that binary map
against the image's boxes from the feature store.

Validation of the segmentations: :mod:`hint_lightning.prepare.coco_segmentation` (errors
name the file, the annotation id and the image id). Category ids must be among the 80 COCO ids,
and the file's ``categories`` must be the official ones (id and name), which is what makes line
``i`` of the visual-word mapping category ``COCO_CATEGORY_IDS[i]``.

When the feature store's image size differs from the instances file's, the boxes are scaled to
the instances size (the ids are listed in the store's ``size_mismatch`` attribute; the real
files agree).

Importance store (:func:`write_visual_word_importance`; layout:
:mod:`hint_lightning.stores.coco_importance`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.prepare.coco_segmentation import (
    category_masks,
    rle_string_counts,
    segmentation_problem,
    segmentation_rles,
)
from hint_lightning.prepare.human_importance import proposal_importance
from hint_lightning.prepare.vqa_hat import FeatureBoxes
from hint_lightning.stores.coco_importance import write_coco_importance
from hint_lightning.text.visual_words import COCO_CATEGORIES_BY_ID, COCO_CATEGORY_IDS
from hint_lightning.utils.io import read_json

__all__ = [
    "InstancesFile",
    "category_masks",
    "load_instances",
    "rle_string_counts",
    "segmentation_problem",
    "segmentation_rles",
    "write_visual_word_importance",
]

_MAX_LISTED: Final = 20


@dataclass
class InstancesFile:
    """The parts of an ``instances_*.json`` the importance needs.

    Attributes:
        path: The file.
        sizes: Image id -> ``(height, width)``.
        annotations: Image id -> its annotations (``id``, ``category_id``, ``segmentation``).
    """

    path: Path
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def _check_categories(categories: object, path: Path) -> None:
    """The file's categories must be the official ones (id and name)."""
    if not isinstance(categories, list):
        raise ValueError(f"{path}: no 'categories' list")
    for category in categories:
        official = COCO_CATEGORIES_BY_ID.get(
            category.get("id") if isinstance(category, dict) else None
        )
        if official is None or category.get("name") != official[1]:
            raise ValueError(
                f"{path}: category {category!r} is not one of the 80 COCO categories (the "
                "visual-word mapping is in COCO category order)"
            )


def _image_sizes(images: object, path: Path) -> dict[int, tuple[int, int]]:
    """Image id -> (height, width)."""
    if not isinstance(images, list):
        raise ValueError(f"{path}: no 'images' list")
    sizes = {}
    for image in images:
        valid = isinstance(image, dict) and all(
            isinstance(image.get(k), int) and image[k] > (0 if k != "id" else -1)
            for k in ("id", "height", "width")
        )
        if not valid:
            raise ValueError(f"{path}: image entry {image!r} lacks an integer id, height or width")
        sizes[int(image["id"])] = (int(image["height"]), int(image["width"]))
    return sizes


def _check_annotation(annotation: object, sizes: Mapping[int, tuple[int, int]], path: Path) -> None:
    """Ids, image, category and segmentation of one annotation (errors name them)."""
    if not isinstance(annotation, dict) or not isinstance(annotation.get("id"), int):
        raise ValueError(f"{path}: annotation {annotation!r:.200} has no integer id")
    ann_id, image_id = annotation["id"], annotation.get("image_id")
    if image_id not in sizes:
        raise ValueError(
            f"{path}: annotation {ann_id} refers to image {image_id!r}, not in 'images'"
        )
    category_id = annotation.get("category_id")
    if category_id not in COCO_CATEGORIES_BY_ID:
        raise ValueError(
            f"{path}: annotation {ann_id} of image {image_id} has the unknown category id "
            f"{category_id!r} (the 80 COCO ids are {COCO_CATEGORY_IDS[0]}..{COCO_CATEGORY_IDS[-1]} "
            "without 12, 26, 29, 30, 45, 66, 68, 69, 71, 83)"
        )
    problem = segmentation_problem(annotation.get("segmentation"), *sizes[image_id])
    if problem is not None:
        raise ValueError(
            f"{path}: annotation {ann_id} of image {image_id} has a malformed segmentation: "
            f"{problem}"
        )


def load_instances(path: str | os.PathLike[str]) -> InstancesFile:
    """Reads and validates an ``instances_{train,val}2014.json`` file.

    Args:
        path: The file.

    Returns:
        Its image sizes and annotations grouped by image.

    Raises:
        ValueError: For unofficial categories, an annotation of an unknown image, an unknown
            category id or a malformed segmentation (naming the file, annotation and image).
    """
    path = Path(path)
    payload = read_json(path, "COCO instances file")
    if not isinstance(payload, dict):
        raise ValueError(f"{path} is not a COCO instances file")
    _check_categories(payload.get("categories"), path)
    result = InstancesFile(path, _image_sizes(payload.get("images"), path))
    annotations = payload.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError(f"{path}: no 'annotations' list")
    for annotation in annotations:
        _check_annotation(annotation, result.sizes, path)
        result.annotations.setdefault(int(annotation["image_id"]), []).append(annotation)
    return result


@dataclass
class _Rows:
    """Importance rows collected so far."""

    image_id: list[int] = field(default_factory=list)
    category_id: list[int] = field(default_factory=list)
    importance: list[np.ndarray] = field(default_factory=list)
    num_boxes: list[int] = field(default_factory=list)
    mask_area: list[int] = field(default_factory=list)
    size_mismatch: list[int] = field(default_factory=list)
    without_features: list[int] = field(default_factory=list)
    dropped_rings: int = 0


@contextmanager
def _progress(enabled: bool, description: str, total: int) -> Iterator[Any]:
    """``advance()`` of a rich bar (a no-op when disabled)."""
    if not enabled:
        yield lambda: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    task = bar.add_task(description, total=total)
    with bar:
        yield lambda: bar.advance(task)


def _image_rows(rows: _Rows, instances: InstancesFile, image_id: int, store: FeatureBoxes) -> None:
    """Adds the rows of one image."""
    height, width = instances.sizes[image_id]
    boxes = np.asarray(store.boxes(image_id), dtype=np.float64)
    store_width, store_height = store.image_size(image_id)
    if (store_width, store_height) != (width, height):
        scale = np.array([width / store_width, height / store_height] * 2)
        boxes = boxes * scale
        rows.size_mismatch.append(image_id)
    masks, dropped = category_masks(instances.annotations[image_id], height, width)
    rows.dropped_rings += dropped
    for category_id, mask in masks.items():
        values = np.zeros(store.max_boxes, dtype=np.float32)
        values[: boxes.shape[0]] = proposal_importance(mask, boxes)
        rows.image_id.append(image_id)
        rows.category_id.append(category_id)
        rows.importance.append(values)
        rows.num_boxes.append(boxes.shape[0])
        rows.mask_area.append(int(np.count_nonzero(mask)))


def _collect(rows: _Rows, instances: InstancesFile, store: FeatureBoxes, progress: bool) -> None:
    """Adds the rows of every annotated image of one instances file."""
    image_ids = sorted(instances.annotations)
    with _progress(progress, f"masks of {instances.path.name}", len(image_ids)) as advance:
        for image_id in image_ids:
            advance()
            if image_id not in store:
                rows.without_features.append(image_id)
                continue
            _image_rows(rows, instances, image_id, store)


def _write(path: Path, rows: _Rows, max_boxes: int, attrs: Mapping[str, Any]) -> None:
    """Writes the store atomically, rows sorted by image then category."""
    image_ids = np.array(rows.image_id, dtype=np.int64)
    category_ids = np.array(rows.category_id, dtype=np.int16)
    order = np.lexsort((category_ids, image_ids))
    image_ids, category_ids = image_ids[order], category_ids[order]
    importance = (
        np.stack(rows.importance)[order]
        if rows.importance
        else np.zeros((0, max_boxes), dtype=np.float32)
    )
    index_ids, starts = np.unique(image_ids, return_index=True)
    offsets = np.append(starts, image_ids.shape[0]).astype(np.int64)
    arrays = {
        "image_id": image_ids,
        "category_id": category_ids,
        "importance": importance,
        "num_boxes": np.array(rows.num_boxes, np.int32)[order],
        "mask_area": np.array(rows.mask_area, np.int64)[order],
        "index_image_ids": index_ids.astype(np.int64),
        "index_offsets": offsets,
    }
    extra = {
        "size_mismatch": json.dumps(sorted(rows.size_mismatch)),
        "images_without_features": json.dumps(sorted(rows.without_features)),
        "dropped_rings": rows.dropped_rings,
    }
    write_coco_importance(path, arrays, max_boxes, {**extra, **attrs})


def write_visual_word_importance(
    path: str | os.PathLike[str],
    instance_paths: Sequence[str | os.PathLike[str]],
    store: FeatureBoxes,
    *,
    attrs: Mapping[str, Any],
    progress: bool = True,
) -> dict[str, Any]:
    """Writes the visual-word importance store (layout: module docstring).

    The instances files are read one at a time (the real train file takes gigabytes as Python
    objects).

    Args:
        path: The ``.h5`` file.
        instance_paths: ``instances_train2014.json``, ``instances_val2014.json``.
        store: The feature store (boxes and image sizes).
        attrs: Root attributes to add (feature_store, sources).
        progress: Show progress bars.

    Returns:
        ``{"images", "rows", "size_mismatch", "images_without_features", "dropped_rings"}``.

    Raises:
        ValueError: From :func:`load_instances`, or for an image annotated in two files.
    """
    rows = _Rows()
    owner: dict[int, Path] = {}
    for instance_path in instance_paths:
        instances = load_instances(instance_path)
        twice = next((i for i in instances.annotations if i in owner), None)
        if twice is not None:
            raise ValueError(
                f"image {twice} is annotated in both {owner[twice]} and {instances.path}"
            )
        owner.update(dict.fromkeys(instances.annotations, instances.path))
        _collect(rows, instances, store, progress)
        del instances
    _write(Path(path), rows, store.max_boxes, attrs)
    return {
        "images": len(set(rows.image_id)),
        "rows": len(rows.image_id),
        "size_mismatch": len(rows.size_mismatch),
        "images_without_features": rows.without_features[:_MAX_LISTED],
        "dropped_rings": rows.dropped_rings,
    }
