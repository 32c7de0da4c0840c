"""The easy-VQA-CP patch store: raw images and per-patch human importance, for ViT backbones.

One HDF5 file per (easy-VQA-CP parameters, patch size), next to the proposal store, named
``easyvqa_cp_patches_<digest>.h5`` (the digest covers every parameter and the format version)::

    images/image_id            [I]           int64    the proposal store's image ids, same order
    images/pixels              [I, H, W, 3]  uint8    the raw RGB image
    images/patch_importance    [I, P]        float32  HINT's score of each patch (row-major grid)
    _checksums/<dataset>       [K]           uint64   one block per image

Root attributes: ``format_version``, ``params`` (JSON: the easy-VQA-CP parameters and
``patch_size``). Written atomically; read whole, checked against its checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hint_lightning.stores.checksum import Checksums, write_checksums
from hint_lightning.stores.easyvqa import EasyVQACPParams
from hint_lightning.stores.errors import StoreError, open_store, read_errors
from hint_lightning.utils.io import atomic_path

__all__ = [
    "PATCH_STORE_VERSION",
    "EasyVQACPPatches",
    "load_patch_store",
    "patch_pixels",
    "patch_store_name",
    "write_patch_store",
]

PATCH_STORE_VERSION: Final = 1
"""Bumped when the layout or the importance definition changes."""
_DATASETS: Final = ("image_id", "pixels", "patch_importance")


def patch_store_name(params: EasyVQACPParams, patch_size: int) -> str:
    """``easyvqa_cp_patches_<digest>.h5`` for these parameters and patch size.

    Example:
        >>> patch_store_name(EasyVQACPParams(), 8) != patch_store_name(EasyVQACPParams(), 16)
        True
    """
    payload = json.dumps(
        {**params.to_dict(), "patch_size": patch_size, "patch_format": PATCH_STORE_VERSION},
        sort_keys=True,
    )
    return f"easyvqa_cp_patches_{hashlib.sha256(payload.encode()).hexdigest()[:12]}.h5"


@dataclass(frozen=True)
class EasyVQACPPatches:
    """A loaded patch store.

    Attributes:
        image_id: ``[I]`` int64.
        pixels: ``[I, H, W, 3]`` uint8.
        patch_importance: ``[I, P]`` float32.
        patch_size: pixels per patch side.
    """

    image_id: np.ndarray
    pixels: np.ndarray
    patch_importance: np.ndarray
    patch_size: int

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of the patch grid."""
        height, width = self.pixels.shape[1:3]
        return height // self.patch_size, width // self.patch_size


def patch_pixels(pixels: np.ndarray, patch_size: int) -> np.ndarray:
    """Flattened patches of RGB images, scaled to [-1, 1]: the ViT's proposal features.

    Args:
        pixels: ``[I, H, W, 3]`` uint8, ``H`` and ``W`` multiples of ``patch_size``.
        patch_size: ``p``.

    Returns:
        ``[I, (H / p) * (W / p), p * p * 3]`` float32, patches row-major, each patch's pixels
        row-major with channels last.

    Example:
        >>> patch_pixels(np.full((1, 4, 4, 3), 255, np.uint8), 2).shape
        (1, 4, 12)
    """
    count, height, width, channels = pixels.shape
    rows, cols = height // patch_size, width // patch_size
    blocks = pixels.reshape(count, rows, patch_size, cols, patch_size, channels)
    blocks = blocks.transpose(0, 1, 3, 2, 4, 5).reshape(count, rows * cols, -1)
    return (blocks.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def write_patch_store(
    path: str | os.PathLike[str], arrays: dict[str, np.ndarray], params: dict[str, Any]
) -> Path:
    """Writes the store atomically (``arrays``: the three ``images/`` datasets)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name in _DATASETS:
            handle.create_dataset(f"images/{name}", data=arrays[name])
            write_checksums(handle, f"images/{name}", arrays[name], block_rows=1)
        handle.attrs["format_version"] = PATCH_STORE_VERSION
        handle.attrs["params"] = json.dumps(params)
    return Path(path)


def load_patch_store(path: str | os.PathLike[str]) -> EasyVQACPPatches:
    """Reads a whole patch store and checks it.

    Raises:
        StoreError: for an unreadable file, another format version, non-finite or
            out-of-range importance, or content that differs from its checksums.
    """
    path = Path(path)
    with open_store(path, "easy-VQA-CP patch store") as handle, read_errors(path, "the store"):
        version = int(handle.attrs.get("format_version", -1))
        if version != PATCH_STORE_VERSION:
            raise StoreError(path, f"store format {version}, this code reads {PATCH_STORE_VERSION}")
        data = {name: handle["images"][name][()] for name in _DATASETS}
        params = json.loads(handle.attrs["params"])
        checksums = Checksums.read(handle, path)
        if checksums is None:
            raise StoreError(path, "the store has no checksums")
        for name, values in data.items():
            checksums.verify_array(
                f"images/{name}",
                values,
                lambda start, stop: f"image {int(data['image_id'][start])}",
            )
    importance = data["patch_importance"]
    if not np.isfinite(importance).all() or importance.min() < 0 or importance.max() > 1:
        raise StoreError(path, "images/patch_importance: values outside [0, 1]")
    return EasyVQACPPatches(data["image_id"], data["pixels"], importance, int(params["patch_size"]))
