"""Bottom-up TSV -> HDF5 feature store -> lazy FeatureStore reader."""

from __future__ import annotations

import base64
import multiprocessing
import os
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from hint_lightning.prepare.bottom_up_tsv import (
    BottomUpImage,
    encode_bottom_up_row,
    write_bottom_up_tsv,
)
from hint_lightning.prepare.features import convert_tsv_to_hdf5, feature_store_is_current
from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images
from hint_lightning.stores.features import FeatureStore, cast_rows

DIM = 8


def _convert(tsvs: list[Path], out: Path, **kwargs: object) -> dict:
    kwargs.setdefault("feature_dim", DIM)
    return convert_tsv_to_hdf5(tsvs, out, progress=False, **kwargs)  # type: ignore[arg-type]


def _assert_store_holds(store: FeatureStore, images: list[BottomUpImage]) -> None:
    assert len(store) == len(images)
    np.testing.assert_array_equal(store.image_ids, [image[0] for image in images])
    for image_id, width, height, boxes, features in images:
        assert image_id in store
        assert store.image_size(image_id) == (width, height)
        got_features, got_boxes = store.get(image_id)
        assert got_features.dtype == np.float32 and got_boxes.dtype == np.float32
        np.testing.assert_array_equal(got_features, features)
        np.testing.assert_array_equal(got_boxes, boxes)
        assert store.num_boxes(image_id) == len(boxes)


# ---------------------------------------------------------------------- fixture writer


def test_tsv_writer_uses_the_distributed_format(tmp_path: Path) -> None:
    images = random_bottom_up_images(2, feature_dim=DIM, boxes=3, first_image_id=40)
    raw = write_bottom_up_tsv(tmp_path / "f.tsv", images).read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 3  # CRLF line ends, no header
    fields = lines[0].split(b"\t")
    assert [int(f) for f in fields[:4]] == [40, images[0][1], images[0][2], 3]
    np.testing.assert_array_equal(
        np.frombuffer(base64.b64decode(fields[4]), "<f4").reshape(3, 4), images[0][3]
    )
    np.testing.assert_array_equal(
        np.frombuffer(base64.b64decode(fields[5]), "<f4").reshape(3, DIM), images[0][4]
    )


def test_random_images_are_plausible_and_seeded() -> None:
    images = random_bottom_up_images(20, feature_dim=DIM, boxes=(10, 100), seed=3)
    counts = [len(image[3]) for image in images]
    assert min(counts) >= 10 and max(counts) <= 100 and len(set(counts)) > 1
    for _, width, height, boxes, features in images:
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (features >= 0).all() and features.shape == (len(boxes), DIM)
    again = random_bottom_up_images(20, feature_dim=DIM, boxes=(10, 100), seed=3)
    np.testing.assert_array_equal(images[5][4], again[5][4])


# ---------------------------------------------------------------------- round trips


def test_round_trip_fixed_36_boxes(tmp_path: Path) -> None:
    images = random_bottom_up_images(6, feature_dim=DIM, boxes=36, first_image_id=100)
    tsv = write_bottom_up_tsv(tmp_path / "trainval_36.tsv", images)
    stats = _convert([tsv], tmp_path / "store.h5")
    assert stats["images"] == 6 and stats["boxes"] == 6 * 36 and stats["max_boxes"] == 36
    assert stats["images_per_s"] > 0 and stats["mb_per_s"] > 0
    store = FeatureStore(tmp_path / "store.h5")
    assert store.feature_dim == DIM and store.max_boxes == 36 and not store.float16
    _assert_store_holds(store, images)


def test_progress_bar_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", random_bottom_up_images(2, feature_dim=DIM))
    stats = convert_tsv_to_hdf5([tsv], tmp_path / "f.h5", feature_dim=DIM, progress=True)
    assert stats["images"] == 2 and "bottom-up TSV" in capsys.readouterr().out


def test_round_trip_adaptive_boxes_over_several_files(tmp_path: Path) -> None:
    first = random_bottom_up_images(5, feature_dim=DIM, boxes=(10, 100), seed=1)
    second = random_bottom_up_images(4, feature_dim=DIM, boxes=(10, 100), seed=2, first_image_id=9)
    tsvs = [write_bottom_up_tsv(tmp_path / "a0.tsv", first)]
    tsvs.append(write_bottom_up_tsv(tmp_path / "a1.tsv", second))
    _convert(tsvs, tmp_path / "adaptive.h5")
    store = FeatureStore(tmp_path / "adaptive.h5")
    assert store.max_boxes == max(len(image[3]) for image in first + second)
    _assert_store_holds(store, first + second)
    with h5py.File(tmp_path / "adaptive.h5") as handle:
        np.testing.assert_array_equal(np.diff(handle["offsets"][()]), handle["num_boxes"][()])


def test_round_trip_real_feature_dim(tmp_path: Path) -> None:
    images = random_bottom_up_images(3, feature_dim=2048, boxes=36)
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", images)
    _convert([tsv], tmp_path / "f.h5", feature_dim=2048)
    _assert_store_holds(FeatureStore(tmp_path / "f.h5"), images)
    with h5py.File(tmp_path / "f.h5") as handle:
        assert handle["features"].chunks[1] == 2048  # chunked by rows
        assert handle["features"].chunks[0] <= 100


def test_float16_store_is_close(tmp_path: Path) -> None:
    images = random_bottom_up_images(4, feature_dim=DIM, boxes=(3, 7))
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", images)
    _convert([tsv], tmp_path / "f16.h5", float16=True)
    store = FeatureStore(tmp_path / "f16.h5")
    assert store.float16
    for image_id, _, _, boxes, features in images:
        got = store.features(image_id)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, features, rtol=2**-11, atol=2**-24)
        np.testing.assert_array_equal(got, features.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(store.boxes(image_id), boxes)  # boxes stay float32


def test_cast_rows_matches_numpy_over_several_blocks() -> None:
    values = np.random.default_rng(0).gamma(0.5, 3.0, size=(37, 2048)).astype(np.float32)
    values[0, :4] = [0.0, 1e-7, 65504.0, -3.0]  # zero, float16 subnormal, float16 max
    half = cast_rows(np.empty(values.shape, np.float16), values)
    np.testing.assert_array_equal(half, values.astype(np.float16))  # same rounding
    np.testing.assert_array_equal(
        cast_rows(np.empty(values.shape, np.float32), half), half.astype(np.float32)
    )
    assert cast_rows(np.empty((0, 4), np.float32), np.empty((0, 4), np.float16)).shape == (0, 4)


def test_reader_tolerates_format_variants(tmp_path: Path) -> None:
    images = random_bottom_up_images(4, feature_dim=DIM, boxes=5)
    lines = [encode_bottom_up_row(image).rstrip(b"\r\n") for image in images]
    fields = lines[1].split(b"\t")
    fields[5] = fields[5].rstrip(b"=") if fields[5].endswith(b"=") else fields[5]
    lines[1] = b"\t".join(fields)  # base64 without padding
    fields = lines[2].split(b"\t")
    lines[2] = b"\t".join([*fields[:4], b"b'" + fields[4] + b"'", fields[5]])  # str(bytes)
    header = b"\t".join([b"image_id", b"image_w", b"image_h", b"num_boxes", b"boxes", b"features"])
    text = b"\n".join([header, lines[0], b"", lines[1], lines[2], lines[3]])  # LF, blank line
    (tmp_path / "f.tsv").write_bytes(text)  # no final newline
    _convert([tmp_path / "f.tsv"], tmp_path / "f.h5")
    _assert_store_holds(FeatureStore(tmp_path / "f.h5"), images)


def test_missing_image_is_a_key_error_naming_store_and_id(tmp_path: Path) -> None:
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", random_bottom_up_images(2, feature_dim=DIM))
    _convert([tsv], tmp_path / "f.h5")
    store = FeatureStore(tmp_path / "f.h5")
    with pytest.raises(
        KeyError, match=re.escape(f"image id 77 is not in the feature store {store.path}")
    ):
        store.get(77)
    with pytest.raises(KeyError, match="77"):
        store.image_size(77)
    assert 77 not in store and "1" not in store and np.int64(1) in store


# ---------------------------------------------------------------------- laziness


_FORKED: list[FeatureStore] = []  # inherited by forked children, never pickled


def _features_in_forked_child(image_id: int) -> tuple[np.ndarray, bool]:
    store = _FORKED[0]
    inherited = store._file is not None and store._pid != os.getpid()
    return store.features(image_id), inherited


@pytest.fixture()
def small_store(tmp_path: Path) -> tuple[FeatureStore, list[BottomUpImage]]:
    images = random_bottom_up_images(3, feature_dim=DIM, boxes=(2, 6))
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", images)
    _convert([tsv], tmp_path / "f.h5")
    return FeatureStore(tmp_path / "f.h5"), images


def test_no_handle_until_first_read_and_pickling(small_store) -> None:
    store, images = small_store
    assert store._file is None  # constructing reads the index through a handle it closes
    clone = pickle.loads(pickle.dumps(store))  # before any read
    _assert_store_holds(clone, images)
    assert store._file is None and clone._file is not None
    clone_again = pickle.loads(pickle.dumps(clone))  # an open handle is dropped, not pickled
    assert clone_again._file is None
    _assert_store_holds(clone_again, images)
    clone.close()
    assert clone._file is None
    np.testing.assert_array_equal(clone.boxes(images[0][0]), images[0][3])  # reopens


def test_reopens_after_fork(small_store) -> None:
    store, images = small_store
    store.features(images[0][0])  # the parent opens its handle before forking
    parent_handle = store._file
    _FORKED[:] = [store]
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            got = pool.map(_features_in_forked_child, [image[0] for image in images])
    finally:
        _FORKED.clear()
    assert got[0][1]  # the child saw the parent's handle and reopened its own
    for image, (features, _) in zip(images, got, strict=True):
        np.testing.assert_array_equal(features, image[4])
    store._pid = -1  # as seen from a forked child: the handle belongs to another process
    store.boxes(images[1][0])
    assert store._file is not parent_handle and store._pid == os.getpid()
    assert parent_handle.id.valid  # the parent's handle was dropped, not closed
    parent_handle.close()


def test_not_a_feature_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.h5"):
        FeatureStore(tmp_path / "nothing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'text.h5'}: not a readable feature store")
    ):
        FeatureStore(tmp_path / "text.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as handle:
        handle["image_ids"] = np.arange(3)
    with pytest.raises(ValueError, match=r"empty\.h5: not a feature store: missing datasets"):
        FeatureStore(tmp_path / "empty.h5")
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", random_bottom_up_images(2, feature_dim=DIM))
    _convert([tsv], tmp_path / "old.h5")
    with h5py.File(tmp_path / "old.h5", "a") as handle:
        handle.attrs["format_version"] = 99
    with pytest.raises(ValueError, match=r"old\.h5: feature store format_version 99"):
        FeatureStore(tmp_path / "old.h5")


# ---------------------------------------------------------------------- atomic writes


def test_conversion_is_atomic(tmp_path: Path) -> None:
    good = random_bottom_up_images(3, feature_dim=DIM)
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", good)
    _convert([tsv], tmp_path / "out" / "f.h5")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f.h5"]  # no temp file left

    bad = [*good, (99, 10, 10, np.zeros((2, 4), np.float32), np.full((2, DIM), np.nan, np.float32))]
    write_bottom_up_tsv(tmp_path / "bad.tsv", bad)  # the bad row is the last one
    with pytest.raises(ValueError, match="non-finite"):
        _convert([tmp_path / "bad.tsv"], tmp_path / "fresh" / "f.h5")
    assert list((tmp_path / "fresh").iterdir()) == []
    before = (tmp_path / "out" / "f.h5").read_bytes()
    with pytest.raises(ValueError, match="non-finite"):
        _convert([tmp_path / "bad.tsv"], tmp_path / "out" / "f.h5")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f.h5"]
    assert (tmp_path / "out" / "f.h5").read_bytes() == before  # the old store is untouched


def test_no_images_and_missing_tsv(tmp_path: Path) -> None:
    (tmp_path / "empty.tsv").write_bytes(b"\r\n")
    with pytest.raises(ValueError, match="no images"):
        _convert([tmp_path / "empty.tsv"], tmp_path / "f.h5")
    with pytest.raises(FileNotFoundError, match=r"missing\.tsv"):
        _convert([tmp_path / "missing.tsv"], tmp_path / "f.h5")
    assert not (tmp_path / "f.h5").exists()


# ---------------------------------------------------------------------- bad input


def _row_fields(image_id: int = 3, boxes: int = 2, dim: int = DIM) -> list[bytes]:
    image = random_bottom_up_images(1, feature_dim=dim, boxes=boxes, first_image_id=image_id)[0]
    return encode_bottom_up_row(image).rstrip(b"\r\n").split(b"\t")


def _with(index: int, value: bytes) -> bytes:
    fields = _row_fields()
    fields[index] = value
    return b"\t".join(fields)


def _cut_features(characters: int) -> bytes:
    fields = _row_fields()
    fields[5] = fields[5][:characters]
    return b"\t".join(fields)


def _values(boxes: np.ndarray, features: np.ndarray) -> bytes:
    return encode_bottom_up_row((3, 50, 40, boxes, features)).rstrip(b"\r\n")


_NAN = np.ones((2, DIM), np.float32)
_NAN[1, 3] = np.nan
_INF_BOX = np.array([[0, 0, 5, 5], [1, 1, np.inf, 4]], np.float32)
_BOX = np.array([[0, 0, 5, 5], [1, 1, 4, 4]], np.float32)

BAD_ROWS = {
    "too few fields": (b"\t".join(_row_fields()[:4]), "3", "truncated row: 4 tab-separated fields"),
    "too many fields": (b"\t".join([*_row_fields(), b"x"]), "3", "malformed row: 7 tab-separated"),
    "features cut at a group": (
        _cut_features(12),
        "3",
        "truncated row: field 'features' decodes to 9 bytes, expected num_boxes x feature_dim",
    ),
    "features cut inside a group": (
        _cut_features(13),
        "3",
        "'features' ends inside a base64 group",
    ),
    "boxes cut": (
        _with(4, _row_fields()[4][:20]),
        "3",
        "truncated row: field 'boxes' decodes to 15",
    ),
    "image id not an integer": (_with(0, b"COCO_17"), "'COCO_17'", "malformed field 'image_id'"),
    "width not an integer": (_with(1, b"64.5"), "3", "malformed field 'image_w': '64.5' is not an"),
    "height not an integer": (
        _with(2, b""),
        "3",
        "malformed field 'image_h': '' is not an integer",
    ),
    "num_boxes not an integer": (_with(3, b"two"), "3", "malformed field 'num_boxes'"),
    "invalid base64": (
        _with(5, b"AAAA!!!!AAAA"),
        "3",
        "malformed field 'features': invalid base64",
    ),
    "wrong feature size": (
        b"\t".join(_row_fields(dim=2 * DIM)),
        "3",
        f"wrong feature size: {4 * DIM} floats = 2 x {2 * DIM}, expected num_boxes x feature_dim "
        f"= 2 x {DIM}; the file looks like feature_dim={2 * DIM}",
    ),
    "nan in features": (_values(_BOX, _NAN), "3", "non-finite values in 'features': 1 NaN, 0 inf"),
    "inf in boxes": (_values(_INF_BOX, _NAN[:1].repeat(2, 0)), "3", "'boxes': 0 NaN, 1 inf"),
    "no boxes": (
        b"\t".join([b"3", b"50", b"40", b"0", b"", b""]),
        "3",
        "num_boxes=0 outside [min_boxes, max_boxes] = [1, 5]",
    ),
    "too many boxes": (
        b"\t".join(_row_fields(boxes=6)),
        "3",
        "num_boxes=6 outside [min_boxes, max_boxes] = [1, 5]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_error_names_file_line_and_image(tmp_path: Path, case: str) -> None:
    row, shown_id, reason = BAD_ROWS[case]
    good = [
        encode_bottom_up_row(image)
        for image in random_bottom_up_images(2, feature_dim=DIM, boxes=2)
    ]
    tsv = tmp_path / "bad.tsv"
    tsv.write_bytes(b"".join(good) + row + b"\r\n")
    expected = f"{tsv}, line 3, image id {shown_id}: "
    with pytest.raises(ValueError, match=re.escape(expected) + ".*" + re.escape(reason)):
        _convert([tsv], tmp_path / "f.h5", max_boxes=5)
    assert not (tmp_path / "f.h5").exists()


def test_duplicate_image_id_across_files(tmp_path: Path) -> None:
    first = write_bottom_up_tsv(tmp_path / "a.tsv", random_bottom_up_images(3, feature_dim=DIM))
    second_images = random_bottom_up_images(2, feature_dim=DIM, first_image_id=3, seed=1)
    second = write_bottom_up_tsv(tmp_path / "b.tsv", second_images)
    expected = f"{second}, line 1, image id 3: duplicate image id (first seen in {first}, line 3)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        _convert([first, second], tmp_path / "f.h5")


def test_float16_overflow_is_an_error(tmp_path: Path) -> None:
    features = np.full((2, DIM), 1e5, np.float32)
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", [(5, 20, 20, _BOX, features)])
    with pytest.raises(ValueError, match=r"line 1, image id 5: features up to magnitude 100000"):
        _convert([tsv], tmp_path / "f.h5", float16=True)
    _convert([tsv], tmp_path / "f.h5")  # float32 stores it


def test_bad_arguments(tmp_path: Path) -> None:
    tsv = write_bottom_up_tsv(tmp_path / "f.tsv", random_bottom_up_images(1, feature_dim=DIM))
    with pytest.raises(ValueError, match="at least one TSV"):
        _convert([], tmp_path / "f.h5")
    with pytest.raises(ValueError, match="min_boxes <= max_boxes"):
        _convert([tsv], tmp_path / "f.h5", min_boxes=10, max_boxes=5)


# ---------------------------------------------------------------------- up-to-date check


def test_feature_store_is_current(tmp_path: Path) -> None:
    tsvs = [
        write_bottom_up_tsv(tmp_path / "a.tsv", random_bottom_up_images(2, feature_dim=DIM)),
        write_bottom_up_tsv(
            tmp_path / "b.tsv", random_bottom_up_images(2, feature_dim=DIM, first_image_id=5)
        ),
    ]
    out = tmp_path / "f.h5"
    assert not feature_store_is_current(out, tsvs, False)  # not built yet
    _convert(tsvs, out)
    assert feature_store_is_current(out, tsvs, False)
    assert feature_store_is_current(str(out), [str(p) for p in reversed(tsvs)], False)
    assert not feature_store_is_current(out, tsvs, True)  # float16 differs
    assert not feature_store_is_current(out, tsvs[:1], False)  # other sources
    assert not feature_store_is_current(out, [*tsvs, tmp_path / "c.tsv"], False)  # missing TSV
    stat = tsvs[1].stat()
    os.utime(tsvs[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not feature_store_is_current(out, tsvs, False)  # a TSV changed
    _convert(tsvs, out, float16=True)
    assert feature_store_is_current(out, tsvs, True)
    out.write_text("garbage")
    assert not feature_store_is_current(out, tsvs, True)
