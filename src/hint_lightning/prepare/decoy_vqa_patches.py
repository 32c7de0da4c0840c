"""The decoy_vqa patch store: per-patch human importance of every image variant, for ViTs.

The decoy_vqa store (:mod:`hint_lightning.stores.decoy_vqa`) already holds each variant's painted
pixels; its human importance comes from the shape mask of the package image *before* painting
(the decoy never gets human importance). This builds the same for a patch grid: the blurred
shape mask of each source image, scored per patch by
:func:`~hint_lightning.prepare.patch_importance.patch_importance`, written in the patch-store
format (:mod:`hint_lightning.stores.easyvqa_patches`) as ``decoy_vqa_patches_<digest>.h5`` next
to the decoy store. Built once, reused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from rich.console import Console

from hint_lightning.prepare import easyvqa_images as images_mod
from hint_lightning.prepare.easyvqa_source import EasyVQASource
from hint_lightning.prepare.patch_importance import patch_boxes, patch_importance
from hint_lightning.stores.decoy_vqa import DecoyVQAArrays, DecoyVQAParams
from hint_lightning.stores.easyvqa_patches import PATCH_STORE_VERSION, write_patch_store

__all__ = ["decoy_patch_store_name", "decoy_patches", "ensure_decoy_patch_store"]


def decoy_patch_store_name(params: DecoyVQAParams, patch_size: int) -> str:
    """``decoy_vqa_patches_<digest>.h5`` for the decoy store's parameters and the patch size."""
    payload = json.dumps(
        {**params.to_dict(), "patch_size": patch_size, "patch_format": PATCH_STORE_VERSION},
        sort_keys=True,
    )
    return f"decoy_vqa_patches_{hashlib.sha256(payload.encode()).hexdigest()[:12]}.h5"


def decoy_patches(
    decoy_box: np.ndarray, size: tuple[int, int], grid: tuple[int, int]
) -> np.ndarray:
    """``[I, P]`` bool: the patches the decoy overlaps (any area).

    Args:
        decoy_box: ``[I, 4]`` decoy boxes in [0, 1].
        size: ``(H, W)`` of the images.
        grid: ``(rows, cols)``.
    """
    height, width = size
    boxes = patch_boxes(size, grid).astype(np.float64)
    decoy = decoy_box.astype(np.float64) * np.array([width, height, width, height])
    low = np.maximum(boxes[None, :, :2], decoy[:, None, :2])
    high = np.minimum(boxes[None, :, 2:], decoy[:, None, 2:])
    return np.clip(high - low, 0, None).prod(axis=-1) > 0


def ensure_decoy_patch_store(
    cache_dir: str | Path,
    params: DecoyVQAParams,
    arrays: DecoyVQAArrays,
    patch_size: int,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """The patch store of the decoy store ``arrays`` (built from ``params``), built if missing."""
    path = Path(cache_dir) / decoy_patch_store_name(params, patch_size)
    console = console or Console()
    if path.is_file():
        return path
    pixels = arrays.images["pixels"]
    height, width = pixels.shape[1:3]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"data.patch_size={patch_size} does not divide the {height}x{width} decoy_vqa images"
        )
    grid = (height // patch_size, width // patch_size)
    source = source or EasyVQASource.from_package()
    sources = arrays.images["source_image_id"]
    unique, inverse = np.unique(sources, return_inverse=True)
    originals = images_mod.load_images([source.image_paths[int(i)] for i in unique])
    maps = images_mod.attention_maps(images_mod.shape_masks(originals), params.blur_sigma)
    per_source = np.stack([patch_importance(m, grid, (height, width)) for m in maps])
    importance = per_source[inverse].astype(np.float32)
    write_patch_store(
        path,
        {"image_id": arrays.images["image_id"], "pixels": pixels, "patch_importance": importance},
        {**params.to_dict(), "patch_size": patch_size},
    )
    console.print(f"decoy_vqa patches: built {path}", markup=False, highlight=False)
    return path
