"""VQADataModule over real prepared stores written by the prepare steps (tiny, in tmp dirs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from hint_lightning.data import batch as B
from hint_lightning.data.collate import VQACollate
from hint_lightning.data.vqa_datamodule import (
    VQADataModule,
    carve_validation,
    load_importance,
    prepared_files,
)
from hint_lightning.metrics.vqa_accuracy import vqa_accuracy
from hint_lightning.prepare.bottom_up_tsv import BottomUpImage, write_bottom_up_tsv
from hint_lightning.prepare.features import convert_tsv_to_hdf5
from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images
from hint_lightning.prepare.fixture.vqa_files import make_hat_maps, make_vqa_examples, write_hat_zip
from hint_lightning.prepare.vqa_hat import write_importance_store
from hint_lightning.prepare.vqa_questions import (
    build_answer_vocab,
    soft_target_scores,
    write_split_store,
)
from hint_lightning.prepare.vqa_raw import join
from hint_lightning.stores import vqa_importance
from hint_lightning.stores.checksum import write_checksums
from hint_lightning.stores.features import FeatureStore
from hint_lightning.text.question_types import load_question_types
from hint_lightning.text.tokenize import build_token_vocab, tokenize
from hint_lightning.utils.io import write_json

FEATURE_DIM = 16
NUM_IMAGES = 8
QUESTIONS_PER_IMAGE = 5
FIRST_IMAGE_ID = 101


@dataclass
class Prepared:
    """A prepared data tree and what went into it."""

    data_dir: Path
    dataset: str
    features: str
    images: dict[int, BottomUpImage]
    entries: dict[int, dict[str, Any]]
    fit_ids: list[int]
    test_ids: list[int]
    hinted_ids: set[int]
    answers: tuple[str, ...]


def write_prepared(
    root: Path,
    *,
    dataset: str = "vqacp_v2",
    boxes: int | tuple[int, int] = 36,
    float16: bool = False,
    glove: bool = False,
) -> Prepared:
    """Writes the prepared layout of ``dataset`` with the real writers.

    8 images (``boxes`` proposals each, fixed or a range), 40 questions: every third one is
    in the test store (VQA-CP style: images are shared by both stores), the others in the
    train store. VQA-HAT maps cover 8 train questions (one train map each) and 3 test
    questions (three val maps each).
    """
    features = "trainval_36" if isinstance(boxes, int) else "trainval_adaptive"
    prepared = root / "prepared"
    images = random_bottom_up_images(
        NUM_IMAGES, feature_dim=FEATURE_DIM, boxes=boxes, seed=0, first_image_id=FIRST_IMAGE_ID
    )
    tsv = write_bottom_up_tsv(root / "raw" / "features.tsv", images)
    store_path = prepared / "features" / f"{features}.h5"
    convert_tsv_to_hdf5([tsv], store_path, feature_dim=FEATURE_DIM, float16=float16, progress=False)

    questions, annotations = make_vqa_examples(
        [image[0] for image in images], questions_per_image=QUESTIONS_PER_IMAGE, seed=0
    )
    entries = join(questions, annotations, "questions.json", "annotations.json")
    answers = build_answer_vocab(entries, min_count=1)
    tokens = build_token_vocab(tokenize(e["question"]) for e in entries)
    folder = prepared / "vqa" / dataset
    write_json(folder / "answers.json", list(answers))
    write_json(folder / "tokens.json", list(tokens))
    if glove:
        np.save(folder / "glove.npy", np.zeros((len(tokens), 300), np.float32))

    fit_split, test_split = ("train", "test") if dataset == "vqacp_v2" else ("train", "val")
    test_entries = entries[1::3]
    fit_entries = [e for i, e in enumerate(entries) if i % 3 != 1]
    hinted_fit = [e["question_id"] for e in fit_entries[::3]]
    hinted_test = [e["question_id"] for e in test_entries[::4]]
    hat = [
        write_hat_zip(root / "raw" / "vqahat_train.zip", make_hat_maps(hinted_fit, seed=1)),
        write_hat_zip(
            root / "raw" / "vqahat_val.zip",
            make_hat_maps(hinted_test, maps_per_question=3, seed=2),
        ),
    ]
    with FeatureStore(store_path) as store:
        for split, split_entries in ((fit_split, fit_entries), (test_split, test_entries)):
            write_split_store(
                folder / f"{split}.h5",
                split_entries,
                answers=answers,
                token_index={t: i for i, t in enumerate(tokens)},
                question_types=load_question_types(),
                dataset=dataset,
                split=split,
                feature_store_name=features,
                sources=[],
                progress=False,
            )
            write_importance_store(
                folder / f"{split}_importance.h5",
                folder / f"{split}.h5",
                hat,
                store,
                seed=0,
                progress=False,
            )
    return Prepared(
        data_dir=root,
        dataset=dataset,
        features=features,
        images={image[0]: image for image in images},
        entries={e["question_id"]: e for e in entries},
        fit_ids=[e["question_id"] for e in fit_entries],
        test_ids=[e["question_id"] for e in test_entries],
        hinted_ids={*hinted_fit, *hinted_test},
        answers=answers,
    )


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """VQA-CP v2 with 36 proposals per image, and glove.npy."""
    return write_prepared(tmp_path_factory.mktemp("fixed"), glove=True)


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """VQA-CP v2 with 5 to 12 proposals per image (the adaptive features), float16."""
    return write_prepared(tmp_path_factory.mktemp("adaptive"), boxes=(5, 12), float16=True)


def module(prepared: Prepared, **kwargs: Any) -> VQADataModule:
    """A set-up DataModule over ``prepared`` (0 workers, small batches unless overridden)."""
    options = {"batch_size": 8, "eval_batch_size": 5, "num_workers": 0, "val_fraction": 0.25}
    dm = VQADataModule(
        data_dir=str(prepared.data_dir),
        dataset=prepared.dataset,
        features=prepared.features,
        **(options | kwargs),
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def store_rows(prepared: Prepared, split: str, name: str) -> dict[int, np.ndarray]:
    """Question id -> row of array ``name`` of a split's importance store."""
    path = prepared_files(prepared.data_dir, prepared.dataset, prepared.features)[
        "fit_importance" if split == "fit" else "test_importance"
    ]
    with h5py.File(path, "r") as handle:
        return dict(zip(handle["question_id"][()].tolist(), handle[name][()], strict=True))


def all_batches(loader: Any) -> dict[str, torch.Tensor]:
    """One pass of a loader, per-question tensors concatenated (proposal axes cut to 1)."""
    batches = list(loader)
    keys = (B.QUESTION_ID, B.HAS_IMPORTANCE, B.ANSWER_TYPE)
    return {key: torch.cat([b[key] for b in batches]) for key in keys}


# ------------------------------------------------------------------------------ files


def test_missing_files_name_every_file_and_the_command(tmp_path: Path) -> None:
    dm = VQADataModule(data_dir=str(tmp_path), dataset="vqa_v2", num_workers=0)
    with pytest.raises(FileNotFoundError) as error:
        dm.prepare_data()
    message = str(error.value)
    for path in prepared_files(tmp_path, "vqa_v2", "trainval_36").values():
        assert str(path) in message
    assert f"python -m hint_lightning.prepare vqa_v2 --data-dir {tmp_path}" in message
    with pytest.raises(
        FileNotFoundError, match=re.escape("python -m hint_lightning.prepare vqa_v2")
    ):
        dm.setup("fit")
    adaptive = VQADataModule(data_dir=str(tmp_path), features="trainval_adaptive")
    with pytest.raises(FileNotFoundError, match="--features trainval_adaptive"):
        adaptive.prepare_data()


def test_a_single_missing_file_is_the_only_one_named(tmp_path: Path) -> None:
    prepared = write_prepared(tmp_path)
    files = prepared_files(tmp_path, "vqacp_v2", "trainval_36")
    files["test_importance"].unlink()
    with pytest.raises(FileNotFoundError) as error:
        VQADataModule(data_dir=str(tmp_path), num_workers=0).prepare_data()
    message = str(error.value)
    assert str(files["test_importance"]) in message
    assert str(files["test"]) not in message.replace(str(files["test_importance"]), "")
    assert f"python -m hint_lightning.prepare vqacp_v2 --data-dir {tmp_path}" in message
    assert prepared.dataset == "vqacp_v2"


def test_info_vocabularies_and_word_vectors(fixed: Prepared, adaptive: Prepared) -> None:
    dm = module(fixed)
    assert dm.info is not None
    assert dm.info.answers == fixed.answers == dm.answers
    assert dm.info.tokens[:2] == ("<pad>", "<unk>")
    assert (dm.info.feature_dim, dm.info.max_proposals, dm.info.name) == (16, 36, "vqacp_v2")
    assert dm.word_vectors_path is not None and dm.word_vectors_path.endswith("glove.npy")
    dm_adaptive = module(adaptive)
    assert dm_adaptive.word_vectors_path is None
    assert dm_adaptive.info is not None
    expected = max(len(image[3]) for image in adaptive.images.values())
    assert dm_adaptive.info.max_proposals == expected


def test_unknown_options_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset must be one of"):
        VQADataModule(data_dir=str(tmp_path), dataset="vqa_cp")
    with pytest.raises(ValueError, match="importance_source must be one of"):
        VQADataModule(data_dir=str(tmp_path), importance_source="shuffled")
    with pytest.raises(ValueError, match="val_fraction"):
        VQADataModule(data_dir=str(tmp_path), val_fraction=1.0)


# ------------------------------------------------------------------------------ batches


def expected_dtypes() -> dict[str, torch.dtype]:
    """The dtypes of the batch contract (as produced by collate_vqa)."""
    floats = (B.FEATURES, B.BOXES, B.TARGETS, B.ANSWER_SCORES, B.HUMAN_IMPORTANCE)
    bools = (B.PROPOSAL_MASK, B.HAS_IMPORTANCE)
    return {
        key: torch.float32 if key in floats else torch.bool if key in bools else torch.int64
        for key in B.VQA_BATCH_KEYS
    }


@pytest.mark.parametrize("which", ["fixed", "adaptive"])
def test_batches_follow_the_contract_and_equal_collated_items(
    which: str, request: pytest.FixtureRequest
) -> None:
    prepared: Prepared = request.getfixturevalue(which)
    dm = module(prepared)
    assert dm.info is not None
    loader = dm.val_dataloader()
    dataset = loader.dataset
    indices = [3, 0, 3, 5, 1]  # a repeated question (and so a repeated image)
    batch = dataset.__getitems__(indices)
    assert tuple(batch) == B.VQA_BATCH_KEYS
    assert {key: value.dtype for key, value in batch.items()} == expected_dtypes()
    n = batch[B.FEATURES].shape[1]
    shapes = {
        B.FEATURES: (5, n, FEATURE_DIM),
        B.BOXES: (5, n, 4),
        B.PROPOSAL_MASK: (5, n),
        B.QUESTION_TOKENS: (5, 14),
        B.TARGETS: (5, dm.info.num_answers),
        B.ANSWER_SCORES: (5, dm.info.num_answers),
        B.ANSWER_TYPE: (5,),
        B.HUMAN_IMPORTANCE: (5, n),
        B.HAS_IMPORTANCE: (5,),
        B.QUESTION_ID: (5,),
    }
    assert {key: tuple(value.shape) for key, value in batch.items()} == shapes
    collated = VQACollate(dm.info.num_answers)([dataset[i] for i in indices])
    for key in B.VQA_BATCH_KEYS:
        torch.testing.assert_close(batch[key], collated[key], rtol=0, atol=0, msg=key)
    through_loader = next(iter(loader))
    assert tuple(through_loader) == B.VQA_BATCH_KEYS


@pytest.mark.parametrize("which", ["fixed", "adaptive"])
def test_features_and_normalized_boxes_of_each_question(
    which: str, request: pytest.FixtureRequest
) -> None:
    prepared: Prepared = request.getfixturevalue(which)
    dm = module(prepared)
    batch = next(iter(dm.test_dataloader()))
    for b, qid in enumerate(batch[B.QUESTION_ID].tolist()):
        _, width, height, boxes, features = prepared.images[prepared.entries[qid]["image_id"]]
        n = len(boxes)
        want = features.astype(np.float16).astype(np.float32) if which == "adaptive" else features
        np.testing.assert_array_equal(batch[B.FEATURES][b, :n].numpy(), want)
        scale = np.array([width, height, width, height], np.float32)
        np.testing.assert_allclose(batch[B.BOXES][b, :n].numpy(), boxes / scale, rtol=1e-6)
    real = batch[B.BOXES][batch[B.PROPOSAL_MASK]]
    assert real.min() >= 0 and real.max() <= 1
    assert (real[:, 2] > real[:, 0]).all() and (real[:, 3] > real[:, 1]).all()


def test_adaptive_boxes_are_padded_with_a_mask(adaptive: Prepared) -> None:
    dm = module(adaptive, eval_batch_size=16)
    batch = next(iter(dm.test_dataloader()))
    counts = [
        len(adaptive.images[adaptive.entries[q]["image_id"]][3])
        for q in batch[B.QUESTION_ID].tolist()
    ]
    n = batch[B.FEATURES].shape[1]
    assert n == max(counts) and min(counts) < n, "the batch mixes box counts"
    assert batch[B.PROPOSAL_MASK].sum(1).tolist() == counts
    padding = ~batch[B.PROPOSAL_MASK]
    assert not batch[B.FEATURES][padding].any()
    assert not batch[B.BOXES][padding].any()
    assert not batch[B.HUMAN_IMPORTANCE][padding].any()
    assert batch[B.HAS_IMPORTANCE].any(), "some test questions have human importance"


def test_targets_and_answer_scores_of_a_known_question(fixed: Prepared) -> None:
    dm = module(fixed)
    batch = next(iter(dm.test_dataloader()))
    index = {answer: a for a, answer in enumerate(fixed.answers)}
    for b, qid in enumerate(batch[B.QUESTION_ID].tolist()):
        human = fixed.entries[qid]["answers"]
        targets = np.zeros(len(fixed.answers), np.float32)
        for a, score in soft_target_scores(human, index).items():
            targets[a] = score
        scores = np.array([vqa_accuracy(answer, human) for answer in fixed.answers], np.float32)
        np.testing.assert_allclose(batch[B.TARGETS][b].numpy(), targets, rtol=1e-6)
        np.testing.assert_allclose(batch[B.ANSWER_SCORES][b].numpy(), scores, rtol=1e-6)
        assert batch[B.TARGETS][b].sum() > 0
    answer_types = {"yes/no": 0, "number": 1, "other": 2}
    assert batch[B.ANSWER_TYPE].tolist() == [
        answer_types[fixed.entries[q]["answer_type"]] for q in batch[B.QUESTION_ID].tolist()
    ]


# ------------------------------------------------------------------------------ splits


def test_val_carve_out_is_disjoint_seeded_and_by_question(fixed: Prepared) -> None:
    dm = module(fixed)
    train, val = set(dm.question_ids("train")), set(dm.question_ids("val"))
    assert not train & val
    assert train | val == set(fixed.fit_ids)
    assert len(val) == round(0.25 * len(fixed.fit_ids))
    assert set(dm.question_ids("test")) == set(fixed.test_ids)
    again = module(fixed)
    np.testing.assert_array_equal(again.question_ids("val"), dm.question_ids("val"))
    other = module(fixed, val_seed=1)
    assert set(other.question_ids("val")) != val
    expected = np.array(fixed.fit_ids)[carve_validation(np.array(fixed.fit_ids), 0.25, 0)]
    np.testing.assert_array_equal(dm.question_ids("val"), expected)
    loader_ids = all_batches(dm.val_dataloader())[B.QUESTION_ID].numpy()
    np.testing.assert_array_equal(loader_ids, dm.question_ids("val"))


def test_vqa_v2_tests_on_the_val_store(tmp_path: Path) -> None:
    prepared = write_prepared(tmp_path, dataset="vqa_v2")
    assert prepared_files(tmp_path, "vqa_v2", "trainval_36")["test"].name == "val.h5"
    dm = module(prepared)
    assert dm.info is not None and dm.info.name == "vqa_v2"
    assert set(dm.question_ids("test")) == set(prepared.test_ids)
    assert set(dm.question_ids("train")) | set(dm.question_ids("val")) == set(prepared.fit_ids)


def test_hinted_only_trains_on_questions_with_importance(fixed: Prepared) -> None:
    everything = module(fixed)
    dm = module(fixed, hinted_only=True)
    hinted = set(fixed.hinted_ids) & (set(fixed.fit_ids) - set(dm.question_ids("val")))
    assert set(dm.question_ids("train")) == hinted == set(everything.question_ids("hinted"))
    assert 0 < len(hinted) < len(everything.question_ids("train"))
    seen = all_batches(dm.train_dataloader())
    assert seen[B.HAS_IMPORTANCE].all()
    assert sorted(seen[B.QUESTION_ID].tolist()) == sorted(hinted)
    np.testing.assert_array_equal(dm.question_ids("val"), everything.question_ids("val"))


def test_limit_train_questions_keeps_a_seeded_subset(fixed: Prepared) -> None:
    full = set(module(fixed).question_ids("train"))
    first = module(fixed, limit_train_questions=5).question_ids("train")
    again = module(fixed, limit_train_questions=5).question_ids("train")
    assert len(first) == 5 and set(first) <= full
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("source", ["random", "one_minus"])
def test_importance_source_changes_only_train(fixed: Prepared, source: str) -> None:
    human = module(fixed)
    control = module(fixed, importance_source=source)
    rows = store_rows(fixed, "fit", source)
    dataset = control.train_dataloader().dataset
    batch = dataset.__getitems__(list(range(len(dataset))))
    assert batch[B.HAS_IMPORTANCE].any()
    for b, qid in enumerate(batch[B.QUESTION_ID].tolist()):
        np.testing.assert_array_equal(batch[B.HUMAN_IMPORTANCE][b].numpy(), rows[qid])
    for loader in ("val_dataloader", "test_dataloader"):
        got = next(iter(getattr(control, loader)()))
        want = next(iter(getattr(human, loader)()))
        torch.testing.assert_close(got[B.HUMAN_IMPORTANCE], want[B.HUMAN_IMPORTANCE])
    human_rows = store_rows(fixed, "fit", "human")
    human_batch = human.train_dataloader().dataset.__getitems__(list(range(len(dataset))))
    for b, qid in enumerate(human_batch[B.QUESTION_ID].tolist()):
        np.testing.assert_array_equal(human_batch[B.HUMAN_IMPORTANCE][b].numpy(), human_rows[qid])


def test_each_test_question_appears_once_per_pass(fixed: Prepared) -> None:
    dm = module(fixed, eval_batch_size=4)  # 14 test questions: the last batch is partial
    seen = all_batches(dm.test_dataloader())
    np.testing.assert_array_equal(seen[B.QUESTION_ID].numpy(), dm.question_ids("test"))
    assert sorted(seen[B.QUESTION_ID].tolist()) == sorted(fixed.test_ids)
    hinted = [q in fixed.hinted_ids for q in seen[B.QUESTION_ID].tolist()]
    assert seen[B.HAS_IMPORTANCE].tolist() == hinted


def test_two_workers_open_the_store_lazily(adaptive: Prepared) -> None:
    dm = module(adaptive, num_workers=2, batch_size=4)
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    reference = module(adaptive).train_dataloader().dataset
    by_id = {int(q): i for i, q in enumerate(reference.question_ids)}
    for _ in range(2):  # two epochs through the same persistent workers
        seen = []
        for batch in loader:
            for b, qid in enumerate(batch[B.QUESTION_ID].tolist()):
                item = reference[by_id[qid]]
                n = len(item[B.FEATURES])
                np.testing.assert_array_equal(batch[B.FEATURES][b, :n].numpy(), item[B.FEATURES])
                seen.append(qid)
        assert sorted(seen) == sorted(by_id)
    assert dm._loaded is not None and dm._loaded.store._file is None, "opened only in workers"
    in_process = module(adaptive, batch_size=4).val_dataloader()
    for got, want in zip(dm.val_dataloader(), in_process, strict=True):
        for key in B.VQA_BATCH_KEYS:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)
    test_ids = all_batches(dm.test_dataloader())[B.QUESTION_ID].numpy()
    np.testing.assert_array_equal(test_ids, dm.question_ids("test"))


def test_importance_is_read_in_blocks_of_rows(
    fixed: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = prepared_files(fixed.data_dir, "vqacp_v2", "trainval_36")
    question_ids = np.array(fixed.fit_ids)
    whole = load_importance(files["fit_importance"], "one_minus", question_ids, "trainval_36", 36)
    monkeypatch.setattr(vqa_importance, "IMPORTANCE_BLOCK", 4)  # written and read by 4 rows
    hat = sorted((fixed.data_dir / "raw").glob("vqahat_*.zip"))
    with FeatureStore(files["features"]) as store:
        write_importance_store(tmp_path / "i.h5", files["fit"], hat, store, progress=False)
    with h5py.File(tmp_path / "i.h5") as handle:
        assert handle["_checksums/one_minus"].attrs["block_rows"] == 4
    blocks = load_importance(tmp_path / "i.h5", "one_minus", question_ids, "trainval_36", 36)
    np.testing.assert_array_equal(blocks.values, whole.values)
    np.testing.assert_array_equal(blocks.index, whole.index)
    rows = store_rows(fixed, "fit", "one_minus")
    hinted = [q for q in fixed.fit_ids if q in fixed.hinted_ids]
    assert len(whole.values) == len(hinted) > 4
    gathered = whole.gather(np.arange(len(question_ids)), 36)
    for qid, row in zip(fixed.fit_ids, gathered, strict=True):
        np.testing.assert_array_equal(row, rows[qid])


# ------------------------------------------------------------------------------ errors, config


def test_global_batch_size_is_divided_by_world_size(fixed: Prepared) -> None:
    dm = module(fixed, batch_size=8, eval_batch_size=5)
    dm.trainer = SimpleNamespace(world_size=4)  # type: ignore[assignment]
    dm.setup("fit")
    assert dm.train_dataloader().batch_size == 2 and dm.val_dataloader().batch_size == 2
    dm.trainer = SimpleNamespace(world_size=3)  # type: ignore[assignment]
    with pytest.raises(ValueError, match="divisible by the world size"):
        dm.setup("fit")


def test_an_image_missing_from_the_store_names_question_image_and_store(tmp_path: Path) -> None:
    prepared = write_prepared(tmp_path)
    files = prepared_files(tmp_path, "vqacp_v2", "trainval_36")
    with h5py.File(files["test"], "r+") as handle:
        image_ids = handle["image_id"][()]
        image_ids[2] = 999
        handle["image_id"][...] = image_ids
        write_checksums(handle, "image_id", image_ids)  # a consistent store, another image
        question_id = int(handle["question_id"][2])
    dm = VQADataModule(data_dir=str(tmp_path), num_workers=0)
    with pytest.raises(KeyError) as error:
        dm.setup("test")
    message = str(error.value)
    assert f"question {question_id}" in message and "image 999" in message
    assert str(files["features"]) in message
    assert prepared.test_ids[2] == question_id


def test_stores_of_another_feature_store_are_refused(fixed: Prepared, tmp_path: Path) -> None:
    files = prepared_files(fixed.data_dir, "vqacp_v2", "trainval_36")
    renamed = prepared_files(fixed.data_dir, "vqacp_v2", "trainval_adaptive")["features"]
    renamed.write_bytes(files["features"].read_bytes())
    try:
        dm = VQADataModule(
            data_dir=str(fixed.data_dir), features="trainval_adaptive", num_workers=0
        )
        with pytest.raises(ValueError, match=re.escape("feature store 'trainval_36'")):
            dm.setup("fit")
    finally:
        renamed.unlink()


def test_hydra_configs_instantiate_the_module(fixed: Prepared, tmp_path: Path) -> None:
    from hint_lightning.compose import compose_train_config
    from hint_lightning.utils.runtime import machine_workers

    for name in ("vqacp_v2", "vqa_v2"):
        cfg = compose_train_config([f"data={name}"], output_dir=tmp_path)
        dm = instantiate(cfg.data, data_dir=str(fixed.data_dir))
        assert isinstance(dm, VQADataModule)
        assert (dm.dataset, dm.batch_size, dm.num_workers) == (name, 512, machine_workers(4))
        assert dm.importance_source == "human" and not dm.hinted_only
    dm = instantiate(cfg.data, data_dir=str(fixed.data_dir), dataset="vqacp_v2", num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.memory_bytes["questions"] > 0
