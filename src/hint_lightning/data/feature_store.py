"""Moved: the feature store is :mod:`hint_lightning.stores.features`."""

from __future__ import annotations

from hint_lightning.stores.features import (
    CAST_BLOCK,
    INDEX_DATASETS,
    REQUIRED_ATTRS,
    ROW_DATASETS,
    FeatureStore,
    cast_rows,
)
from hint_lightning.stores.versions import FEATURE_STORE_VERSION as FORMAT_VERSION

__all__ = [
    "CAST_BLOCK",
    "FORMAT_VERSION",
    "INDEX_DATASETS",
    "REQUIRED_ATTRS",
    "ROW_DATASETS",
    "FeatureStore",
    "cast_rows",
]
