"""``python -m hint_lightning.prepare``: the fixture tree, prepare_vqa, skipping and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from testkit import FIXTURE_FEATURE_DIM, temp_files

from hint_lightning.prepare import vqa_hat, vqa_questions, vqa_raw
from hint_lightning.prepare.cli import main
from hint_lightning.prepare.fixture.tree import FIXTURE_MIN_ANSWER_COUNT, write_fixture_tree
from hint_lightning.prepare.layout import (
    SPLITS,
    DataLayout,
    MissingPreparedFilesError,
    MissingRawFilesError,
)
from hint_lightning.prepare.pipeline import (
    prepare_features,
    prepare_hat,
    prepare_questions,
    prepare_vqa,
)
from hint_lightning.stores.features import FeatureStore
from hint_lightning.stores.prepare_state import BuildLedger
from hint_lightning.text.answers import ANSWER_TYPES

MIN_COUNT = FIXTURE_MIN_ANSWER_COUNT
FEATURE_DIM = FIXTURE_FEATURE_DIM


def outputs(dataset: str) -> list[str]:
    """Every output name of a full run, in run order."""
    names = ["features/trainval_36.h5"] + [
        f"vqa/{dataset}/{name}" for name in ("answers.json", "tokens.json", "glove.npy")
    ]
    names += [f"vqa/{dataset}/{split}.h5" for split in SPLITS[dataset]]
    names += [f"vqa/{dataset}/{split}_importance.h5" for split in SPLITS[dataset]]
    return [*names, f"vqa/{dataset}/hat_coverage.json"]


def run(dataset: str, data_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """prepare_vqa on the fixture tree (fixture threshold and D, no progress bars)."""
    kwargs = {"min_answer_count": MIN_COUNT, "feature_dim": FEATURE_DIM, "progress": False} | kwargs
    return prepare_vqa(dataset, data_dir, **kwargs)


def touch(path: Path, seconds: float = 10.0) -> None:
    """Moves a file's mtime forward (same content)."""
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + seconds))


@pytest.fixture
def prepared(tree: Path) -> Path:
    """A fixture tree prepared for vqacp_v2."""
    run("vqacp_v2", tree)
    return tree


def raw_questions(tree: Path, dataset: str, split: str) -> list[dict]:
    """The raw question items of a split."""
    raw = DataLayout(tree).questions(dataset, split)
    return vqa_raw.load_questions(raw.path, raw.layout or "vqacp")


def hat_ids(tree: Path) -> set[int]:
    """Question ids with maps in the fixture's VQA-HAT zips."""
    ids = set()
    for part in ("train", "val"):
        with zipfile.ZipFile(tree / f"raw/vqahat/vqahat_{part}.zip") as archive:
            ids |= {int(Path(n).name.split("_")[0]) for n in archive.namelist()}
    return ids


# --------------------------------------------------------------------------------------------
# The fixture tree.
# --------------------------------------------------------------------------------------------


def test_fixture_tree_is_the_raw_layout_in_the_real_formats(tree: Path) -> None:
    layout = DataLayout(tree)
    for dataset in ("vqacp_v2", "vqa_v2"):
        assert all(f.exists() for f in layout.question_files(dataset))
    assert all(f.path.is_file() for f in layout.hat_sources())
    assert layout.glove().is_file() and (tree / "README.txt").is_file()
    assert "--min-answer-count 2" in (tree / "README.txt").read_text()
    vqacp = [json.loads(f.path.read_text()) for f in layout.question_files("vqacp_v2")]
    assert all(isinstance(items, list) and "coco_split" in items[0] for items in vqacp)
    vqa_v2 = json.loads(layout.questions("vqa_v2", "val").path.read_text())
    assert vqa_v2["data_subtype"] == "val2014" and isinstance(vqa_v2["questions"], list)
    cp_ids = {
        q["question_id"] for s in ("train", "test") for q in raw_questions(tree, "vqacp_v2", s)
    }
    v2_ids = {q["question_id"] for s in ("train", "val") for q in raw_questions(tree, "vqa_v2", s)}
    assert cp_ids == v2_ids and len(cp_ids) == 48  # VQA-CP re-splits VQA v2 train + val
    with zipfile.ZipFile(tree / "raw/vqahat/vqahat_val.zip") as archive:
        names = [Path(n).name for n in archive.namelist()]
    assert all(re.fullmatch(r"\d+_[123]\.png", n) for n in names) and len(names) % 3 == 0
    with pytest.raises(FileExistsError, match="overwrite"):
        write_fixture_tree(tree, feature_dim=FEATURE_DIM)


def test_fixture_answers_give_several_answers_of_each_type(prepared: Path) -> None:
    answers = json.loads((prepared / "prepared/vqa/vqacp_v2/answers.json").read_text())
    types: dict[str, set[str]] = {t: set() for t in ANSWER_TYPES}
    for split in ("train", "test"):
        path = DataLayout(prepared).annotations("vqacp_v2", split).path
        for item in json.loads(path.read_text()):
            if item["multiple_choice_answer"] in answers:
                types[item["answer_type"]].add(item["multiple_choice_answer"])
    assert types["yes/no"] == {"yes", "no"}
    assert len(types["number"]) >= 3 and len(types["other"]) >= 3


# --------------------------------------------------------------------------------------------
# prepare_vqa: the contract's files, with consistent counts.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["vqacp_v2", "vqa_v2"])
def test_prepare_vqa_writes_every_file_with_consistent_counts(tree: Path, dataset: str) -> None:
    report = run(dataset, tree)
    assert report["built"] == outputs(dataset) and report["skipped"] == report["absent"] == []
    layout = DataLayout(tree)
    store = FeatureStore(layout.feature_store("trainval_36"))
    assert len(store) == 12 and store.feature_dim == FEATURE_DIM and store.max_boxes == 36
    tokens = json.loads(layout.tokens(dataset).read_text())
    assert tokens[:2] == ["<pad>", "<unk>"]
    assert np.load(layout.glove_matrix(dataset)).shape == (len(tokens), 300)
    answers = json.loads(layout.answers(dataset).read_text())
    assert report["outputs"][f"vqa/{dataset}/answers.json"]["counts"] == {"answers": len(answers)}
    with_maps = hat_ids(tree)
    matched, total = 0, 0
    for split in SPLITS[dataset]:
        expected = [q["question_id"] for q in raw_questions(tree, dataset, split)]
        with h5py.File(layout.split_store(dataset, split), "r") as handle:
            assert handle["question_id"][()].tolist() == expected
            assert handle.attrs["feature_store"] == "trainval_36"
            assert int(handle["target_ids"][()].max()) < len(answers)
            assert np.isin(handle["image_id"][()], store.image_ids).all()
        with h5py.File(layout.importance_store(dataset, split), "r") as handle:
            assert handle["question_id"][()].tolist() == expected
            assert handle["human"].shape == (len(expected), store.max_boxes)
            has = handle["has_importance"][()]
        assert has.tolist() == [qid in with_maps for qid in expected]
        counts = report["outputs"][f"vqa/{dataset}/{split}_importance.h5"]["counts"]
        assert counts == {"questions": len(expected), "with_importance": int(has.sum())}
        matched, total = matched + int(has.sum()), total + len(expected)
    coverage = json.loads(layout.coverage(dataset).read_text())
    assert total == 48 and coverage["matched_any"] == matched == len(with_maps) - 2
    assert temp_files(tree) == []


def test_both_datasets_share_the_feature_store_and_the_answer_vocabulary(prepared: Path) -> None:
    report = run("vqa_v2", prepared)
    assert report["skipped"] == ["features/trainval_36.h5"]
    vqa = prepared / "prepared/vqa"
    assert (vqa / "vqa_v2/answers.json").read_text() == (vqa / "vqacp_v2/answers.json").read_text()
    assert "VQA v2 train2014 + val2014" in report["answer_source"]


def test_coverage_report_lists_the_unmatched_maps(prepared: Path) -> None:
    coverage = json.loads((prepared / "prepared/vqa/vqacp_v2/hat_coverage.json").read_text())
    split_ids = {
        q["question_id"] for s in ("train", "test") for q in raw_questions(prepared, "vqacp_v2", s)
    }
    unmatched = sorted(hat_ids(prepared) - split_ids)
    assert len(unmatched) == 2 and coverage["unmatched"]["question_ids"] == unmatched
    report = run("vqacp_v2", prepared)  # the summary is reported when skipped too
    assert "2 question(s) with maps match no split" in report["coverage"]


def test_vqacp_without_vqa_v2_annotations_uses_the_vqacp_union(prepared: Path) -> None:
    before = (prepared / "prepared/vqa/vqacp_v2/answers.json").read_text()
    for path in (prepared / "raw/vqa_v2").glob("v2_mscoco_*_annotations.json"):
        path.unlink()
    report = run("vqacp_v2", prepared)
    assert "VQA-CP v2 train + test annotations" in report["answer_source"]
    assert report["built"] == ["vqa/vqacp_v2/answers.json"]  # same content: nothing cascades
    assert (prepared / "prepared/vqa/vqacp_v2/answers.json").read_text() == before


def test_without_glove_embeddings_start_random(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "raw/glove/glove.6B.300d.txt").unlink()
    report = run("vqacp_v2", tree)
    assert report["absent"] == ["vqa/vqacp_v2/glove.npy"]
    assert not (tree / "prepared/vqa/vqacp_v2/glove.npy").exists()
    assert "question embeddings start random" in capsys.readouterr().out


def test_glove_npy_is_kept_when_the_glove_text_goes_away(prepared: Path) -> None:
    (prepared / "raw/glove/glove.6B.300d.txt").unlink()
    report = run("vqacp_v2", prepared)
    assert report["built"] == [] and "vqa/vqacp_v2/glove.npy" in report["skipped"]


# --------------------------------------------------------------------------------------------
# Skipping, rebuilding, interruptions.
# --------------------------------------------------------------------------------------------


def test_second_run_skips_every_step(prepared: Path) -> None:
    report = run("vqacp_v2", prepared)
    assert report["built"] == [] and report["skipped"] == outputs("vqacp_v2")


@pytest.mark.parametrize(
    ("raw_file", "rebuilt"),
    [
        ("raw/glove/glove.6B.300d.txt", ["glove.npy"]),
        ("raw/vqacp_v2/vqacp_v2_train_questions.json", ["tokens.json", "train.h5"]),
        ("raw/vqacp_v2/vqacp_v2_test_annotations.json", ["test.h5"]),
        (
            "raw/vqahat/vqahat_val.zip",
            ["train_importance.h5", "test_importance.h5", "hat_coverage.json"],
        ),
        ("raw/vqa_v2/v2_mscoco_val2014_annotations.json", ["answers.json"]),
    ],
)
def test_touching_a_raw_file_rebuilds_only_the_affected_steps(
    prepared: Path, raw_file: str, rebuilt: list[str]
) -> None:
    touch(prepared / raw_file)
    report = run("vqacp_v2", prepared)
    assert report["built"] == [f"vqa/vqacp_v2/{name}" for name in rebuilt]
    assert len(report["skipped"]) == len(outputs("vqacp_v2")) - len(rebuilt)


def test_feature_store_changes_rebuild_what_depends_on_its_content(prepared: Path) -> None:
    touch(next((prepared / "raw/features/trainval_36").glob("*.tsv")))
    report = run("vqacp_v2", prepared)  # same boxes and image ids: nothing else rebuilt
    assert report["built"] == ["features/trainval_36.h5"]
    report = run("vqacp_v2", prepared, float16=True)
    assert report["built"] == ["features/trainval_36.h5"]
    assert FeatureStore(prepared / "prepared/features/trainval_36.h5").float16


def test_changed_options_and_force_rebuild(prepared: Path) -> None:
    report = run("vqacp_v2", prepared, min_answer_count=3)
    assert report["built"] == [f"vqa/vqacp_v2/{n}" for n in ("answers.json", "train.h5", "test.h5")]
    report = run("vqacp_v2", prepared, min_answer_count=3, force=True)
    assert report["built"] == outputs("vqacp_v2") and report["skipped"] == []


def test_an_interrupted_step_leaves_nothing_trusted(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:  # inside the temp file of the importance store
        patch.setattr(vqa_hat, "_fill_block", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run("vqacp_v2", tree)
    assert not (tree / "prepared/vqa/vqacp_v2/train_importance.h5").exists()
    assert temp_files(tree) == []
    report = run("vqacp_v2", tree)
    assert report["built"] == outputs("vqacp_v2")[-3:]

    with monkeypatch.context() as patch:  # a forced rebuild of train.h5 dies half-way
        patch.setattr(vqa_questions, "_answer_rows", crash)
        with pytest.raises(RuntimeError):
            run("vqacp_v2", tree, force=True)
    assert (tree / "prepared/vqa/vqacp_v2/train.h5").is_file()  # the old file, not trusted
    assert run("vqacp_v2", tree)["built"] == ["vqa/vqacp_v2/train.h5"]

    real_record = BuildLedger.record

    def record_crash(self: BuildLedger, output: Path, stamp: Any) -> None:
        if Path(output).name == "tokens.json":
            raise RuntimeError("killed after the rename")
        real_record(self, output, stamp)

    with monkeypatch.context() as patch:
        patch.setattr(BuildLedger, "record", record_crash)
        with pytest.raises(RuntimeError):
            run("vqacp_v2", tree, force=True)
    assert run("vqacp_v2", tree)["built"] == ["vqa/vqacp_v2/tokens.json"]


def test_adaptive_features(tmp_path: Path) -> None:
    write_fixture_tree(tmp_path, adaptive=True, feature_dim=FEATURE_DIM, num_images=6)
    report = run("vqa_v2", tmp_path, features="trainval_adaptive")
    assert report["built"][0] == "features/trainval_adaptive.h5"
    store = FeatureStore(tmp_path / "prepared/features/trainval_adaptive.h5")
    assert len(store) == 6 and all(10 <= store.num_boxes(i) <= 100 for i in store.image_ids)
    with h5py.File(tmp_path / "prepared/vqa/vqa_v2/val_importance.h5", "r") as handle:
        assert handle["human"].shape[1] == store.max_boxes


# --------------------------------------------------------------------------------------------
# Standalone commands and errors.
# --------------------------------------------------------------------------------------------


def test_standalone_commands_build_the_same_files(tree: Path) -> None:
    with pytest.raises(MissingPreparedFilesError, match="prepare features"):
        prepare_questions("vqacp_v2", tree, progress=False)
    with pytest.raises(MissingPreparedFilesError, match="prepare questions"):
        prepare_hat("vqacp_v2", tree, progress=False)
    built = prepare_features(tree, feature_dim=FEATURE_DIM, progress=False)["built"]
    built += prepare_questions("vqacp_v2", tree, min_answer_count=MIN_COUNT, progress=False)[
        "built"
    ]
    built += prepare_hat("vqacp_v2", tree, progress=False)["built"]
    assert built == outputs("vqacp_v2")
    assert run("vqacp_v2", tree)["built"] == []


def test_missing_raw_files_are_listed_with_where_to_get_them(tree: Path) -> None:
    gone = [
        tree / "raw/vqacp_v2/vqacp_v2_test_annotations.json",
        tree / "raw/vqahat/vqahat_val.zip",
        *(tree / "raw/features/trainval_36").glob("*.tsv"),
    ]
    for path in gone:
        path.unlink()
    with pytest.raises(MissingRawFilesError) as error:
        run("vqacp_v2", tree)
    assert sorted(error.value.missing) == sorted(gone)
    message = str(error.value)
    for text in (
        "raw/vqacp_v2/vqacp_v2_test_annotations.json",
        "raw/vqahat/vqahat_val.zip (or the folder raw/vqahat/vqahat_val/)",
        "raw/features/trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv",
        "aagrawal307/vqa-cp",
        "vqa-hat",
        "peteanderson80/bottom-up-attention",
    ):
        assert text in message
    assert "vqacp_v2_train_questions.json" not in message
    assert not (tree / "prepared").exists()  # checked before any work


def test_cli_missing_files_and_help(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "raw/vqa_v2/v2_mscoco_train2014_annotations.json").unlink()
    assert main(["vqa_v2", "--data-dir", str(tree), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "v2_mscoco_train2014_annotations.json" in error and "visualqa.org" in error
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for where in ("visualqa.org", "vqa-cp", "vqa-hat", "bottom-up-attention", "projects/glove"):
        assert where in text


@pytest.mark.slow
def test_cli_fixture_then_prepare(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hint_lightning.prepare", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    fixture = cli("fixture", "--data-dir", str(tmp_path))
    assert fixture.returncode == 0, fixture.stderr
    assert "--min-answer-count 2" in fixture.stdout
    first = cli("vqacp_v2", "--data-dir", str(tmp_path), "--min-answer-count", "2", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "Prepared vqacp_v2" in first.stdout
    assert all(name in first.stdout for name in outputs("vqacp_v2"))
    assert "2 question(s) with maps match no split" in " ".join(first.stdout.split())


def test_a_null_question_is_one_line_naming_the_file_and_the_question(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tree / "raw/vqacp_v2/vqacp_v2_train_questions.json"
    items = json.loads(path.read_text())
    items[1]["question"] = None
    path.write_text(json.dumps(items))
    argv = ["vqacp_v2", "--data-dir", str(tree), "--min-answer-count", str(MIN_COUNT)]
    code = main([*argv, "--feature-dim", str(FEATURE_DIM), "--no-progress"])
    error = capsys.readouterr().err.strip()
    assert code == 1 and len(error.splitlines()) == 1, error
    assert str(path) in error and f"question_id {items[1]['question_id']}" in error
    assert "'question' is null, expected a string" in error
