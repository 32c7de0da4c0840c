"""VQA-HAT maps -> human importance, controls and coverage (prepare.vqa_hat)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from PIL import Image

from hint_lightning.data.importance import proposal_importance
from hint_lightning.prepare.fixture.vqa_files import (
    encode_png,
    make_hat_maps,
    make_vqa_examples,
    write_hat_folder,
    write_hat_zip,
)
from hint_lightning.prepare.vqa_hat import (
    hat_coverage,
    hat_importance,
    iter_hat_maps,
    random_importance,
    write_hat_coverage,
    write_importance_store,
)
from hint_lightning.prepare.vqa_questions import build_answer_vocab, write_split_store
from hint_lightning.text.question_types import load_question_types
from hint_lightning.text.tokenize import build_token_vocab, tokenize

IMAGES: dict[int, tuple[tuple[int, int], int]] = {9: ((64, 48), 3), 25: ((50, 40), 5)}
"""image id -> ((width, height), number of proposals)."""
MAX_BOXES = 6


class FakeFeatureStore:
    """A stand-in for hint_lightning.stores.features.FeatureStore (duck typing)."""

    def __init__(self, path: Path, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.path = path
        self.max_boxes = MAX_BOXES
        self.image_ids = np.array(sorted(IMAGES), dtype=np.int64)
        self._boxes = {}
        for image_id, ((width, height), n) in IMAGES.items():
            x1 = rng.uniform(0, width / 2, n)
            y1 = rng.uniform(0, height / 2, n)
            x2 = x1 + rng.uniform(4, width / 2, n)
            y2 = y1 + rng.uniform(4, height / 2, n)
            self._boxes[image_id] = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)

    def __contains__(self, image_id: object) -> bool:
        return image_id in IMAGES

    def image_size(self, image_id: int) -> tuple[int, int]:
        return IMAGES[image_id][0]

    def boxes(self, image_id: int) -> np.ndarray:
        return self._boxes[image_id]


def _gradient(height: int, width: int, k: int) -> np.ndarray:
    """A uint8 map whose top-left pixel is ``k`` (identifies the map) and that varies."""
    rows, cols = np.mgrid[0:height, 0:width]
    values = (rows * 7 + cols * 13 + 40 * k) % 256
    values[0, 0] = k
    return values.astype(np.uint8)


def _resize(hat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float [0, 1] PIL bilinear resize, written out independently of the module."""
    image = Image.fromarray((hat / 255.0).astype(np.float32))
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float64)


# ------------------------------------------------------------------------------ reading


def test_zip_maps_are_grouped_by_question_and_sorted_by_k(tmp_path: Path) -> None:
    maps = {
        "vqahat_val/25003_3.png": _gradient(6, 8, 3),
        "vqahat_val/9001_1.png": _gradient(5, 7, 1),
        "vqahat_val/25003_1.png": _gradient(6, 8, 1),
        "vqahat_val/25003_2.png": _gradient(12, 16, 2),
    }
    path = write_hat_zip(tmp_path / "vqahat_val.zip", maps)
    grouped = list(iter_hat_maps(path))
    assert [qid for qid, _ in grouped] == [9001, 25003]
    assert [m[0, 0] for m in grouped[1][1]] == [1, 2, 3]
    assert [m.shape for m in grouped[1][1]] == [(6, 8), (12, 16), (6, 8)]
    assert grouped[1][1][0].dtype == np.uint8
    np.testing.assert_array_equal(grouped[0][1][0], maps["vqahat_val/9001_1.png"])


def test_folder_source_skips_macosx_and_hidden_files(tmp_path: Path) -> None:
    maps = make_hat_maps([11, 12], maps_per_question=3, size=(10, 8), seed=1)
    folder = write_hat_folder(tmp_path / "vqahat_val", {f"sub/{k}": v for k, v in maps.items()})
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._11_1.png").write_bytes(b"resource fork")
    (folder / ".DS_Store").write_bytes(b"x")
    zipped = write_hat_zip(tmp_path / "vqahat_val.zip", maps)
    from_folder = list(iter_hat_maps(folder))
    from_zip = list(iter_hat_maps(zipped))
    assert [qid for qid, _ in from_folder] == [qid for qid, _ in from_zip] == [11, 12]
    for (_, a), (_, b) in zip(from_folder, from_zip, strict=True):
        assert len(a) == len(b) == 3
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_unreadable_png_names_archive_and_member(tmp_path: Path) -> None:
    path = tmp_path / "vqahat_train.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("vqahat_train/1_1.png", encode_png(np.zeros((3, 3), np.uint8)))
        archive.writestr("vqahat_train/2_1.png", b"\x89PNG\r\n\x1a\n not really")
    maps = iter_hat_maps(path)
    assert next(maps)[0] == 1
    with pytest.raises(
        ValueError, match=r"vqahat_train\.zip: cannot read the PNG 'vqahat_train/2_1.png'"
    ):
        next(maps)


def test_unexpected_names_are_an_error_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "vqahat_train.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("1_1.png", encode_png(np.zeros((3, 3), np.uint8)))
        archive.writestr("notes/readme.txt", b"hello")
        archive.writestr("1-2.png", b"")
    with pytest.raises(
        ValueError, match=r"2 member\(s\) not named .*'notes/readme.txt', '1-2.png'"
    ):
        list(iter_hat_maps(path))


def test_same_map_twice_and_missing_source_are_errors(tmp_path: Path) -> None:
    png = np.zeros((3, 3), np.uint8)
    path = write_hat_zip(tmp_path / "hat.zip", {"a/5_1.png": png, "b/5_1.png": png})
    with pytest.raises(ValueError, match="map 1 of question 5 appears twice"):
        list(iter_hat_maps(path))
    with pytest.raises(FileNotFoundError):
        list(iter_hat_maps(tmp_path / "absent.zip"))
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"fake\.zip: not a zip file"):
        list(iter_hat_maps(tmp_path / "fake.zip"))


# ------------------------------------------------------------------------------ importance


def test_importance_averages_maps_resized_to_the_image() -> None:
    maps = [_gradient(6, 8, 1), _gradient(12, 16, 2), _gradient(3, 4, 3)]
    size = (40, 30)
    boxes = np.array([[0, 0, 20, 15], [10, 5, 40, 30], [-5, 3, 12.6, 29.4], [0, 0, 40, 30]])
    average = np.mean([_resize(m, size) for m in maps], axis=0)
    expected = proposal_importance(average, boxes)
    np.testing.assert_allclose(hat_importance(maps, size, boxes), expected, rtol=1e-6)
    assert expected[-1] == 1.0  # the whole image


def test_importance_of_a_map_at_image_resolution_is_not_resampled() -> None:
    hat = _gradient(30, 40, 5)
    boxes = np.array([[3, 4, 20, 25], [0, 0, 10, 10]], dtype=np.float32)
    np.testing.assert_array_equal(
        hat_importance([hat], (40, 30), boxes), proposal_importance(hat / 255.0, boxes)
    )


def test_random_importance_depends_only_on_seed_question_and_proposal() -> None:
    a = random_importance(np.array([3, 1, 2]), 5, seed=7)
    b = random_importance(np.array([2, 3]), 8, seed=7)
    np.testing.assert_array_equal(a[0], b[1, :5])
    np.testing.assert_array_equal(a[2], b[0, :5])
    assert a.dtype == np.float32 and ((a >= 0) & (a < 1)).all()
    assert not np.array_equal(a, random_importance(np.array([3, 1, 2]), 5, seed=8))
    many = random_importance(np.arange(2000), 36, seed=0)
    assert abs(float(many.mean()) - 0.5) < 0.01
    assert len(np.unique(many)) > 0.99 * many.size


# ------------------------------------------------------------------------------ stores


@pytest.fixture
def split_store(tmp_path: Path) -> Path:
    """A split store of 6 questions on images 9 and 25 (question ids 9000.., 25000..)."""
    questions, annotations = make_vqa_examples(list(IMAGES), questions_per_image=3, seed=0)
    entries = [
        {
            **q,
            **{k: a[k] for k in ("question_type", "answer_type", "multiple_choice_answer")},
            "answers": [x["answer"] for x in a["answers"]],
        }
        for q, a in zip(questions, annotations, strict=True)
    ]
    tokens = build_token_vocab(tokenize(e["question"]) for e in entries)
    path = tmp_path / "prepared" / "train.h5"
    write_split_store(
        path,
        entries,
        answers=build_answer_vocab(entries, min_count=1),
        token_index={t: i for i, t in enumerate(tokens)},
        question_types=load_question_types(),
        dataset="vqacp_v2",
        split="train",
        feature_store_name="trainval_36",
        sources=[],
        progress=False,
    )
    return path


@pytest.fixture
def hat_sources(tmp_path: Path) -> list[Path]:
    """Train maps of 9000 and 25002, val maps (3 each) of 25001 and of 77000 (in no split)."""
    raw = tmp_path / "raw"
    train = write_hat_zip(
        raw / "vqahat_train.zip", make_hat_maps([9000, 25002], size=(20, 15), seed=1)
    )
    val = make_hat_maps([25001, 77000], maps_per_question=3, size=(30, 24), seed=2)
    return [train, write_hat_folder(raw / "vqahat_val", val)]


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with h5py.File(path, "r") as handle:
        arrays = {name: handle[name][()] for name in handle if name != "_checksums"}
        return arrays, dict(handle.attrs)


def test_importance_store_human_and_controls(tmp_path: Path, split_store, hat_sources) -> None:
    store = FakeFeatureStore(tmp_path / "trainval_36.h5")
    out = tmp_path / "prepared" / "train_importance.h5"
    counts = write_importance_store(out, split_store, hat_sources, store, seed=3, progress=False)
    arrays, attrs = _read(out)
    with h5py.File(split_store, "r") as handle:
        question_ids, image_ids = handle["question_id"][()], handle["image_id"][()]
    q = len(question_ids)
    assert {name: (a.dtype, a.shape) for name, a in arrays.items()} == {
        "question_id": (np.dtype(np.int64), (q,)),
        "has_importance": (np.dtype(bool), (q,)),
        "human": (np.dtype(np.float32), (q, MAX_BOXES)),
        "random": (np.dtype(np.float32), (q, MAX_BOXES)),
        "one_minus": (np.dtype(np.float32), (q, MAX_BOXES)),
    }
    np.testing.assert_array_equal(arrays["question_id"], question_ids)
    assert attrs["format_version"] == 1
    assert attrs["feature_store"] == "trainval_36"
    assert attrs["seed"] == 3
    assert [s["name"] for s in json.loads(attrs["sources"])] == [
        "vqahat_train.zip",
        "vqahat_val",
        "train.h5",
    ]
    expected_maps = {qid: maps for source in hat_sources for qid, maps in iter_hat_maps(source)}
    matched = [int(qid) for qid in question_ids if int(qid) in expected_maps]
    assert sorted(matched) == [9000, 25001, 25002]
    assert counts == {
        "path": str(out),
        "questions": q,
        "with_importance": 3,
        "maps": 1 + 1 + 3 + 3,
        "hat_questions": 4,
        "unmatched": 1,
    }
    for row, (qid, image_id) in enumerate(zip(question_ids, image_ids, strict=True)):
        n = IMAGES[int(image_id)][1]
        human, rand, minus = (arrays[k][row] for k in ("human", "random", "one_minus"))
        assert arrays["has_importance"][row] == (int(qid) in expected_maps)
        if int(qid) not in expected_maps:
            assert not human.any() and not rand.any() and not minus.any()
            continue
        want = hat_importance(
            expected_maps[int(qid)], store.image_size(image_id), store.boxes(image_id)
        )
        np.testing.assert_allclose(human[:n], want, rtol=1e-6)
        np.testing.assert_allclose(minus[:n], 1.0 - human[:n], rtol=1e-6)
        assert ((rand[:n] >= 0) & (rand[:n] < 1)).all()
        np.testing.assert_array_equal(rand[:n], random_importance(np.array([qid]), n, 3)[0])
        assert not human[n:].any() and not rand[n:].any() and not minus[n:].any()
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.h5", "train_importance.h5"]


def test_importance_store_random_control_is_reproducible(
    tmp_path: Path, split_store, hat_sources
) -> None:
    store = FakeFeatureStore(tmp_path / "trainval_36.h5")
    paths = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        paths[name] = tmp_path / f"{name}.h5"
        write_importance_store(
            paths[name], split_store, hat_sources, store, seed=seed, progress=False
        )
    a, b, c = (_read(paths[name])[0] for name in "abc")
    np.testing.assert_array_equal(a["random"], b["random"])
    np.testing.assert_array_equal(a["human"], c["human"])
    assert not np.array_equal(a["random"], c["random"])


def test_importance_store_rejects_another_feature_store(
    tmp_path: Path, split_store, hat_sources
) -> None:
    store = FakeFeatureStore(tmp_path / "trainval_adaptive.h5")
    out = tmp_path / "imp.h5"
    with pytest.raises(ValueError, match="built for the feature store 'trainval_36'"):
        write_importance_store(out, split_store, hat_sources, store, progress=False)
    assert not out.exists()


def test_importance_store_with_the_real_feature_store(
    tmp_path: Path, split_store, hat_sources
) -> None:
    features = pytest.importorskip("hint_lightning.prepare.features")
    feature_store = pytest.importorskip("hint_lightning.stores.features")
    tsv = pytest.importorskip("hint_lightning.prepare.bottom_up_tsv")
    rng = np.random.default_rng(0)
    images = []
    for image_id, ((width, height), n) in IMAGES.items():
        boxes = FakeFeatureStore(tmp_path / "x.h5").boxes(image_id)
        images.append((image_id, width, height, boxes, rng.normal(size=(n, 8)).astype(np.float32)))
    path = tsv.write_bottom_up_tsv(tmp_path / "f.tsv", images)
    features.convert_tsv_to_hdf5([path], tmp_path / "trainval_36.h5", feature_dim=8, progress=False)
    with feature_store.FeatureStore(tmp_path / "trainval_36.h5") as real:
        counts = write_importance_store(
            tmp_path / "imp.h5", split_store, hat_sources, real, progress=False
        )
    assert counts["with_importance"] == 3


# ------------------------------------------------------------------------------ coverage


def test_coverage_reports_matches_per_split_and_unmatched_maps(
    tmp_path: Path, split_store, hat_sources
) -> None:
    report = hat_coverage(hat_sources, {"train": split_store})
    assert report["maps"] == 8 and report["questions"] == 4
    assert report["matched"] == {"train": 3}
    assert report["unmatched"] == {"count": 1, "question_ids": [77000]}
    assert [s["name"] for s in report["sources"]] == ["vqahat_train.zip", "vqahat_val"]
    out = tmp_path / "prepared" / "hat_coverage.json"
    summary = write_hat_coverage(out, hat_sources, {"train": split_store})
    assert json.loads(out.read_text()) == report
    assert "matched train 3" in summary and "77000" in summary
    assert "\n" not in summary


def test_fixture_zip_bytes_do_not_depend_on_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    maps = {"vqahat_val/1_1.png": np.eye(4, dtype=np.uint8) * 255}
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    first = write_hat_zip(tmp_path / "first.zip", maps).read_bytes()
    monkeypatch.setattr(time, "time", lambda: 1_800_000_003.0)
    second = write_hat_zip(tmp_path / "second.zip", maps).read_bytes()
    assert first == second
