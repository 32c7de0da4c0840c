"""Moved: :mod:`hint_lightning.prepare.fixture.coco_files`."""

from __future__ import annotations

from hint_lightning.prepare.fixture.coco_files import (
    COCO_INSTANCES_INFO,
    COCO_LICENSES,
    FIXTURE_CATEGORY_WORDS,
    FIXTURE_WORD_COUNT_THRESHOLD,
    CocoExamples,
    karpathy_split_of,
    make_coco_examples,
    rectangle_polygon,
    robust_split_of,
    uncompressed_rle,
    write_coco_files,
    write_coco_instances,
    write_karpathy_split,
    write_robust_split,
)

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
