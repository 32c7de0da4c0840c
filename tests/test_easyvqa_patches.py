"""easy-VQA-CP with ``proposals=patches``: the patch store and the batches a ViT reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hint_lightning.data.easyvqa_datamodule import EasyVQACPDataModule
from hint_lightning.data.importance import patch_importance
from hint_lightning.prepare import easyvqa_images as images_mod
from hint_lightning.stores.easyvqa_patches import load_patch_store, patch_store_name


def test_patch_batches_hold_raw_pixels_and_patch_importance(easyvqa_data_dir: Path) -> None:
    data = EasyVQACPDataModule(data_dir=str(easyvqa_data_dir), proposals="patches", patch_size=8)
    data.prepare_data()
    data.setup()
    assert data.info is not None and data.info.feature_dim == 192 and data.info.max_proposals == 64
    store = load_patch_store(data.cache_dir / patch_store_name(data.params, 8))
    batch = data._dataset("val").__getitems__([0, 1])
    image = int(
        np.flatnonzero(store.image_id == int(data.question_metadata("val")["image_id"][0]))[0]
    )
    pixels = store.pixels[image]
    # patch k = (row, col) row-major, its pixels row-major, channels last, scaled to [-1, 1]
    expected = pixels[8:16, 24:32].reshape(-1).astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(batch["features"][0, 1 * 8 + 3].numpy(), expected, rtol=1e-6)
    attention = images_mod.attention_maps(images_mod.shape_masks(pixels[None]), 3.0)[0]
    np.testing.assert_allclose(
        batch["human_importance"][0].numpy(), patch_importance(attention, (8, 8)), rtol=1e-5
    )
    np.testing.assert_allclose(batch["boxes"][0, 9].numpy(), [0.125, 0.125, 0.25, 0.25])


def test_bad_patch_options_are_named(tmp_path: Path, easyvqa_data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.proposals must be one of"):
        EasyVQACPDataModule(data_dir=str(tmp_path), proposals="pixels")
    data = EasyVQACPDataModule(data_dir=str(easyvqa_data_dir), proposals="patches", patch_size=7)
    with pytest.raises(ValueError, match=r"data\.patch_size=7 does not divide the 64x64"):
        data.prepare_data()


def test_decoy_vqa_patches(tmp_path: Path) -> None:
    """decoy_vqa with proposals=patches: painted pixels per patch, the source image's mask per
    patch (the decoy gets none), the decoy patches are those it overlaps."""
    from hint_lightning.data.decoy_vqa import DECOY_PROPOSALS, DecoyVQADataModule
    from hint_lightning.prepare.easyvqa_source import EasyVQASource

    data = DecoyVQADataModule(data_dir=str(tmp_path), max_images=12, proposals="patches")
    data.prepare_data()
    data.setup()
    assert data.info is not None and data.info.feature_dim == 192
    batch = data._split_dataset("test").__getitems__([0])
    assert data.arrays is not None
    row = int(data.arrays.questions["image_index"][data._rows["test_flipped"][0]])
    images = data.arrays.images
    source = EasyVQASource.from_package()
    original = images_mod.load_images([source.image_paths[int(images["source_image_id"][row])]])
    attention = images_mod.attention_maps(images_mod.shape_masks(original), 3.0)[0]
    np.testing.assert_allclose(
        batch["human_importance"][0].numpy(), patch_importance(attention, (8, 8)), rtol=1e-5
    )
    x1, y1, x2, y2 = images["decoy_box"][row] * 64
    overlapped = {
        int(r * 8 + c)
        for r in range(8)
        for c in range(8)
        if min(x2, c * 8 + 8) > max(x1, c * 8) and min(y2, r * 8 + 8) > max(y1, r * 8)
    }
    assert set(np.flatnonzero(batch[DECOY_PROPOSALS][0].numpy()).tolist()) == overlapped
    expected = images["pixels"][row][:8, :8].reshape(-1).astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(batch["features"][0, 0].numpy(), expected, rtol=1e-6)
