"""``python -m hint_lightning.prepare coco``: outputs, importance from masks, errors, skipping."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from testkit import FIXTURE_FEATURE_DIM, temp_files

from hint_lightning.data.importance import proposal_importance
from hint_lightning.prepare.cli import main
from hint_lightning.prepare.coco import prepare_coco
from hint_lightning.prepare.coco_masks import rle_string_counts, segmentation_problem
from hint_lightning.prepare.fixture.coco_files import FIXTURE_WORD_COUNT_THRESHOLD
from hint_lightning.prepare.fixture.tree import write_fixture_tree
from hint_lightning.prepare.layout import DataLayout, MissingRawFilesError
from hint_lightning.stores.features import FeatureStore
from hint_lightning.stores.prepare_state import LEDGER_NAME
from hint_lightning.text.tokens import BOS_INDEX as BOS
from hint_lightning.text.tokens import CAPTION_SPECIAL_TOKENS as SPECIAL_TOKENS
from hint_lightning.text.tokens import CAPTION_UNK_INDEX as UNK
from hint_lightning.text.tokens import EOS_INDEX as EOS
from hint_lightning.text.tokens import PAD_INDEX as PAD
from hint_lightning.text.visual_words import find_visual_words, load_visual_words

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)  # pycocotools' decoder under numpy 2 (COCO.annToMask in the reference computation)

FEATURE_DIM = FIXTURE_FEATURE_DIM
FAMILIES = ("karpathy", "robust")
SPLITS = ("train", "val", "test")


def outputs() -> list[str]:
    """Every output name of a full run, in run order."""
    names = ["features/trainval_36.h5"]
    for family in FAMILIES:
        names += [f"coco/{family}/vocab.json"]
        names += [f"coco/{family}/{split}.h5" for split in SPLITS]
        names += [f"coco/{family}/{split}_references.json" for split in ("val", "test")]
    return [*names, "coco/importance.h5", "coco/coco_report.json"]


def run(data_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """prepare_coco on the fixture tree (fixture threshold and D, no progress bars)."""
    defaults = {
        "feature_dim": FEATURE_DIM,
        "word_count_threshold": FIXTURE_WORD_COUNT_THRESHOLD,
        "progress": False,
    }
    return prepare_coco(data_dir, **(defaults | kwargs))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    """Rewrites a raw JSON file after ``change`` modified its content."""
    payload = read_json(path)
    change(payload)
    path.write_text(json.dumps(payload))


def karpathy(tree: Path) -> list[dict[str, Any]]:
    return read_json(tree / "raw/coco/dataset_coco.json")["images"]


def instances(tree: Path, subtype: str) -> dict[str, Any]:
    return read_json(tree / f"raw/coco/annotations/instances_{subtype}.json")


def robust_ids(tree: Path) -> dict[str, list[int]]:
    split = read_json(tree / "raw/coco/split_robust_coco.json")
    return {s: [item["img_id"] for item in split[f"{s}_id"]] for s in SPLITS}


def family_ids(tree: Path, family: str, split: str) -> list[int]:
    """The split's image ids in dataset_coco.json order."""
    if family == "karpathy":
        wanted = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}[split]
        return [i["cocoid"] for i in karpathy(tree) if i["split"] in wanted]
    ids = set(robust_ids(tree)[split])
    return [i["cocoid"] for i in karpathy(tree) if i["cocoid"] in ids]


@pytest.fixture
def prepared(tree: Path) -> Path:
    run(tree)
    return tree


# --------------------------------------------------------------------------------------------
# The fixture.
# --------------------------------------------------------------------------------------------


def test_coco_fixture_is_in_the_real_formats_and_leaves_the_vqa_files_alone(
    tmp_path: Path,
) -> None:
    with_coco = write_fixture_tree(tmp_path / "a", feature_dim=8)
    without = write_fixture_tree(tmp_path / "b", feature_dim=8, coco=False)
    assert set(with_coco) - set(without) == {
        "raw/coco/dataset_coco.json",
        "raw/coco/annotations/instances_train2014.json",
        "raw/coco/annotations/instances_val2014.json",
        "raw/coco/split_robust_coco.json",
    }
    for name, path in without.items():
        if name != "README.txt":
            assert with_coco[name].read_bytes() == path.read_bytes(), name
    tree = tmp_path / "a"
    payload = read_json(tree / "raw/coco/dataset_coco.json")
    assert set(payload) == {"images", "dataset"} and payload["dataset"] == "coco"
    image = payload["images"][0]
    assert set(image) == {
        "filepath",
        "sentids",
        "filename",
        "imgid",
        "split",
        "sentences",
        "cocoid",
    }
    assert set(image["sentences"][0]) == {"tokens", "raw", "imgid", "sentid"}
    assert {i["split"] for i in payload["images"]} == {"train", "val", "test", "restval"}
    train = instances(tree, "train2014")
    assert list(train) == ["info", "images", "licenses", "annotations", "categories"]
    assert len(train["categories"]) == 80
    kinds = set()
    for subtype in ("train2014", "val2014"):
        for annotation in instances(tree, subtype)["annotations"]:
            segmentation = annotation["segmentation"]
            kinds.add(
                "polygon"
                if isinstance(segmentation, list)
                else type(segmentation["counts"]).__name__
            )
    assert kinds == {"polygon", "list", "str"}  # polygons, uncompressed and compressed RLE
    words, found = load_visual_words(), set()
    for image in payload["images"]:
        for sentence in image["sentences"]:
            tokens = sentence["tokens"]
            for position, _ in find_visual_words(tokens):
                pair = tuple(tokens[max(0, position - 1) : position + 1])
                found.add(" ".join(pair) if pair in words.forms else tokens[position])
    for word in ("men", "women", "people", "mice", "knives", "puppies", "teddy bears", "hot dog"):
        assert word in found, word
    assert (
        "README.txt" in with_coco
        and "--word-count-threshold 1" in (tree / "README.txt").read_text()
    )


# --------------------------------------------------------------------------------------------
# Every output, consistent with the raw files.
# --------------------------------------------------------------------------------------------


def test_prepare_coco_writes_every_output(tree: Path) -> None:
    report = run(tree)
    assert report["built"] == outputs() and report["skipped"] == report["absent"] == []
    assert report["dataset"] == "coco" and report["empty_captions"] == 1
    assert report["robust_split"] == "raw/coco/split_robust_coco.json"
    for folder in ("coco", "coco/karpathy", "coco/robust"):
        assert (tree / "prepared" / folder / LEDGER_NAME).is_file()
    assert temp_files(tree) == []
    counts = report["outputs"]
    assert counts["coco/robust/test_references.json"]["counts"]["images"] == 3
    assert counts["coco/coco_report.json"]["counts"] == {"empty_captions": 1}


def test_vocabulary_counts_training_captions_only(prepared: Path) -> None:
    for family in FAMILIES:
        vocab = read_json(prepared / f"prepared/coco/{family}/vocab.json")
        assert tuple(vocab[:4]) == SPECIAL_TOKENS == ("<pad>", "<bos>", "<eos>", "<unk>")
        train = set(family_ids(prepared, family, "train"))
        counts: dict[str, int] = {}
        for image in karpathy(prepared):
            if image["cocoid"] in train:
                for sentence in image["sentences"]:
                    for token in sentence["tokens"]:
                        counts[token] = counts.get(token, 0) + 1
        kept = {t for t, n in counts.items() if n > FIXTURE_WORD_COUNT_THRESHOLD}
        assert set(vocab[4:]) == kept and len(vocab) == len(set(vocab))
        assert [counts[t] for t in vocab[4:]] == sorted(
            (counts[t] for t in vocab[4:]), reverse=True
        )
    default = run(prepared, force=True, word_count_threshold=5)
    assert "coco/karpathy/vocab.json" in default["built"]
    vocab = read_json(prepared / "prepared/coco/karpathy/vocab.json")
    assert "a" in vocab and all(v in SPECIAL_TOKENS or v.isalnum() for v in vocab)


@pytest.mark.parametrize("family", FAMILIES)
def test_caption_stores(prepared: Path, family: str) -> None:
    vocab = read_json(prepared / f"prepared/coco/{family}/vocab.json")
    index = {t: i for i, t in enumerate(vocab)}
    sentences = {
        i["cocoid"]: [s for s in i["sentences"] if s["tokens"]] for i in karpathy(prepared)
    }
    longest = 0
    for split in SPLITS:
        path = prepared / f"prepared/coco/{family}/{split}.h5"
        with h5py.File(path, "r") as handle:
            image_ids = handle["image_ids"][()].tolist()
            captions = handle["captions"][()]
            lengths = handle["lengths"][()]
            owner = handle["caption_image"][()]
            sentids = handle["caption_ids"][()]
            category = handle["word_category"][()]
            assert handle.attrs["family"] == family and handle.attrs["split"] == split
            assert handle.attrs["max_words"] == 16 and handle.attrs["vocab_size"] == len(vocab)
        assert image_ids == family_ids(prepared, family, split)
        assert captions.shape == category.shape == (len(lengths), 18)
        assert captions.dtype == np.int32
        expected = [(row, s) for row, i in enumerate(image_ids) for s in sentences[i]]
        assert owner.tolist() == [row for row, _ in expected]
        assert sentids.tolist() == [s["sentid"] for _, s in expected]
        for c, (_, sentence) in enumerate(expected):
            words = sentence["tokens"][:16]
            assert lengths[c] == len(words)
            row = [BOS, *(index.get(w, UNK) for w in words), EOS]
            assert captions[c].tolist() == row + [PAD] * (18 - len(row))
            wanted = np.zeros(18, dtype=np.int16)
            for position, category_id in find_visual_words(words):
                if row[position + 1] != UNK:
                    wanted[position + 1] = category_id
            assert category[c].tolist() == wanted.tolist()
            longest = max(longest, len(sentence["tokens"]))
    assert longest > 16  # the fixture's long caption was cut
    with h5py.File(prepared / f"prepared/coco/{family}/train.h5", "r") as handle:
        assert np.count_nonzero(handle["word_category"][()]) > 10


def test_references_cover_every_test_image(prepared: Path) -> None:
    raw = {i["cocoid"]: i for i in karpathy(prepared)}
    for family in FAMILIES:
        for split in ("val", "test"):
            refs = read_json(prepared / f"prepared/coco/{family}/{split}_references.json")
            assert refs["type"] == "captions"
            ids = [image["id"] for image in refs["images"]]
            assert ids == family_ids(prepared, family, split)
            expected = [
                {"image_id": i, "id": s["sentid"], "caption": s["raw"].strip()}
                for i in ids
                for s in raw[i]["sentences"]
                if s["tokens"]
            ]
            assert refs["annotations"] == expected
            assert all(
                image["file_name"] == raw[image["id"]]["filename"] for image in refs["images"]
            )
    robust_test = read_json(prepared / "prepared/coco/robust/test_references.json")
    ids = {image["id"] for image in robust_test["images"]}
    assert ids == set(robust_ids(prepared)["test"])  # all of them, train2014 images included
    assert {raw[i]["filepath"] for i in ids} == {"train2014", "val2014"}


def test_empty_caption_is_skipped_and_reported(prepared: Path) -> None:
    empty = [
        (i["cocoid"], s["sentid"])
        for i in karpathy(prepared)
        for s in i["sentences"]
        if not s["tokens"]
    ]
    assert len(empty) == 1
    image_id, sentid = empty[0]
    report = read_json(prepared / "prepared/coco/coco_report.json")
    assert report["empty_captions"] == {
        "count": 1,
        "captions": [{"image_id": image_id, "sentid": sentid, "raw": " ."}],
    }
    assert report["images"] == 12 and report["captions"] == 60
    assert report["images_without_captions"] == [] and report["robust_rest"] == 0
    total = sum(report["splits"]["karpathy"][s]["captions"] for s in SPLITS)
    assert total == 59
    for family in FAMILIES:
        for split in SPLITS:
            with h5py.File(prepared / f"prepared/coco/{family}/{split}.h5", "r") as handle:
                assert sentid not in handle["caption_ids"][()]


# --------------------------------------------------------------------------------------------
# Visual-word importance from the segmentations.
# --------------------------------------------------------------------------------------------


def rows_by_key(path: Path) -> dict[tuple[int, int], np.ndarray]:
    """``(image id, category id) -> importance [M]`` of the importance store."""
    with h5py.File(path, "r") as handle:
        images, categories = handle["image_id"][()], handle["category_id"][()]
        importance = handle["importance"][()]
    return {
        (int(i), int(c)): importance[k]
        for k, (i, c) in enumerate(zip(images, categories, strict=True))
    }


def hand_rasterized(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A rectangle polygon, an uncompressed RLE or a compressed RLE as an [H, W] 0/1 mask."""
    mask = np.zeros((height, width), dtype=np.uint8)
    if isinstance(segmentation, list):
        (ring,) = segmentation
        x0, y0, x1, _, _, y1, _, _ = (int(v) for v in ring)
        assert ring == [x0, y0, x1, y0, x1, y1, x0, y1]  # an axis-aligned rectangle
        mask[y0:y1, x0:x1] = 1
    elif isinstance(segmentation["counts"], list):
        counts = segmentation["counts"]
        values = np.arange(len(counts)) % 2
        mask = np.repeat(values, counts).astype(np.uint8).reshape(width, height).T
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
        mask = mask_utils.decode(rle)
    return mask


def test_importance_of_a_polygon_and_an_rle_union_equals_a_hand_rasterized_map(
    prepared: Path,
) -> None:
    rows = rows_by_key(prepared / "prepared/coco/importance.h5")
    store = FeatureStore(prepared / "prepared/features/trainval_36.h5")
    checked = set()
    for subtype in ("train2014", "val2014"):
        payload = instances(prepared, subtype)
        sizes = {image["id"]: (image["height"], image["width"]) for image in payload["images"]}
        groups: dict[tuple[int, int], list[Any]] = {}
        for annotation in payload["annotations"]:
            key = (annotation["image_id"], annotation["category_id"])
            groups.setdefault(key, []).append(annotation["segmentation"])
        for key, segmentations in groups.items():
            kinds = sorted(
                "polygon" if isinstance(s, list) else type(s["counts"]).__name__
                for s in segmentations
            )
            if kinds not in (["list", "polygon"], ["polygon", "str"]):
                continue
            height, width = sizes[key[0]]
            union = np.zeros((height, width), dtype=np.uint8)
            for segmentation in segmentations:
                union |= hand_rasterized(segmentation, height, width)
            boxes = store.boxes(key[0])
            expected = proposal_importance(union, boxes)
            assert rows[key].shape == (36,)
            np.testing.assert_allclose(rows[key][: len(boxes)], expected, atol=1e-6)
            assert 0 < expected.max() <= 1
            checked.add(kinds[0] if kinds[1] == "polygon" else kinds[1])
    assert checked == {"list", "str"}  # uncompressed and compressed RLE, each with a polygon


def test_every_importance_row_matches_pycocotools_ann_to_mask(prepared: Path) -> None:
    path = prepared / "prepared/coco/importance.h5"
    rows = rows_by_key(path)
    store = FeatureStore(prepared / "prepared/features/trainval_36.h5")
    expected_keys = set()
    for subtype in ("train2014", "val2014"):
        coco = COCO(str(prepared / f"raw/coco/annotations/instances_{subtype}.json"))
        for image_id in coco.getImgIds():
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            for category_id in sorted({a["category_id"] for a in annotations}):
                masks = [coco.annToMask(a) for a in annotations if a["category_id"] == category_id]
                union = np.maximum.reduce(masks)
                boxes = store.boxes(image_id)
                np.testing.assert_allclose(
                    rows[(image_id, category_id)][: len(boxes)],
                    proposal_importance(union, boxes),
                    atol=1e-6,
                )
                expected_keys.add((image_id, category_id))
    assert set(rows) == expected_keys
    with h5py.File(path, "r") as handle:
        ids, offsets = handle["index_image_ids"][()], handle["index_offsets"][()]
        image_of_row = handle["image_id"][()]
        assert handle.attrs["feature_store"] == "trainval_36" and handle.attrs["max_boxes"] == 36
        assert json.loads(handle.attrs["size_mismatch"]) == []
        assert (handle["num_boxes"][()] == 36).all() and (handle["mask_area"][()] > 0).all()
    assert ids.tolist() == sorted({i for i, _ in expected_keys}) and len(ids) == 11
    for k, image_id in enumerate(ids):
        assert (image_of_row[offsets[k] : offsets[k + 1]] == image_id).all()
    assert offsets[-1] == len(image_of_row)


def test_compressed_rle_counts_and_segmentation_checks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = np.asfortranarray((rng.random((13, 17)) < rng.random()).astype(np.uint8))
        counts = rle_string_counts(mask_utils.encode(mask)["counts"])
        assert sum(counts) == mask.size
        assert np.array_equal(np.repeat(np.arange(len(counts)) % 2, counts).reshape(17, 13).T, mask)
    assert segmentation_problem([[0, 0, 4, 0, 4, 4]], 8, 8) is None
    assert segmentation_problem([[0, 0, 4, 0]], 8, 8) is None  # two points: dropped
    assert "empty polygon list" in str(segmentation_problem([], 8, 8))
    assert "finite numbers" in str(segmentation_problem([[0, 0, "a", 1, 2, 3]], 8, 8))
    assert "sum to 63" in str(segmentation_problem({"counts": [60, 3], "size": [8, 8]}, 8, 8))
    assert "not the image's" in str(segmentation_problem({"counts": [64], "size": [4, 16]}, 8, 8))
    assert "negative" in str(segmentation_problem({"counts": [70, -6], "size": [8, 8]}, 8, 8))
    assert "cannot be read" in str(segmentation_problem({"counts": "~~", "size": [8, 8]}, 8, 8))
    assert "type int" in str(segmentation_problem(3, 8, 8))


# --------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------


def test_an_image_without_features_is_an_error_naming_it(tree: Path) -> None:
    def add_image(payload: dict[str, Any]) -> None:
        extra = dict(payload["images"][0], cocoid=999_999_999, split="test", imgid=12)
        payload["images"].append(extra)

    edit_json(tree / "raw/coco/dataset_coco.json", add_image)
    with pytest.raises(ValueError) as error:
        run(tree)
    message = str(error.value)
    assert "image 999999999" in message and "dataset_coco.json" in message
    assert "prepared/features/trainval_36.h5" in message
    assert temp_files(tree) == []


def test_an_unknown_category_id_is_an_error_naming_the_annotation(tree: Path) -> None:
    path = tree / "raw/coco/annotations/instances_val2014.json"
    target = instances(tree, "val2014")["annotations"][1]
    edit_json(path, lambda p: p["annotations"][1].update(category_id=12))
    with pytest.raises(ValueError) as error:
        run(tree)
    message = str(error.value)
    assert "instances_val2014.json" in message and "unknown category id 12" in message
    assert f"annotation {target['id']} of image {target['image_id']}" in message
    assert not (tree / "prepared/coco/importance.h5").exists()


@pytest.mark.parametrize(
    ("segmentation", "problem"),
    [
        ([[10.0, 10.0, 20.0, 10.0, 20.0]], "polygon 0 has 5 coordinates"),
        ({"counts": [5, 5], "size": [2, 5]}, "RLE size"),
        ({"counts": "0", "size": None}, "RLE size"),
        ({"counts": 7, "size": "x"}, "RLE size"),
    ],
)
def test_a_malformed_segmentation_is_an_error_naming_annotation_and_image(
    tree: Path, segmentation: Any, problem: str
) -> None:
    path = tree / "raw/coco/annotations/instances_train2014.json"
    target = instances(tree, "train2014")["annotations"][0]
    edit_json(path, lambda p: p["annotations"][0].update(segmentation=segmentation))
    with pytest.raises(ValueError) as error:
        run(tree)
    message = str(error.value)
    assert "instances_train2014.json" in message and "malformed segmentation" in message
    assert f"annotation {target['id']} of image {target['image_id']}" in message
    assert problem in message


def test_cli_coco_and_its_errors(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["coco", "--data-dir", str(tree), "--feature-dim", str(FEATURE_DIM)]
    args += ["--word-count-threshold", "1", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Prepared coco" in out and "1 empty caption(s) skipped" in out
    edit_json(
        tree / "raw/coco/annotations/instances_train2014.json",
        lambda p: p["annotations"][0].update(segmentation=[[1, 2, 3]]),
    )
    assert main(args) == 1
    assert "malformed segmentation" in capsys.readouterr().err
    (tree / "raw/coco/annotations/instances_val2014.json").unlink()
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "raw/coco/annotations/instances_val2014.json" in error and "cocodataset.org" in error


def test_missing_raw_files_are_listed(tree: Path) -> None:
    gone = [
        tree / "raw/coco/dataset_coco.json",
        *(tree / "raw/features/trainval_36").glob("*.tsv"),
    ]
    for path in gone:
        path.unlink()
    with pytest.raises(MissingRawFilesError) as error:
        run(tree)
    assert sorted(error.value.missing) == sorted(gone)
    assert "deepimagesent" in str(error.value) and "bottom-up-attention" in str(error.value)
    assert not (tree / "prepared").exists()


def test_the_shipped_robust_split_is_used_without_a_raw_one(tree: Path) -> None:
    (tree / "raw/coco/split_robust_coco.json").unlink()
    with pytest.raises(ValueError) as error:  # the fixture's random ids are no real COCO ids
        run(tree)
    message = str(error.value)
    assert "robust train split" in message and "package:" in message
    assert "dataset_coco.json" in message


# --------------------------------------------------------------------------------------------
# Skipping and rebuilding.
# --------------------------------------------------------------------------------------------


def test_second_run_skips_every_step(prepared: Path) -> None:
    report = run(prepared)
    assert report["built"] == [] and report["skipped"] == outputs()
    assert report["empty_captions"] == 1  # reported when skipped too


def touch(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))


def test_touching_raw_files_rebuilds_only_what_depends_on_them(prepared: Path) -> None:
    touch(prepared / "raw/coco/annotations/instances_val2014.json")
    assert run(prepared)["built"] == ["coco/importance.h5"]
    touch(prepared / "raw/coco/split_robust_coco.json")  # same bytes: nothing to do
    assert run(prepared)["built"] == []
    edit_json(
        prepared / "raw/coco/split_robust_coco.json",
        lambda p: p["val_id"].append(p["train_id"].pop()),
    )
    robust = [name for name in outputs() if name.startswith("coco/robust/")]
    assert run(prepared)["built"] == [*robust, "coco/coco_report.json"]
    touch(prepared / "raw/coco/dataset_coco.json")
    captions = [name for name in outputs() if name.count("/") == 2]
    assert run(prepared)["built"] == [*captions, "coco/coco_report.json"]


def test_options_and_a_prepared_store_without_tsvs(prepared: Path) -> None:
    report = run(prepared, duplicates="exclude")
    assert report["built"] == [f"coco/{f}/{s}.h5" for f in FAMILIES for s in SPLITS]
    with h5py.File(prepared / "prepared/coco/robust/test.h5", "r") as handle:
        assert handle.attrs["visual_word_duplicates"] == "exclude"
    for path in (prepared / "raw/features/trainval_36").glob("*.tsv"):
        path.unlink()
    report = run(prepared, duplicates="exclude")
    assert report["built"] == [] and report["skipped"][0] == "features/trainval_36.h5"
    assert run(prepared, duplicates="exclude", force=True)["built"] == outputs()[1:]


def test_robust_ids_missing_from_the_karpathy_file(prepared: Path) -> None:
    layout = DataLayout(prepared)
    edit_json(layout.robust_split_override(), lambda p: p["test_id"].append({"img_id": 123}))
    with pytest.raises(ValueError, match="image 123 of the robust test split"):
        run(prepared)


def test_an_empty_karpathy_file_is_one_line_naming_it(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tree / "raw/coco/dataset_coco.json"
    path.write_bytes(b"")
    argv = ["coco", "--data-dir", str(tree), "--feature-dim", str(FEATURE_DIM), "--no-progress"]
    code = main([*argv, "--word-count-threshold", str(FIXTURE_WORD_COUNT_THRESHOLD)])
    error = capsys.readouterr().err.strip()
    assert code == 1 and len(error.splitlines()) == 1, error
    assert str(path) in error and "empty file (0 bytes)" in error
