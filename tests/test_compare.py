"""``hint_lightning.compare``: runs found, grouped by experiment and summarized like Table 1."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from hint_lightning import compare
from hint_lightning.modules.vqa_module import CHECKPOINT_KEY


def make_run(
    folder: Path,
    metrics: dict[str, Any],
    finished: float,
    hydra_task: str | None = None,
    ckpt_task: str | None = None,
) -> Path:
    """A run folder as ``train`` leaves it: metrics.json, maybe .hydra and a checkpoint."""
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    os.utime(folder / "metrics.json", (finished, finished))
    if hydra_task is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "config.yaml").write_text(f"task_name: {hydra_task}\nseed: 0\n")
    if ckpt_task is not None:
        (folder / "checkpoints").mkdir()
        info = {"answers": ["yes"], "tokens": ["<pad>"], "feature_dim": 1, "max_proposals": 1}
        payload = {"config": {"task_name": ckpt_task}, "data_info": info}
        torch.save({CHECKPOINT_KEY: payload}, folder / "checkpoints" / "last.ckpt")
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two CLI runs of one experiment, a demo-style run and a run known by its checkpoint."""
    logs = tmp_path / "logs"
    make_run(
        logs / "hint" / "runs" / "t1",
        {"test/acc": 50.0, "test/acc_yes_no": 60.0, "test/acc_other": 10.0, "test/rho": 0.1,
         "output_dir": "somewhere", "ckpt/best": ""},
        finished=2000,
        hydra_task="easyvqa_cp_hint",
    )  # fmt: skip
    make_run(
        logs / "hint" / "runs" / "t2",
        {"test/acc": 70.0, "test/acc_yes_no": 80.0, "test/rho": 0.3},
        finished=2100,
        hydra_task="easyvqa_cp_hint",
    )
    make_run(
        logs / "demo" / "seed0" / "easyvqa_cp_updn",
        {"test/acc": 40.0, "test/rho_attention": 0.8},
        finished=1000,
    )
    make_run(
        logs / "other" / "run",
        {"test/acc": 30.0},
        finished=3000,
        ckpt_task="from_checkpoint",
    )
    return logs


def test_runs_are_found_recursively_and_grouped_by_task_name(runs: Path) -> None:
    found = compare.find_run_dirs([runs])
    assert len(found) == 4
    assert compare.find_run_dirs([runs / "hint", runs / "hint" / "runs" / "t1"]) == [
        runs / "hint" / "runs" / "t1",
        runs / "hint" / "runs" / "t2",
    ]
    names = {path.name: compare.experiment_name(path) for path in found}
    assert names == {
        "t1": "easyvqa_cp_hint",  # .hydra/config.yaml
        "t2": "easyvqa_cp_hint",
        "easyvqa_cp_updn": "easyvqa_cp_updn",  # the folder name (demo layout)
        "run": "from_checkpoint",  # the config stored in checkpoints/last.ckpt
    }


def test_mean_and_sample_std_per_experiment_with_missing_metrics(runs: Path) -> None:
    rows = compare.compare_runs([runs])
    # Rows in the order in which each experiment's first run finished.
    assert [row["experiment"] for row in rows] == [
        "easyvqa_cp_updn",
        "easyvqa_cp_hint",
        "from_checkpoint",
    ]
    hint = rows[1]
    assert hint["runs"] == 2
    # mean(50, 70) = 60; sample std = sqrt((10^2 + 10^2) / 1) = 14.1421
    assert hint["test/acc"] == {"mean": 60.0, "std": pytest.approx(14.1421, abs=1e-4), "n": 2}
    assert hint["test/acc_yes_no"]["mean"] == 70.0
    assert hint["test/rho"]["mean"] == pytest.approx(0.2)
    assert hint["test/rho"]["std"] == pytest.approx(0.141421, abs=1e-6)
    # Only one of the two runs has it: summarized over that one.
    assert hint["test/acc_other"] == {"mean": 10.0, "std": 0.0, "n": 1}
    # No run has it: no number.
    assert hint["test/acc_number"] == {"mean": None, "std": None, "n": 0}

    table = compare.markdown_table(rows)
    lines = table.splitlines()
    assert lines[0] == (
        "| experiment | Overall | Yes/No | Number | Other | rho (net. imp.) | rho (attention) "
        "| runs |"
    )
    assert (
        "| easyvqa_cp_hint | 60.00 ± 14.14 | 70.00 ± 14.14 | — | 10.00 ± 0.00 | 0.200 ± 0.141 "
        "| — | 2 |"
    ) in lines
    assert "| easyvqa_cp_updn | 40.00 ± 0.00 | — | — | — | — | 0.800 ± 0.000 | 1 |" in lines


def test_an_evaluate_run_is_grouped_under_its_checkpoint(runs: Path, tmp_path: Path) -> None:
    ckpt = runs / "other" / "run" / "checkpoints" / "last.ckpt"
    evaluated = make_run(
        tmp_path / "eval" / "runs" / "t", {"ckpt_path": str(ckpt), "test/acc": 31.0}, 4000, "eval"
    )
    assert compare.experiment_name(evaluated) == "from_checkpoint (eval)"


def test_val_stage_reads_val_metrics(tmp_path: Path) -> None:
    make_run(tmp_path / "a", {"val/acc": 90.0, "test/acc": 50.0}, 1)
    (row,) = compare.compare_runs([tmp_path], stage="val")
    assert row["val/acc"]["mean"] == 90.0 and "test/acc" not in row


def test_command_writes_markdown_and_json(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = compare.main([str(runs / "hint"), str(runs / "demo"), "--output", str(out)])
    assert len(rows) == 2
    saved = json.loads((out / "compare_results.json").read_text())  # strict JSON: no NaN
    assert saved["stage"] == "test"
    assert [r["experiment"] for r in saved["rows"]] == ["easyvqa_cp_updn", "easyvqa_cp_hint"]
    assert saved["rows"][1]["test/acc_number"]["mean"] is None
    markdown = (out / "compare_results.md").read_text()
    assert "60.00 ± 14.14" in markdown and "Mean ± std over the runs" in markdown
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_command_refuses_a_folder_without_runs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        compare.find_run_dirs([tmp_path / "missing"])
