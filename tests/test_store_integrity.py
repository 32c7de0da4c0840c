"""Stores that were damaged after they were built stop the run with one line naming the file,
the item and how to rebuild it: content checksums (verified lazily), non-finite values, index
ranges, truncated files; stores written before checksums load with a warning (or, easy-VQA,
are rebuilt)."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from testkit import QUICK_TRAINER

from hint_lightning.data.easyvqa_datamodule import EasyVQACPDataModule
from hint_lightning.data.feature_store import FeatureStore
from hint_lightning.data.vqa_datamodule import VQADataModule
from hint_lightning.prepare.bottom_up_tsv import write_bottom_up_tsv
from hint_lightning.prepare.features import convert_tsv_to_hdf5
from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images
from hint_lightning.stores.captions import read_caption_store, write_caption_arrays
from hint_lightning.stores.errors import StoreError, UnverifiedStoreWarning
from hint_lightning.stores.feature_batches import BatchFeatureStore

DIM = 8
Corrupt = Callable[..., None]


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------ feature store


@pytest.fixture
def feature_store(tmp_path: Path) -> Path:
    """A feature store of 6 images (ids 1..6) x 5 proposals x 8 features."""
    images = random_bottom_up_images(6, feature_dim=DIM, boxes=5, seed=0)
    tsv = write_bottom_up_tsv(tmp_path / "raw.tsv", images)
    path = tmp_path / "prepared" / "features" / "trainval_36.h5"
    convert_tsv_to_hdf5([tsv], path, feature_dim=DIM, progress=False)
    return path


def test_features_overwritten_with_ff_stop_at_the_first_damaged_image(
    feature_store: Path, corrupt_bytes: Corrupt
) -> None:
    corrupt_bytes(feature_store, "features", fraction=0.1, byte=0xFF)  # NaN bits, images 1-2
    store = FeatureStore(feature_store)  # the index is intact: opening stays cheap
    with pytest.raises(ValueError) as error:
        store.features(1)
    message = one_line(error)
    assert message.startswith(f"{feature_store}: features, image 1: content differs")
    assert "python -m hint_lightning.prepare features --data-dir" in message
    assert store.features(6).shape == (5, DIM)  # the other half was not touched: lazy, per image


def test_finite_garbage_is_a_checksum_mismatch(feature_store: Path, corrupt_bytes: Corrupt) -> None:
    corrupt_bytes(feature_store, "features", fraction=1.0, byte=0x3F)  # every float is 0.747
    store = BatchFeatureStore(feature_store)
    with pytest.raises(StoreError, match=r"features, image \d: content differs from its checksum"):
        store.read_batch(np.array([3, 0]))


def test_an_image_is_verified_once_per_run_across_forked_workers(feature_store: Path) -> None:
    store = BatchFeatureStore(feature_store)
    assert not store._verified.any()
    context = multiprocessing.get_context("fork")
    child = context.Process(target=store.read_batch, args=(np.array([2]),))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert store._verified[:, 2].all() and store._verified.sum() == 2  # seen by the parent


def test_a_store_without_checksums_loads_with_a_warning_and_still_refuses_nan(
    feature_store: Path, corrupt_bytes: Corrupt
) -> None:
    with h5py.File(feature_store, "a") as handle:
        del handle["_checksums"]  # as written before stores carried checksums
    corrupt_bytes(feature_store, "features", fraction=0.1, byte=0xFF)
    with pytest.warns(UnverifiedStoreWarning, match="no content checksums"):
        store = FeatureStore(feature_store)
    with pytest.raises(StoreError, match=r"features of image 1 hold non-finite values"):
        store.features(1)


def test_a_truncated_feature_store_is_one_line_saying_delete_and_rebuild(
    feature_store: Path,
) -> None:
    data = feature_store.read_bytes()
    feature_store.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as error:
        FeatureStore(feature_store)
    message = one_line(error)
    assert message.startswith(f"{feature_store}: not a readable feature store")
    assert "delete it and rebuild it with: python -m hint_lightning.prepare features" in message


# ------------------------------------------------------------------------------ easy-VQA-CP


@pytest.fixture
def easyvqa_copy(easyvqa_data_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the session's easy-VQA-CP data folder, and its store file."""
    shutil.copytree(easyvqa_data_dir, tmp_path / "data")
    # Other tests may add stores of other parameters to the session's folder: take the default.
    store = EasyVQACPDataModule(data_dir=str(tmp_path / "data")).store_path
    assert store.is_file()
    return tmp_path / "data", store


def test_easyvqa_features_overwritten_with_ff_are_refused_naming_the_image(
    easyvqa_copy: tuple[Path, Path], corrupt_bytes: Corrupt
) -> None:
    data_dir, store = easyvqa_copy
    corrupt_bytes(store, "images/features", fraction=0.5, byte=0xFF)
    dm = EasyVQACPDataModule(data_dir=str(data_dir))
    dm.prepare_data()
    with pytest.raises(ValueError) as error:
        dm.setup("fit")
    message = one_line(error)
    assert message.startswith(f"{store}: images/features of image 0 hold non-finite values")
    assert message.endswith("delete it: the next run rebuilds it")


def test_easyvqa_finite_garbage_is_a_checksum_mismatch(
    easyvqa_copy: tuple[Path, Path], corrupt_bytes: Corrupt
) -> None:
    data_dir, store = easyvqa_copy
    corrupt_bytes(store, "images/features", fraction=0.5, byte=0x3F)
    dm = EasyVQACPDataModule(data_dir=str(data_dir))
    with pytest.raises(StoreError, match=r"images/features, image 0: content differs"):
        dm.setup("fit")


def test_training_on_a_corrupted_easyvqa_store_stops_before_the_first_step(
    easyvqa_copy: tuple[Path, Path], corrupt_bytes: Corrupt, tmp_path: Path
) -> None:
    from hint_lightning.compose import compose_train_config
    from hint_lightning.train import train

    data_dir, store = easyvqa_copy
    corrupt_bytes(store, "images/features", fraction=0.5, byte=0xFF)
    out = tmp_path / "run"
    overrides = [
        "experiment=easyvqa_cp_updn",
        f"paths.data_dir={data_dir}",
        "data.leak=0.1",  # the parameters of the session's store (the copy that is damaged)
        *QUICK_TRAINER,
    ]
    with pytest.raises(ValueError, match="non-finite values"):
        train(compose_train_config(overrides, output_dir=out))
    assert not list(out.rglob("*.ckpt"))


def test_an_answer_index_of_minus_one_is_refused_naming_the_question(
    easyvqa_copy: tuple[Path, Path],
) -> None:
    data_dir, store = easyvqa_copy
    with h5py.File(store, "a") as handle:
        handle["questions/answer"][7] = -1
        question_id = int(handle["questions/question_id"][7])
    dm = EasyVQACPDataModule(data_dir=str(data_dir))
    with pytest.raises(ValueError) as error:
        dm.setup("fit")
    message = one_line(error)
    assert message.startswith(f"{store}: questions/answer of question {question_id} is -1")


def test_a_truncated_easyvqa_store_is_one_line_saying_delete_it(
    easyvqa_copy: tuple[Path, Path],
) -> None:
    data_dir, store = easyvqa_copy
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 2])
    dm = EasyVQACPDataModule(data_dir=str(data_dir))
    with pytest.raises(ValueError) as error:
        dm.prepare_data()
    message = one_line(error)
    assert message.startswith(f"{store}: not a readable easy-VQA-CP store")
    assert message.endswith("delete it: the next run rebuilds it")


# ------------------------------------------------------------------------------ caption stores


def test_a_modified_caption_store_names_the_dataset_and_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "image_ids": np.arange(3, dtype=np.int64),
        "captions": rng.integers(0, 20, size=(9, 18)).astype(np.int32),
        "lengths": np.full(9, 16, dtype=np.int32),
        "caption_image": np.repeat(np.arange(3), 3).astype(np.int32),
        "caption_ids": np.arange(9, dtype=np.int64),
        "word_category": np.zeros((9, 18), dtype=np.int16),
    }
    path = write_caption_arrays(tmp_path / "prepared/coco/karpathy/val.h5", arrays, {})
    assert read_caption_store(path, "trainval_36", vocab_size=20)["captions"].shape == (9, 18)
    with pytest.raises(StoreError, match=r"captions of caption row 0 is .* outside \[0, 19\)"):
        read_caption_store(path, "trainval_36", vocab_size=19)
    with h5py.File(path, "a") as handle:
        handle["captions"][4, 3] = 7 if arrays["captions"][4, 3] != 7 else 8
    with pytest.raises(StoreError) as error:
        read_caption_store(path, "trainval_36", vocab_size=20)
    assert one_line(error).startswith(f"{path}: captions, rows 0-8: content differs")
    assert "python -m hint_lightning.prepare coco --data-dir" in str(error.value)


# ------------------------------------------------------------------------------ VQA stores


@pytest.fixture
def vqacp_copy(prepared_vqacp: Path, tmp_path: Path) -> Path:
    """A copy of the session's prepared VQA-CP fixture tree (its prepared/ folder only)."""
    shutil.copytree(prepared_vqacp / "prepared", tmp_path / "prepared")
    return tmp_path


def test_stores_written_before_checksums_load_with_one_warning_each(vqacp_copy: Path) -> None:
    stores = sorted((vqacp_copy / "prepared").rglob("*.h5"))
    for path in stores:
        with h5py.File(path, "a") as handle:
            del handle["_checksums"]
    dm = VQADataModule(data_dir=str(vqacp_copy), num_workers=0, batch_size=8, val_fraction=0.2)
    with pytest.warns(UnverifiedStoreWarning) as warned:
        dm.setup("fit")
        next(iter(dm.train_dataloader()))
    named = {str(w.message).split(" has no content checksums")[0] for w in warned}
    assert named == {str(path) for path in stores}


def test_a_modified_split_store_names_the_dataset_and_the_questions(vqacp_copy: Path) -> None:
    path = vqacp_copy / "prepared/vqa/vqacp_v2/test.h5"
    with h5py.File(path, "a") as handle:
        handle["target_scores"][0, 0] += 0.5
        first, last = int(handle["question_id"][0]), int(handle["question_id"][-1])
    dm = VQADataModule(data_dir=str(vqacp_copy), num_workers=0)
    with pytest.raises(StoreError) as error:
        dm.setup("fit")
    message = one_line(error)
    assert message.startswith(f"{path}: target_scores, questions {first}..{last}: content differs")
    assert message.endswith(f"python -m hint_lightning.prepare vqacp_v2 --data-dir {vqacp_copy}")


def test_the_writer_refuses_what_a_verified_read_would_then_trust(tmp_path: Path) -> None:
    """Checksummed rows are not checked for NaN on read: the writer refuses them at build."""
    from hint_lightning.stores.feature_writer import FeatureStoreWriter

    boxes = np.zeros((2, 4), np.float32)
    features = np.array([[1.0, 7e4], [0.0, 1.0]], np.float32)  # finite, inf in float16
    with h5py.File(tmp_path / "f.h5", "w") as handle:
        writer = FeatureStoreWriter(handle, feature_dim=2, float16=True, buffer_rows=8)
        with pytest.raises(ValueError, match="image 3: non-finite boxes or features"):
            writer.add((3, 10, 10, boxes, features))
