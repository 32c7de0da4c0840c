"""Moved: the TSV format is :mod:`hint_lightning.prepare.bottom_up_tsv`, random images are
:mod:`hint_lightning.prepare.fixture.bottom_up`."""

from __future__ import annotations

from hint_lightning.prepare.bottom_up_tsv import (
    TSV_FIELDS,
    BottomUpImage,
    encode_bottom_up_row,
    write_bottom_up_tsv,
)
from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images, random_boxes

__all__ = [
    "TSV_FIELDS",
    "BottomUpImage",
    "encode_bottom_up_row",
    "random_bottom_up_images",
    "random_boxes",
    "write_bottom_up_tsv",
]
