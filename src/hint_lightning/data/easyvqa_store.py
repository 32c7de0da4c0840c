"""Moved: the store is :mod:`hint_lightning.stores.easyvqa`, its builder
:mod:`hint_lightning.prepare.easyvqa`."""

from __future__ import annotations

from hint_lightning.prepare.easyvqa import build_store, ensure_store, prior_shift_summary
from hint_lightning.stores.easyvqa import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    EasyVQACPArrays,
    EasyVQACPParams,
    answer_type_counts,
    load_store,
)
from hint_lightning.stores.versions import EASYVQA_STORE_VERSION as FORMAT_VERSION

__all__ = [
    "FORMAT_VERSION",
    "SPLIT_TEST",
    "SPLIT_TRAIN",
    "EasyVQACPArrays",
    "EasyVQACPParams",
    "answer_type_counts",
    "build_store",
    "ensure_store",
    "load_store",
    "prior_shift_summary",
]
