"""``hint_lightning.compare``: runs found, grouped by experiment and summarized like Table 1."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from hint_lightning import compare
from hint_lightning.metrics.per_question import PerQuestionWriter
from hint_lightning.modules.vqa_module import CHECKPOINT_KEY


def make_run(
    folder: Path,
    metrics: dict[str, Any],
    finished: float,
    hydra_task: str | None = None,
    ckpt_task: str | None = None,
    seed: int = 0,
    overrides: list[str] | None = None,
    per_question: list[dict[str, Any]] | None = None,
) -> Path:
    """A run folder as ``train`` leaves it: metrics.json, maybe .hydra, a checkpoint and
    per-question values."""
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    os.utime(folder / "metrics.json", (finished, finished))
    if hydra_task is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "config.yaml").write_text(f"task_name: {hydra_task}\nseed: {seed}\n")
        lines = "".join(f"- {item}\n" for item in [f"seed={seed}", *(overrides or [])])
        (folder / ".hydra" / "overrides.yaml").write_text(lines)
    if per_question is not None:
        with PerQuestionWriter(folder / "per_question.jsonl", constants={"seed": seed}) as writer:
            for record in per_question:
                writer.add(
                    [record["question_id"]],
                    **{k: [v] for k, v in record.items() if k != "question_id"},
                )
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
    # mean(50, 70) = 60; sample std = sqrt((10^2 + 10^2) / 1) = 14.1421. Both runs say seed 0:
    # two samples "0#1", "0#2"; two seed-level values bootstrap to [50, 70].
    assert hint["test/acc"] == {
        "mean": 60.0, "std": pytest.approx(14.1421, abs=1e-4), "n": 2,
        "low": 50.0, "high": 70.0, "interval_from": "seeds",
    }  # fmt: skip
    assert hint["seeds"] == ["0#1", "0#2"]
    assert hint["test/acc_yes_no"]["mean"] == 70.0
    assert hint["test/rho"]["mean"] == pytest.approx(0.2)
    assert hint["test/rho"]["std"] == pytest.approx(0.141421, abs=1e-6)
    # Only one of the two runs has it: summarized over that one.
    assert hint["test/acc_other"]["mean"] == 10.0 and hint["test/acc_other"]["n"] == 1
    assert hint["test/acc_other"]["low"] is None  # one value: no interval
    # No run has it: no number.
    assert hint["test/acc_number"]["mean"] is None and hint["test/acc_number"]["n"] == 0

    table = compare.markdown_table(rows)
    lines = table.splitlines()
    assert lines[0] == (
        "| experiment | Overall | Yes/No | Number | Other | rho (net. imp.) | rho (attention) "
        "| runs |"
    )
    assert (
        "| easyvqa_cp_hint | 60.00 [50.00, 70.00] | 70.00 [60.00, 80.00] | — | 10.00 "
        "| 0.200 [0.100, 0.300] | — | 2 |"
    ) in lines
    assert "| easyvqa_cp_updn | 40.00 | — | — | — | — | 0.800 | 1 |" in lines


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
    assert "60.00 [50.00, 70.00]" in markdown and "95% bootstrap interval" in markdown
    assert (
        (out / "compare_results.csv")
        .read_text()
        .splitlines()[0]
        .startswith("experiment,metric,mean,low,high")
    )
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_command_refuses_a_folder_without_runs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        compare.find_run_dirs([tmp_path / "missing"])


def test_a_sweep_is_one_row_per_override_value_and_seeds_stay_together(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for job, (weight, seed, acc) in enumerate(
        [("1", 0, 50.0), ("3", 0, 60.0), ("1", 1, 52.0), ("3", 1, 64.0)]
    ):
        make_run(
            logs / "multiruns" / str(job), {"test/acc": acc}, 100 + job, hydra_task="hint",
            seed=seed, overrides=[f"objective.weight={weight}", f"init_from=/base/seed{seed}.ckpt"],
        )  # fmt: skip
    rows = compare.compare_runs([logs])
    assert [r["experiment"] for r in rows] == [
        "hint [objective.weight=1]",
        "hint [objective.weight=3]",
    ]
    assert rows[0]["seeds"] == ["0", "1"] and rows[0]["test/acc"]["mean"] == 51.0
    # --ignore-override merges them back into one row.
    merged = compare.compare_runs([logs], ignore=(*compare.IGNORED_OVERRIDES, "objective.*"))
    assert [r["runs"] for r in merged] == [4]


def test_per_question_intervals_and_paired_differences_by_seed_and_question(tmp_path: Path) -> None:
    """The treated row scores the control's per-question values plus 10 on every question and
    seed: the paired difference is exactly 10 with a zero-width interval, while each row's own
    interval is wide (questions differ a lot)."""
    logs = tmp_path / "logs"
    for seed in (0, 1, 2):
        base = [float((7 * q + seed) % 5) * 20 for q in range(30)]
        for offset, name in ((0.0, "control"), (10.0, "treated")):
            scores = [b + offset for b in base]
            records = [{"question_id": q, "acc": s, "answer": "yes"} for q, s in enumerate(scores)]
            make_run(
                logs / name / str(seed), {"test/acc": sum(scores) / 30}, 10 * seed + offset,
                hydra_task=name, seed=seed, per_question=records,
            )  # fmt: skip
    rows = compare.compare_runs([logs], control="control", resamples=500)
    by_name = {r["experiment"]: r for r in rows}
    treated = by_name["treated"]
    assert treated["test/acc"]["interval_from"] == "questions"
    assert treated["test/acc"]["high"] - treated["test/acc"]["low"] > 10
    paired = treated["paired"]["test/acc"]
    assert paired["mean"] == pytest.approx(10.0)
    assert paired["low"] == pytest.approx(10.0) and paired["high"] == pytest.approx(10.0)
    assert paired["interval_from"] == "questions" and paired["questions"] == 30
    assert "paired" not in by_name["control"]
    table = compare.markdown_table(rows, control="control")
    assert "Paired difference from control" in table and "10.00 [10.00, 10.00]" in table


def test_unknown_control_is_one_clear_line(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(runs), "--control", "nope"])
    assert exit_info.value.code == 2
    assert "--control 'nope' is not a row; the rows are: easyvqa_cp_updn" in capsys.readouterr().err


def test_suite_keys_get_columns_intervals_and_paired_differences(tmp_path: Path) -> None:
    """The evaluation suite's family-prefixed keys (``test/faithfulness/curve_area``) and
    per-question columns (``faithfulness/curve_area``): shown as columns, bootstrapped over
    questions, paired with the control (the treated row's area is the control's plus 0.25)."""
    logs = tmp_path / "logs"
    for seed in (0, 1):
        base = [((3 * q + seed) % 7) / 10 for q in range(20)]
        for offset, name in ((0.0, "control"), (0.25, "treated")):
            areas = [b + offset for b in base]
            records = [
                {"question_id": q, "faithfulness/curve_area": a, "fpvg/fpvg_plus": None}
                for q, a in enumerate(areas)
            ]
            metrics = {
                "test/acc": 50.0,
                "test/faithfulness/curve_area": sum(areas) / 20,
                "test/removal_curve/fractions": [0.5],  # lists are not metrics
                "test/removal_curve/most_first": [0.1],
            }
            make_run(
                logs / name / str(seed), metrics, 10 * seed + offset, hydra_task=name,
                seed=seed, per_question=records,
            )  # fmt: skip
    rows = compare.compare_runs([logs], control="control", resamples=300)
    treated = {r["experiment"]: r for r in rows}["treated"]
    area = treated["test/faithfulness/curve_area"]
    assert area["interval_from"] == "questions" and area["n"] == 2
    paired = treated["paired"]["test/faithfulness/curve_area"]
    assert paired["mean"] == pytest.approx(0.25)
    assert paired["low"] == pytest.approx(0.25) and paired["high"] == pytest.approx(0.25)
    assert not any("removal_curve" in key for key in treated)
    table = compare.markdown_table(rows, control="control")
    assert "LeRF-MoRF area" in table and "0.250 [0.250, 0.250]" in table
    assert "FPVG+" not in table  # no run has a value
