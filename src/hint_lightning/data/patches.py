"""Patch-token views of the image arrays of a store (``data.proposals=patches``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hint_lightning.prepare.decoy_vqa_patches import decoy_patch_store_name, decoy_patches
from hint_lightning.prepare.patch_importance import patch_boxes
from hint_lightning.stores.easyvqa_patches import load_patch_store, patch_pixels
from hint_lightning.stores.errors import StoreError

__all__ = ["patch_images"]


def patch_images(
    cache_dir: Path, params: Any, images: dict[str, np.ndarray], patch_size: int
) -> dict[str, np.ndarray]:
    """decoy_vqa's ``images/`` arrays with the patch grid as proposals.

    ``features`` become the patch pixels (``[I, P, patch_size**2 * 3]`` in [-1, 1]), ``boxes``
    the patches, ``human_importance`` the patch store's, ``decoy_proposals`` the patches the
    decoy overlaps; the rest is unchanged.
    """
    path = cache_dir / decoy_patch_store_name(params, patch_size)
    if not path.is_file():
        raise FileNotFoundError(f"no decoy_vqa patch store at {path}: call prepare_data() first")
    store = load_patch_store(path)
    if not np.array_equal(store.image_id, images["image_id"]):
        raise StoreError(path, "its images differ from the decoy_vqa store's")
    height, width = store.pixels.shape[1:3]
    boxes = patch_boxes((height, width), store.grid) / np.array([width, height] * 2)
    count = len(store.image_id)
    return {
        **images,
        "features": patch_pixels(images["pixels"], patch_size),
        "boxes": np.ascontiguousarray(
            np.broadcast_to(boxes.astype(np.float32), (count, *boxes.shape))
        ),
        "human_importance": store.patch_importance,
        "decoy_proposals": decoy_patches(images["decoy_box"], (height, width), store.grid),
    }
