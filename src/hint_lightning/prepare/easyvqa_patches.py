"""Builds the easy-VQA-CP patch store (:mod:`hint_lightning.stores.easyvqa_patches`).

For every image of the easy-VQA-CP store (same ids, same order): the raw RGB pixels and the
human importance of each patch of a ``patch_size`` grid under the blurred shape mask (the same
human map as the proposals', :func:`~hint_lightning.prepare.easyvqa_images.attention_maps`),
scored by :func:`~hint_lightning.prepare.patch_importance.patch_importance`. Built once (a few
seconds) and reused; the DataModule calls :func:`ensure_patch_store` in ``prepare_data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from hint_lightning.prepare import easyvqa_images as images_mod
from hint_lightning.prepare.easyvqa_source import EasyVQASource
from hint_lightning.prepare.patch_importance import patch_importance
from hint_lightning.stores.easyvqa import EasyVQACPParams
from hint_lightning.stores.easyvqa_patches import patch_store_name, write_patch_store

__all__ = ["build_patch_store", "ensure_patch_store"]

_CHUNK = 250


def build_patch_store(
    path: Path, params: EasyVQACPParams, patch_size: int, source: EasyVQASource | None = None
) -> Path:
    """Writes the patch store of ``params`` and ``patch_size`` to ``path`` (atomically)."""
    source = source or EasyVQASource.from_package()
    image_ids = source.sorted_image_ids()
    paths = [source.image_paths[int(i)] for i in image_ids]
    pixels = np.concatenate(
        [images_mod.load_images(paths[s : s + _CHUNK]) for s in range(0, len(paths), _CHUNK)]
    )
    height, width = pixels.shape[1:3]
    grid = (height // patch_size, width // patch_size)
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"data.patch_size={patch_size} does not divide the {height}x{width} easy-VQA images"
        )
    importance = np.empty((len(pixels), grid[0] * grid[1]), np.float32)
    for start in range(0, len(pixels), _CHUNK):
        part = slice(start, start + _CHUNK)
        maps = images_mod.attention_maps(images_mod.shape_masks(pixels[part]), params.blur_sigma)
        for offset, attention in enumerate(maps):
            importance[start + offset] = patch_importance(attention, grid, (height, width))
    arrays = {"image_id": image_ids, "pixels": pixels, "patch_importance": importance}
    return write_patch_store(path, arrays, {**params.to_dict(), "patch_size": patch_size})


def ensure_patch_store(
    cache_dir: str | Path,
    params: EasyVQACPParams,
    patch_size: int,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """The patch store in ``cache_dir``, built first when missing."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"data.patch_size must be a positive integer, got {patch_size!r}")
    path = Path(cache_dir) / patch_store_name(params, patch_size)
    console = console or Console()
    if path.is_file():
        console.print(f"easy-VQA-CP patches: reusing {path}", markup=False, highlight=False)
        return path
    build_patch_store(path, params, patch_size, source)
    console.print(f"easy-VQA-CP patches: built {path}", markup=False, highlight=False)
    return path
