"""Tests of easy-VQA-CP: raw data, pixels -> proposals/features/importance, store, DataModule.

Pure functions run on tiny images drawn here. The store logic (cache, atomic write, rebuild)
runs on a small synthetic easy-VQA-like source written to ``tmp_path``. One session-scoped
fixture builds the real store from the installed ``easy-vqa`` package (a few seconds) for the
checks on real counts, splits and batches.
"""

from __future__ import annotations

import io
import math
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from hint_lightning.data.batch import ANSWER_TYPES, VQA_BATCH_KEYS
from hint_lightning.data.collate import collate_vqa
from hint_lightning.data.easyvqa_datamodule import (
    EasyVQACPDataModule,
    carve_val_and_hinted,
)
from hint_lightning.data.importance import proposal_importance
from hint_lightning.prepare import easyvqa as build
from hint_lightning.prepare import easyvqa_images as im
from hint_lightning.prepare.easyvqa_source import (
    TEST_IMAGE_ID_OFFSET,
    TEST_QUESTION_ID_OFFSET,
    EasyVQASource,
    answer_type_index,
    question_template,
    vqa_question_types,
)
from hint_lightning.stores import easyvqa as store

BACKGROUND = (245, 240, 235)
SHAPE_COLOR = (0, 0, 255)
SHAPE_BOX = (20, 10, 45, 30)  # x1, y1, x2, y2 (x2, y2 exclusive)


def _quiet() -> Console:
    """A console that swallows output."""
    return Console(quiet=True)


def _rectangle_image(seed: int = 0, box: tuple[int, int, int, int] = SHAPE_BOX) -> np.ndarray:
    """A 64x64 image: a solid rectangle on a background with slight noise on 20% of pixels."""
    rng = np.random.default_rng(seed)
    image = np.empty((64, 64, 3), dtype=np.int16)
    image[:] = BACKGROUND
    noisy = rng.uniform(size=(64, 64)) < 0.2
    image[noisy] += rng.integers(-5, 6, size=(int(noisy.sum()), 3))
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = SHAPE_COLOR
    return np.clip(image, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- raw data


def test_templates_of_the_real_questions() -> None:
    import easy_vqa

    texts = easy_vqa.get_train_questions()[0] + easy_vqa.get_test_questions()[0]
    templates = {question_template(q) for q in texts}
    assert len(templates) == 24
    assert "is there a <C> shape in the image" in templates
    assert "what shape is present" in templates
    assert all("?" not in t and t == t.strip() for t in templates)
    types = set(vqa_question_types(sorted(set(texts))))
    assert {"is there a", "what color is the", "does the", "what"} <= types


def test_answer_types() -> None:
    codes = answer_type_index(["yes", "no", "red", "circle"])
    assert [ANSWER_TYPES[c] for c in codes] == ["yes/no", "yes/no", "other", "other"]


def test_source_ids() -> None:
    source = EasyVQASource.from_parts(
        (["q0?", "q1?"], ["yes", "red"], [0, 1]),
        (["t0?"], ["no"], [0]),
        {0: "a.png", 1: "b.png"},
        {0: "c.png"},
        ["yes", "no", "red"],
    )
    assert source.question_ids.tolist() == [0, 1, TEST_QUESTION_ID_OFFSET]
    assert source.image_ids.tolist() == [0, 1, TEST_IMAGE_ID_OFFSET]
    assert source.image_paths[TEST_IMAGE_ID_OFFSET] == "c.png"
    with pytest.raises(ValueError, match="collide"):
        EasyVQASource.from_parts(
            ([], [], []), ([], [], []), {5000: "x.png"}, {}, [], image_id_offset=4000
        )
    with pytest.raises(ValueError, match="missing images"):
        EasyVQASource.from_parts((["q?"], ["yes"], [3]), ([], [], []), {}, {}, ["yes"])


# --------------------------------------------------------------------------- pixels


def test_background_colors_match_a_counter_reference() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 3, size=(20, 5, 6, 3), dtype=np.uint8) * 100  # many ties
    images[3] = 7
    expected = []
    for image in images:
        counts = Counter(map(tuple, image.reshape(-1, 3).tolist()))
        best = max(counts.values())
        expected.append(min(c for c, n in counts.items() if n == best))  # ties: smallest
    assert im.background_colors(images).tolist() == [list(c) for c in expected]


def test_mask_and_box_recover_a_drawn_rectangle() -> None:
    images = np.stack([_rectangle_image(0), _rectangle_image(1, box=(0, 50, 64, 64))])
    masks = im.shape_masks(images)
    x1, y1, x2, y2 = SHAPE_BOX
    expected = np.zeros((64, 64), dtype=bool)
    expected[y1:y2, x1:x2] = True
    np.testing.assert_array_equal(masks[0], expected)
    assert im.mask_boxes(masks).tolist() == [list(map(float, SHAPE_BOX)), [0, 50, 64, 64]]
    empty = im.mask_boxes(np.zeros((1, 64, 64), dtype=bool))
    assert empty.tolist() == [[0.0, 0.0, 64.0, 64.0]]


def test_proposals_are_whole_pixel_boxes_inside_the_image() -> None:
    shape_boxes = np.array([SHAPE_BOX, (0, 0, 64, 64), (60, 60, 64, 64)], dtype=np.float64)
    boxes = im.make_proposals(shape_boxes, np.random.default_rng(0), 64, 64, num_proposals=24)
    assert boxes.shape == (3, 24, 4)
    assert np.all(boxes == np.rint(boxes))
    assert np.all(boxes[..., :2] >= 0) and np.all(boxes[..., 2:] <= 64)
    assert np.all(boxes[..., 2] > boxes[..., 0]) and np.all(boxes[..., 3] > boxes[..., 1])
    np.testing.assert_array_equal(boxes[:, :16], np.broadcast_to(im.grid_boxes(64, 64), (3, 16, 4)))
    # Jittered copies overlap the shape's box; random boxes have sides of 8-40 px.
    jittered, random = boxes[:, 16:20], boxes[:, 20:]
    overlap_x = np.minimum(jittered[..., 2], shape_boxes[:, None, 2]) - np.maximum(
        jittered[..., 0], shape_boxes[:, None, 0]
    )
    overlap_y = np.minimum(jittered[..., 3], shape_boxes[:, None, 3]) - np.maximum(
        jittered[..., 1], shape_boxes[:, None, 1]
    )
    assert np.all(overlap_x > 0) and np.all(overlap_y > 0)
    sides = random[..., 2:] - random[..., :2]
    assert np.all(sides >= 8) and np.all(sides <= 40)
    # Seeded: same seed, same boxes; another seed, other boxes.
    again = im.make_proposals(shape_boxes, np.random.default_rng(0), 64, 64)
    other = im.make_proposals(shape_boxes, np.random.default_rng(1), 64, 64)
    np.testing.assert_array_equal(boxes, again)
    assert not np.array_equal(boxes[:, 16:], other[:, 16:])
    assert im.proposal_counts(30) == (16, 7, 7)
    with pytest.raises(ValueError, match="num_proposals"):
        im.proposal_counts(10)


def _bilinear(image: np.ndarray, x: float, y: float) -> np.ndarray:
    """Slow reference: grid_sample bilinear, align_corners=False, border padding."""
    height, width, _ = image.shape
    u = min(max(x - 0.5, 0.0), width - 1.0)
    v = min(max(y - 0.5, 0.0), height - 1.0)
    j0, i0 = math.floor(u), math.floor(v)
    j1, i1 = min(j0 + 1, width - 1), min(i0 + 1, height - 1)
    a, b = u - j0, v - i0
    top = (1 - a) * image[i0, j0] + a * image[i0, j1]
    bottom = (1 - a) * image[i1, j0] + a * image[i1, j1]
    return (1 - b) * top + b * bottom


def _reference_features(image: np.ndarray, box: np.ndarray, samples: int = 12) -> np.ndarray:
    """Slow per-box reference of the 123-d raw features (float64, Python loops)."""
    pixels = image.astype(np.float64) / 255.0
    x1, y1, x2, y2 = box
    grid = np.empty((samples, samples, 3))
    for r in range(samples):
        for c in range(samples):
            x = x1 + (c + 0.5) / samples * (x2 - x1)
            y = y1 + (r + 0.5) / samples * (y2 - y1)
            grid[r, c] = _bilinear(pixels, x, y)
    flat = grid.reshape(-1, 3)
    histogram = np.zeros(64)
    for r, g, b in np.minimum((flat * 4).astype(int), 3):
        histogram[16 * r + 4 * g + b] += 1 / len(flat)
    cell = samples // 4
    pooled = grid.reshape(4, cell, 4, cell, 3).mean(axis=(1, 3)).reshape(-1)
    height, width = image.shape[:2]
    normalized = np.asarray(box, dtype=np.float64) / [width, height, width, height]
    area = (normalized[2] - normalized[0]) * (normalized[3] - normalized[1])
    return np.concatenate([flat.mean(0), flat.std(0), histogram, pooled, normalized, [area]])


def test_vectorized_features_match_slow_reference() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    images[1] = _rectangle_image(3)
    # Fractional boxes (bilinear mixing; the histogram is compared in the next test).
    boxes = np.array(
        [
            [[0.0, 0.0, 64.0, 64.0], [3.3, 7.1, 20.9, 30.2], [50.5, 0.2, 63.7, 9.9]],
            [[18.2, 8.7, 47.1, 31.6], [0.0, 0.0, 1.0, 1.0], [30.0, 40.0, 64.0, 64.0]],
        ]
    )
    features = im.proposal_features(images, boxes)
    assert features.shape == (2, 3, im.FEATURE_DIM) and features.dtype == np.float32
    assert np.isfinite(features).all()
    not_histogram = np.r_[0:6, 70:123]
    for i in range(2):
        for n in range(3):
            reference = _reference_features(images[i], boxes[i, n])
            np.testing.assert_allclose(
                features[i, n, not_histogram], reference[not_histogram], atol=2e-5
            )


def test_features_on_pixel_centers_match_reference_including_histogram() -> None:
    # Sides of 12 or 36 px put every sample on a pixel center: no interpolation, so the
    # histogram bins are exact in float32 too.
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(1, 64, 64, 3), dtype=np.uint8)
    boxes = np.array([[[0, 0, 12, 12], [5, 17, 41, 53], [52, 40, 64, 52], [28, 0, 64, 36]]])
    features = im.proposal_features(images, boxes.astype(np.float64))
    for n in range(boxes.shape[1]):
        reference = _reference_features(images[0], boxes[0, n])
        np.testing.assert_allclose(features[0, n], reference, atol=2e-5)
        assert features[0, n, 6:70].sum() == pytest.approx(1.0)


def test_features_of_a_uniform_box() -> None:
    image = _rectangle_image(0)[None]
    box = np.array([[[22.0, 12.0, 40.0, 28.0]]])  # inside the solid rectangle
    features = im.proposal_features(image, box)[0, 0]
    np.testing.assert_allclose(features[:3], np.array(SHAPE_COLOR) / 255, atol=1e-6)
    np.testing.assert_allclose(features[3:6], 0.0, atol=1e-6)
    histogram = features[6:70]
    assert histogram[16 * 0 + 4 * 0 + 3] == pytest.approx(1.0) and histogram.sum() == 1.0
    np.testing.assert_allclose(
        features[118:], [22 / 64, 12 / 64, 40 / 64, 28 / 64, 18 * 16 / 64**2]
    )


def test_attention_and_importance_favor_the_shape() -> None:
    images = np.stack([_rectangle_image(0)])
    masks = im.shape_masks(images)
    maps = im.attention_maps(masks, sigma=3.0)
    assert maps.shape == (1, 64, 64) and maps.min() >= 0
    assert maps.sum() == pytest.approx(masks.sum(), rel=1e-6)  # reflecting borders keep mass
    boxes = np.array([[SHAPE_BOX, (0, 40, 16, 56), (0, 0, 64, 64), (30, 15, 35, 20)]], float)
    importance = im.human_importance(maps, boxes)
    assert importance.dtype == np.float32 and importance.shape == (1, 4)
    np.testing.assert_allclose(importance[0], proposal_importance(maps[0], boxes[0]), rtol=1e-6)
    shape_box, far_box, whole, inner = importance[0]
    assert shape_box > 0.9 and far_box < 0.05 and whole == 1.0 and inner > 0.85


def test_carve_val_and_hinted() -> None:
    cp_train = np.arange(0, 2000, 2)
    train, val, hinted = carve_val_and_hinted(cp_train, 0.1, 0.1, seed=3)
    assert len(val) == 100 and len(train) == 900 and len(hinted) == 90
    assert np.array_equal(np.sort(np.concatenate([train, val])), cp_train)
    assert set(hinted) <= set(train)
    for part in (train, val, hinted):
        assert np.all(np.diff(part) > 0)
    again = carve_val_and_hinted(cp_train, 0.1, 0.1, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, hinted), strict=True))
    assert not np.array_equal(carve_val_and_hinted(cp_train, 0.1, 0.1, seed=4)[1], val)
    with pytest.raises(ValueError, match="val_fraction"):
        carve_val_and_hinted(cp_train, 1.0, 0.1, seed=0)


# --------------------------------------------------------------------------- store (synthetic)

COLORS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 128, 0), "yellow": (255, 255, 0)}


def _synthetic_source(folder: Path, num_train: int = 24, num_test: int = 8) -> EasyVQASource:
    """A small easy-VQA-like dataset: one rectangle or circle per 64x64 PNG, 5 questions each."""
    rng = np.random.default_rng(0)
    parts = []
    for split, count in (("train", num_train), ("test", num_test)):
        texts, answers, ids, paths = [], [], [], {}
        for i in range(count):
            color = list(COLORS)[int(rng.integers(len(COLORS)))]
            shape = ("rectangle", "circle")[i % 2]
            image = np.full((64, 64, 3), 250, dtype=np.uint8)
            x1, y1 = rng.integers(0, 40, size=2)
            side = int(rng.integers(10, 24))
            if shape == "rectangle":
                image[y1 : y1 + side, x1 : x1 + side] = COLORS[color]
            else:
                yy, xx = np.mgrid[:64, :64]
                inside = (yy - y1 - side / 2) ** 2 + (xx - x1 - side / 2) ** 2 < (side / 2) ** 2
                image[inside] = COLORS[color]
            path = folder / f"{split}_{i}.png"
            Image.fromarray(image).save(path)
            paths[i] = str(path)
            other = list(COLORS)[int(rng.integers(len(COLORS)))]
            for text, answer in (
                ("what color is the shape?", color),
                (f"what is the {color} shape?", shape),
                (f"is there a {other} shape?", "yes" if other == color else "no"),
                ("does the image contain a circle?", "yes" if shape == "circle" else "no"),
                ("what shape is in the image?", shape),
            ):
                texts.append(text)
                answers.append(answer)
                ids.append(i)
        parts.append(((texts, answers, ids), paths))
    (train, train_paths), (test, test_paths) = parts
    vocab = [*COLORS, "rectangle", "circle", "yes", "no"]
    return EasyVQASource.from_parts(train, test, train_paths, test_paths, vocab)


def test_synthetic_store_cache_rebuild_and_atomic_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    source = _synthetic_source(images_dir)
    cache = tmp_path / "cache"
    params = store.EasyVQACPParams()
    path = build.ensure_store(cache, params, source=source, console=_quiet())
    assert path == cache / params.filename() and path.is_file()
    arrays = store.load_store(path)
    assert arrays.num_questions == source.num_questions == 160
    assert arrays.features.shape == (32, 24, im.FEATURE_DIM)
    assert arrays.image_id.tolist() == [*range(24), *range(4000, 4008)]
    np.testing.assert_array_equal(arrays.image_id[arrays.image_index], source.image_ids)
    assert arrays.question_id[-1] == TEST_QUESTION_ID_OFFSET + 39
    assert set(np.unique(arrays.split)) <= {store.SPLIT_TRAIN, store.SPLIT_TEST}
    assert arrays.question[0] == source.questions[0]
    assert arrays.templates[arrays.template[1]] == question_template(source.questions[1])
    flat = arrays.features.reshape(-1, im.FEATURE_DIM)
    varying = flat.std(0) > 0
    np.testing.assert_allclose(flat[:, varying].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(flat[:, varying].std(0), 1, atol=1e-3)

    # Reuse: same parameters, same file untouched.
    stat = path.stat()
    assert build.ensure_store(cache, params, source=source, console=_quiet()) == path
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (stat.st_mtime_ns, stat.st_ino)

    # A changed parameter builds a new file next to the old one.
    changed = store.EasyVQACPParams(blur_sigma=2.0)
    other = build.ensure_store(cache, changed, source=source, console=_quiet())
    assert other != path and other.is_file() and path.is_file()
    assert not np.array_equal(store.load_store(other).human_importance, arrays.human_importance)
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, other.name])

    # A failure while writing leaves neither the store nor a temporary file.
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "write_checksums", fail)
    broken = store.EasyVQACPParams(leak=0.2)
    with pytest.raises(RuntimeError, match="disk full"):
        build.ensure_store(cache, broken, source=source, console=_quiet())
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, other.name])


def test_a_store_written_before_checksums_is_rebuilt_with_a_message(tmp_path: Path) -> None:
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    source = _synthetic_source(images_dir)
    params = store.EasyVQACPParams()
    path = build.ensure_store(tmp_path / "cache", params, source=source, console=_quiet())
    with h5py.File(path, "a") as handle:
        del handle["_checksums"]  # as every store written before checksums
    assert not store.has_checksums(path)
    console = Console(file=io.StringIO(), width=200)
    assert build.ensure_store(path.parent, params, source=source, console=console) == path
    assert "written before stores carried checksums; rebuilding it" in console.file.getvalue()
    assert store.has_checksums(path)
    store.load_store(path)


def test_datamodule_on_a_synthetic_store(tmp_path: Path) -> None:
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    source = _synthetic_source(images_dir)
    dm = EasyVQACPDataModule(
        data_dir=str(tmp_path), batch_size=8, eval_batch_size=16, val_fraction=0.2
    )
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        dm.setup("fit")
    build.ensure_store(dm.cache_dir, dm.params, source=source, console=_quiet())
    dm.setup("fit")
    assert dm.info is not None and dm.info.name == "easyvqa_cp"
    assert dm.info.num_answers == 8 and dm.info.max_proposals == 24
    batch = next(iter(dm.train_dataloader()))
    assert tuple(batch) == VQA_BATCH_KEYS and batch["features"].shape == (8, 24, 123)
    n = len(dm.question_ids("train")) + len(dm.question_ids("val")) + len(dm.question_ids("test"))
    assert n == 160


# --------------------------------------------------------------------------- real store


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """Builds the real easy-VQA-CP store once (default parameters); returns (dir, seconds)."""
    cache = tmp_path_factory.mktemp("easyvqa_cp")
    dm = EasyVQACPDataModule(data_dir=str(cache), cache_dir=str(cache))
    began = time.perf_counter()
    dm.prepare_data()
    return cache, time.perf_counter() - began


@pytest.fixture(scope="session")
def real_dm(real_cache: tuple[Path, float]) -> EasyVQACPDataModule:
    """The DataModule on the real store, set up."""
    dm = EasyVQACPDataModule(cache_dir=str(real_cache[0]))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _datamodule(cache: Path, **kwargs: object) -> EasyVQACPDataModule:
    dm = EasyVQACPDataModule(cache_dir=str(cache), **kwargs)  # type: ignore[arg-type]
    dm.setup("fit")
    return dm


def test_real_store_builds_once(
    real_cache: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    cache, _ = real_cache
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".h5"  # no temporary file left
    stat = files[0].stat()
    dm = EasyVQACPDataModule(cache_dir=str(cache))
    dm.prepare_data()
    assert "reusing" in capsys.readouterr().out
    assert (files[0].stat().st_mtime_ns, files[0].stat().st_ino) == (
        stat.st_mtime_ns,
        stat.st_ino,
    )
    assert dm.store_path == files[0]


def test_real_counts_and_splits(real_dm: EasyVQACPDataModule) -> None:
    ids = {split: real_dm.question_ids(split) for split in ("train", "val", "test", "hinted")}
    assert len(ids["train"]) + len(ids["val"]) + len(ids["test"]) == 48_248
    assert not set(ids["train"]) & set(ids["val"])
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["val"]) & set(ids["test"])
    assert set(ids["hinted"]) <= set(ids["train"])
    assert len(ids["hinted"]) == math.floor(0.1 * len(ids["train"]) + 0.5)
    cp_train = len(ids["train"]) + len(ids["val"])
    assert len(ids["val"]) == math.floor(0.1 * cp_train + 0.5)

    arrays = real_dm._arrays
    assert arrays is not None
    rows = {split: np.searchsorted(arrays.question_id, ids[split]) for split in ids}
    assert np.all(arrays.split[rows["val"]] == store.SPLIT_TRAIN)  # val carved from CP-train
    assert np.all(arrays.split[rows["test"]] == store.SPLIT_TEST)
    assert len(arrays.templates) == 24 and len(real_dm.answers) == 13
    assert arrays.image_id.tolist() == list(range(5000))

    # Question ids: train k -> k, test k -> 100000 + k.
    import easy_vqa

    test_texts, _, test_images = easy_vqa.get_test_questions()
    last = np.searchsorted(arrays.question_id, TEST_QUESTION_ID_OFFSET + len(test_texts) - 1)
    assert arrays.question[last] == test_texts[-1]
    assert arrays.image_id[arrays.image_index[last]] == TEST_IMAGE_ID_OFFSET + test_images[-1]

    stats = real_dm.split_stats
    assert stats["test_answer_in_train"] == 1.0 and stats["reached_target"]
    assert stats["subsets"]["n_test"] == len(ids["test"])


def test_real_prior_shift_on_yes_no_templates(real_dm: EasyVQACPDataModule) -> None:
    arrays = real_dm._arrays
    assert arrays is not None
    train = np.isin(arrays.question_id, real_dm.question_ids("train"))
    test = arrays.split == store.SPLIT_TEST
    yes_no = arrays.answer_type == ANSWER_TYPES.index("yes/no")
    checked = 0
    for template in np.unique(arrays.template[yes_no & test]):
        of_template = arrays.template == template
        train_majority = Counter(arrays.answer[of_template & train].tolist()).most_common(1)
        test_majority = Counter(arrays.answer[of_template & test].tolist()).most_common(1)
        assert train_majority[0][0] != test_majority[0][0], arrays.templates[template]
        checked += 1
    assert checked >= 3


def test_real_batches_follow_the_contract(real_dm: EasyVQACPDataModule) -> None:
    loaders = {
        "train": real_dm.train_dataloader(),
        "val": real_dm.val_dataloader(),
        "test": real_dm.test_dataloader(),
    }
    for name, loader in loaders.items():
        batch = next(iter(loader))
        size = 256 if name == "train" else 512
        assert tuple(batch) == VQA_BATCH_KEYS, name
        expected = {
            "features": ((size, 24, 123), torch.float32),
            "boxes": ((size, 24, 4), torch.float32),
            "proposal_mask": ((size, 24), torch.bool),
            "question_tokens": ((size, 14), torch.int64),
            "targets": ((size, 13), torch.float32),
            "answer_scores": ((size, 13), torch.float32),
            "answer_type": ((size,), torch.int64),
            "human_importance": ((size, 24), torch.float32),
            "has_importance": ((size,), torch.bool),
            "question_id": ((size,), torch.int64),
        }
        for key, (shape, dtype) in expected.items():
            assert (tuple(batch[key].shape), batch[key].dtype) == (shape, dtype), (name, key)
        assert batch["proposal_mask"].all()
        assert torch.equal(batch["targets"].sum(1), torch.ones(size))
        assert torch.equal(batch["targets"], batch["answer_scores"])
        assert set(batch["answer_type"].tolist()) <= {0, 2}
        assert batch["boxes"].min() >= 0 and batch["boxes"].max() <= 1
        if name != "train":
            assert batch["has_importance"].all()
    # Train: only the hinted questions carry importance; zeros elsewhere.
    batch = next(iter(loaders["train"]))
    assert not batch["human_importance"][~batch["has_importance"]].any()
    assert 0 < batch["has_importance"].float().mean() < 0.3


def test_real_item_path_equals_batch_path(real_dm: EasyVQACPDataModule) -> None:
    dataset = real_dm._datasets["train"]
    indices = list(range(0, len(dataset), 97))
    batched = dataset.__getitems__(indices)
    collated = collate_vqa([dataset[i] for i in indices], num_answers=13)
    for key in VQA_BATCH_KEYS:
        assert torch.equal(batched[key], collated[key]), key


def test_real_epoch_covers_every_train_question_once(real_dm: EasyVQACPDataModule) -> None:
    # Throughput is measured in benchmarks/, not asserted here.
    ids = torch.cat([batch["question_id"] for batch in real_dm.train_dataloader()])
    assert len(ids) == len(set(ids.tolist())) == len(real_dm.question_ids("train"))


def _importance_by_question(dm: EasyVQACPDataModule, split: str) -> dict[str, torch.Tensor]:
    """All batches of a split, concatenated, sorted by question id."""
    dataset = dm._datasets[split]
    batch = dataset.__getitems__(list(range(len(dataset))))
    order = torch.argsort(batch["question_id"])
    return {k: batch[k][order] for k in ("question_id", "human_importance", "has_importance")}


def test_real_importance_sources(
    real_cache: tuple[Path, float], real_dm: EasyVQACPDataModule
) -> None:
    cache = real_cache[0]
    human = _importance_by_question(real_dm, "train")
    hinted = human["has_importance"]
    one_minus = _importance_by_question(_datamodule(cache, importance_source="one_minus"), "train")
    random = _importance_by_question(_datamodule(cache, importance_source="random"), "train")
    random_again = _importance_by_question(_datamodule(cache, importance_source="random"), "train")
    for other in (one_minus, random):
        assert torch.equal(other["question_id"], human["question_id"])
        assert torch.equal(other["has_importance"], hinted)
        assert not other["human_importance"][~hinted].any()
    torch.testing.assert_close(
        one_minus["human_importance"][hinted], 1 - human["human_importance"][hinted]
    )
    values = random["human_importance"][hinted]
    assert values.min() >= 0 and values.max() < 1 and abs(values.mean() - 0.5) < 0.01
    assert torch.equal(random["human_importance"], random_again["human_importance"])
    # Fixed per (question, proposal): two questions about one image get different values.
    arrays = real_dm._arrays
    assert arrays is not None
    rows = np.searchsorted(arrays.question_id, random["question_id"][hinted].numpy())
    images = arrays.image_index[rows]
    first, second = np.flatnonzero(images == images[np.argmax(np.bincount(images))])[:2]
    assert not torch.equal(values[first], values[second])
    assert torch.equal(
        human["human_importance"][hinted][first], human["human_importance"][hinted][second]
    )
    # Val and CP-test keep the real human importance.
    for split in ("val", "test"):
        torch.testing.assert_close(
            _importance_by_question(_datamodule(cache, importance_source="one_minus"), split)[
                "human_importance"
            ],
            _importance_by_question(real_dm, split)["human_importance"],
        )


def test_real_hinted_only_and_limits(
    real_cache: tuple[Path, float], real_dm: EasyVQACPDataModule
) -> None:
    cache = real_cache[0]
    hinted_dm = _datamodule(cache, hinted_only=True, batch_size=64)
    np.testing.assert_array_equal(hinted_dm.question_ids("train"), real_dm.question_ids("hinted"))
    batch = next(iter(hinted_dm.train_dataloader()))
    assert batch["has_importance"].all() and batch["features"].shape[0] == 64
    limited = _datamodule(cache, limit_train_questions=500)
    train_ids = limited.question_ids("train")
    assert len(train_ids) == 500 and set(train_ids) <= set(real_dm.question_ids("train"))
    np.testing.assert_array_equal(limited.question_ids("test"), real_dm.question_ids("test"))
    meta = limited.question_metadata("test")
    assert len(meta["question"]) == len(meta["answer"]) == len(real_dm.question_ids("test"))
    assert meta["answer"][0] in real_dm.answers


def test_global_batch_size_is_divided_by_world_size(real_cache: tuple[Path, float]) -> None:
    dm = EasyVQACPDataModule(cache_dir=str(real_cache[0]), batch_size=256, eval_batch_size=500)
    dm.trainer = SimpleNamespace(world_size=4)  # type: ignore[assignment]
    dm.setup("fit")
    assert dm.train_dataloader().batch_size == 64 and dm.val_dataloader().batch_size == 125
    dm.trainer = SimpleNamespace(world_size=3)  # type: ignore[assignment]
    with pytest.raises(ValueError, match="divisible"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="importance_source"):
        EasyVQACPDataModule(importance_source="inverse")
