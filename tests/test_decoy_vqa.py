"""decoy_vqa: the store (built tiny), its split semantics, the DataModule, the decoy metrics and
clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hint_lightning.data.decoy_vqa import DECOY_PROPOSALS, SHAPE_QUESTION, DecoyVQADataModule
from hint_lightning.metrics.functional.decoy import decoy_share, importance_total
from hint_lightning.prepare import easyvqa_images
from hint_lightning.prepare.decoy_render import (
    DECOY_COLORS,
    decoy_colors,
    shape_questions,
)
from hint_lightning.prepare.decoy_vqa import covering_proposals
from hint_lightning.prepare.easyvqa_source import EasyVQASource
from hint_lightning.stores.decoy_vqa import SPLITS, DecoyVQAParams, load_store
from hint_lightning.stores.errors import StoreError

TINY = 40  # package train and test images in the test stores


def _module(data_dir: Path, **kwargs) -> DecoyVQADataModule:
    module = DecoyVQADataModule(data_dir=str(data_dir), max_images=TINY, **kwargs)
    module.prepare_data()
    module.setup()
    return module


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> DecoyVQADataModule:
    return _module(tmp_path_factory.mktemp("decoy"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> DecoyVQADataModule:
    return _module(tmp_path_factory.mktemp("decoy_free"), train_decoy=False)


def _split(module: DecoyVQADataModule, split: str) -> dict[str, np.ndarray]:
    images = module.arrays.images
    rows = images["split"] == SPLITS.index(split)
    return {key: value[rows] for key, value in images.items()}


def test_colour_modes_follow_their_definition() -> None:
    shapes = np.random.default_rng(0).integers(0, 3, 30_000)
    coded = decoy_colors(shapes, "coded", 0.95, np.random.default_rng(1))
    assert abs((coded == shapes).mean() - 0.95) < 0.01
    flipped = decoy_colors(shapes, "flipped", 0.95, np.random.default_rng(1))
    assert not (flipped == shapes).any()
    assert abs((flipped == (shapes + 1) % 3).mean() - 0.5) < 0.02  # both wrong colours
    random = decoy_colors(shapes, "random", 0.95, np.random.default_rng(1))
    assert abs((random == shapes).mean() - 1 / 3) < 0.02
    assert (decoy_colors(shapes, "none", 0.95, np.random.default_rng(1)) == -1).all()


def test_store_splits_have_the_promised_decoys(module: DecoyVQADataModule) -> None:
    train, flipped, clean = (_split(module, s) for s in ("train", "test_flipped", "test_clean"))
    assert (train["decoy_color"] >= 0).all()
    assert (train["decoy_color"] == train["shape"]).mean() >= 0.85  # p = 0.95 on 36 images
    assert not (flipped["decoy_color"] == flipped["shape"]).any()
    assert (clean["decoy_color"] == -1).all()
    val, val_random = _split(module, "val"), _split(module, "val_random")
    np.testing.assert_array_equal(val["source_image_id"], val_random["source_image_id"])
    assert not set(val["source_image_id"]) & set(train["source_image_id"])
    # Every test variant shows the same image, with the same human importance and proposals.
    for split in ("test_random", "test_flipped"):
        other = _split(module, split)
        np.testing.assert_array_equal(other["source_image_id"], clean["source_image_id"])
        np.testing.assert_array_equal(other["human_importance"], clean["human_importance"])
        np.testing.assert_array_equal(other["boxes"], clean["boxes"])
    assert module.arrays.images["pixels"].dtype == np.uint8


def test_pixels_are_the_package_image_plus_the_painted_decoy(module: DecoyVQADataModule) -> None:
    source = EasyVQASource.from_package()
    clean, flipped = _split(module, "test_clean"), _split(module, "test_flipped")
    originals = easyvqa_images.load_images(
        [source.image_paths[int(i)] for i in clean["source_image_id"][:5]]
    )
    np.testing.assert_array_equal(clean["pixels"][:5], originals)
    height, width = originals.shape[1:3]
    for k in range(5):
        x1, y1, x2, y2 = np.round(flipped["decoy_box"][k] * ([width, height] * 2)).astype(int)
        assert x2 - x1 == 6 and y2 - y1 == 6
        patch = flipped["pixels"][k, y1:y2, x1:x2].reshape(-1, 3)
        assert (patch == DECOY_COLORS[flipped["decoy_color"][k]]).all()
        outside = flipped["pixels"][k].copy()
        outside[y1:y2, x1:x2] = originals[k, y1:y2, x1:x2]
        np.testing.assert_array_equal(outside, originals[k])


def test_decoy_box_proposal_and_no_human_importance_on_it(module: DecoyVQADataModule) -> None:
    images = module.arrays.images
    assert images["boxes"].shape[1] == 25
    np.testing.assert_allclose(images["boxes"][:, -1], images["decoy_box"], atol=1e-6)
    assert images["decoy_proposals"][:, -1].all()
    # Human importance comes from the shape mask before painting: the decoy (never touching the
    # shape) gets at most the blur's tail, well below the human-important threshold 0.5.
    assert float(images["human_importance"][:, -1].max()) < 0.5
    assert float(images["human_importance"][:, -1].mean()) < 0.05


def test_decoy_free_reference_keeps_the_tests(
    module: DecoyVQADataModule, reference: DecoyVQADataModule
) -> None:
    for split in ("train", "val"):
        assert (_split(reference, split)["decoy_color"] == -1).all()
    for split in ("val_random", "test_clean", "test_random", "test_flipped"):
        ours, theirs = _split(module, split), _split(reference, split)
        np.testing.assert_array_equal(ours["pixels"], theirs["pixels"])


def test_questions_and_shape_flags(module: DecoyVQADataModule) -> None:
    questions = module.arrays.questions
    assert len(np.unique(questions["question_id"])) == len(questions["question_id"])
    per_split = [int((questions["split"] == k).sum()) for k in range(len(SPLITS))]
    assert per_split[3] == per_split[4] == per_split[5] > 0 and per_split[1] == per_split[2]
    assert 0.25 < questions["shape_question"].mean() < 0.45
    flags = shape_questions(
        ["what shape is it?", "is there not a triangle?", "what color is the circle?"],
        ["circle", "yes", "red"],
    )
    assert flags.tolist() == [True, True, False]


def test_datamodule_batches_and_split_names(module: DecoyVQADataModule) -> None:
    assert module.val_split == "val_random"
    np.testing.assert_array_equal(module.question_ids("val"), module.question_ids("val_random"))
    np.testing.assert_array_equal(module.question_ids("test"), module.question_ids("test_flipped"))
    assert module.test_splits == ("test_clean", "test_random", "test_flipped")
    module.test_split = "test_clean"
    batch = next(iter(module.test_dataloader()))
    module.test_split = "test"
    assert not batch[DECOY_PROPOSALS].any()  # no decoy on clean images
    batch = next(iter(module.test_dataloader()))
    assert batch[DECOY_PROPOSALS].any(dim=1).all() and batch[SHAPE_QUESTION].dtype == torch.bool
    assert batch["features"].shape[1:] == (25, easyvqa_images.FEATURE_DIM)
    train = next(iter(module.train_dataloader()))
    assert 0 < train["has_importance"].float().mean() < 0.5


def test_decoy_metrics_hand_worked() -> None:
    importance = torch.tensor([[1.0, -3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    decoy = torch.tensor([[False, True, True], [True, False, False], [False, False, False]])
    share = decoy_share(importance, decoy)
    assert share[0].item() == pytest.approx(0.75)
    assert torch.isnan(share[1]) and torch.isnan(share[2])  # no importance / no decoy
    mask = torch.tensor([[True, True, False]] * 3)
    torch.testing.assert_close(importance_total(importance, mask), torch.tensor([4.0, 0.0, 4.0]))
    boxes = np.array([[[0, 0, 10, 10], [4, 4, 20, 20], [0, 0, 5, 5]]], dtype=float)
    covered = covering_proposals(boxes, np.array([[2.0, 2.0, 8.0, 8.0]]))
    assert covered.tolist() == [[True, False, False]]  # 16/36 < 0.5, 9/36 < 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decoy": {"form": "position"}}, "data.decoy.form='position' is not implemented"),
        ({"decoy": {"colour": 1}}, "data.decoy has unknown option"),
        ({"val_split": "test_flipped"}, "data.val_split"),
        ({"decoy": {"p": 1.5}}, "data.decoy.p"),
    ],
)
def test_bad_options_fail_with_one_line(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        DecoyVQADataModule(data_dir=str(tmp_path), **kwargs)
    assert "\n" not in str(error.value)


def test_corrupted_store_names_the_dataset(tmp_path: Path) -> None:
    module = DecoyVQADataModule(data_dir=str(tmp_path), max_images=4)
    module.prepare_data()
    with h5py.File(module.store_path, "r+") as handle:
        colors = handle["images/decoy_color"]
        colors[0] = 1 if colors[0] != 1 else 0
    with pytest.raises(StoreError, match="images/decoy_color"):
        load_store(module.store_path)
    assert DecoyVQAParams(max_images=4).filename() == module.store_path.name


@pytest.mark.slow
def test_train_reports_every_test_split_with_the_decoy_columns(tmp_path: Path) -> None:
    from testkit import quick_overrides

    from hint_lightning.compose import compose_train_config
    from hint_lightning.train import train

    cfg = compose_train_config(
        [
            "experiment=decoy_vqa_hint_scale_invariant",
            f"data.data_dir={tmp_path}",
            "data.max_images=8",
            "logger=csv",
            *quick_overrides(train=2, val=None, test=None),
        ],
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    for split in ("test_clean", "test_random", "test_flipped"):
        for column in ("acc", "acc_shape", "importance_total", "rho"):
            assert np.isfinite(metrics[f"{split}/{column}"]), (split, column)
    assert "test_clean/decoy_share" not in metrics  # clean images have no decoy
    assert 0.0 <= metrics["test_flipped/decoy_share"] <= 100.0
    assert metrics["test/acc"] == metrics["test_flipped/acc"]
    assert "val/acc_shape" in metrics  # selection reads val_random
    from hint_lightning.metrics.per_question import read_per_question

    for split in ("test_clean", "test_random", "test_flipped"):  # question-level intervals
        records = read_per_question(tmp_path / "run", split)
        assert records and {r["split"] for r in records} == {split}
        accuracy = 100.0 * np.mean([r["correct"] for r in records])
        assert accuracy == pytest.approx(metrics[f"{split}/acc"], abs=1e-3)


def test_pilot_table_pairs_by_seed_with_t_intervals() -> None:
    from benchmarks.decoy_vqa_pilot import TARGET, interval, table

    mean, half = interval([1.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(12.7062, rel=1e-4)  # t(0.975, 1) * 1
    runs = {
        "updn": {0: {TARGET: 30.0}, 1: {TARGET: 40.0}},
        "hint_random": {0: {TARGET: 31.0}, 1: {TARGET: 42.0}},
        "hint": {0: {TARGET: 33.0}, 1: {TARGET: 43.0}},
    }
    row = table(runs, [0, 1]).splitlines()[-1]
    # paired deltas vs updn: 3, 3 -> 3.0 +/- 0.0; vs hint_random: 2, 1 -> 1.5 +/- 6.4
    assert row.endswith("| 3.0 +/- 0.0 | 1.5 +/- 6.4 |")
