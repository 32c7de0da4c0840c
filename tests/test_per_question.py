"""per_question.jsonl: written atomically, read back with DDP shards, bad files named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hint_lightning.metrics.per_question import (
    PerQuestionWriter,
    per_question_path,
    read_per_question,
)


def test_round_trip_with_constants_nan_as_null_and_strings(tmp_path: Path) -> None:
    path = per_question_path(tmp_path)
    with PerQuestionWriter(path, constants={"seed": 2, "run": "hint"}) as writer:
        writer.add(
            torch.tensor([5, 6]),
            answer=["yes", "2"],
            correct=torch.tensor([True, False]),
            score=torch.tensor([1.0, 0.3]),
            rho=torch.tensor([float("nan"), 0.25]),
        )
        writer.add([7], answer=["no"], correct=[True], score=[0.0], rho=[float("inf")])
    assert writer.rows == 3
    lines = path.read_text().splitlines()
    assert json.loads(lines[1]) == {
        "question_id": 6, "seed": 2, "run": "hint", "answer": "2", "correct": False,
        "score": pytest.approx(0.3), "rho": 0.25,
    }  # fmt: skip
    records = read_per_question(tmp_path)
    assert [r["question_id"] for r in records] == [5, 6, 7]
    assert records[0]["rho"] is None and records[2]["rho"] is None  # NaN and inf: undefined


def test_a_failed_evaluation_leaves_no_file(tmp_path: Path) -> None:
    path = per_question_path(tmp_path)
    path.write_text('{"question_id": 1}\n')  # an earlier complete file stays as it was
    with pytest.raises(RuntimeError, match="crash"), PerQuestionWriter(path) as writer:
        writer.add([1, 2], correct=[True, True])
        raise RuntimeError("crash")
    assert path.read_text() == '{"question_id": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_question.jsonl"]


def test_ddp_shards_are_read_together_and_a_question_twice_is_refused(tmp_path: Path) -> None:
    for rank, ids in ((0, [1, 3]), (1, [2, 4])):
        with PerQuestionWriter(per_question_path(tmp_path, rank)) as writer:
            writer.add(ids, correct=[True, False])
    assert sorted(r["question_id"] for r in read_per_question(tmp_path)) == [1, 2, 3, 4]
    with PerQuestionWriter(per_question_path(tmp_path, 2)) as writer:
        writer.add([3], correct=[True])
    with pytest.raises(ValueError, match=r"rank2.jsonl:1: question 3 already in .*rank0"):
        read_per_question(tmp_path)


def test_bad_columns_and_files_are_one_clear_line(tmp_path: Path) -> None:
    with PerQuestionWriter(tmp_path / "a.jsonl", constants={"seed": 0}) as writer:
        with pytest.raises(ValueError, match="'score' has 1 values for 2 questions"):
            writer.add([1, 2], score=[0.5])
        with pytest.raises(ValueError, match="clash"):
            writer.add([1], seed=[3])
    bad = tmp_path / "bad" / "per_question.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"question_id": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"per_question.jsonl:2: not JSON"):
        read_per_question(bad.parent)
    bad.write_text('{"answer": "yes"}\n')
    with pytest.raises(ValueError, match="expected an object with a question_id"):
        read_per_question(bad)
    with pytest.raises(FileNotFoundError, match=r"no per_question\.jsonl"):
        read_per_question(tmp_path / "empty")


def test_a_named_test_split_has_its_own_file_and_intervals_read_it(tmp_path: Path) -> None:
    from hint_lightning.stats.runs import RunRecord, question_table

    with PerQuestionWriter(per_question_path(tmp_path), constants={"split": "test"}) as writer:
        writer.add([1, 2], acc=[100.0, 0.0])
    flipped = per_question_path(tmp_path, split="test_flipped")
    assert flipped.name == "per_question.test_flipped.jsonl"
    with PerQuestionWriter(flipped, constants={"split": "test_flipped"}) as writer:
        writer.add([1, 2, 3], acc=[0.0, 0.0, 100.0])
    assert [r["question_id"] for r in read_per_question(tmp_path)] == [1, 2]  # the main file
    assert len(read_per_question(tmp_path, "test_flipped")) == 3
    with pytest.raises(FileNotFoundError, match=r"no per_question\.test_clean\.jsonl"):
        read_per_question(tmp_path, "test_clean")
    run = RunRecord(tmp_path, "row", {}, 0.0, 0, {})
    table = question_table([run], ["0"], "test_flipped")
    assert table is not None
    assert question_table([run], ["0"], "test") is not None
    assert question_table([run], ["0"], "test_clean") is None  # no file: seeds only
