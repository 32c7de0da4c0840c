"""Moved: :mod:`hint_lightning.prepare.easyvqa_images`."""

from __future__ import annotations

from hint_lightning.prepare.easyvqa_images import (
    FEATURE_DIM,
    GRID_CELLS,
    HISTOGRAM_BINS,
    MASK_THRESHOLD,
    POOLED_SIZE,
    SAMPLES_PER_SIDE,
    attention_maps,
    background_colors,
    grid_boxes,
    human_importance,
    load_images,
    make_proposals,
    mask_boxes,
    proposal_counts,
    proposal_features,
    shape_masks,
)

__all__ = [
    "FEATURE_DIM",
    "GRID_CELLS",
    "HISTOGRAM_BINS",
    "MASK_THRESHOLD",
    "POOLED_SIZE",
    "SAMPLES_PER_SIDE",
    "attention_maps",
    "background_colors",
    "grid_boxes",
    "human_importance",
    "load_images",
    "make_proposals",
    "mask_boxes",
    "proposal_counts",
    "proposal_features",
    "shape_masks",
]
