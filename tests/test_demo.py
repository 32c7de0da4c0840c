"""The demo's summary (means, paired differences, tables) and its command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testkit import QUICK_TRAINER

from hint_lightning import demo

CONTROL = "+ fine-tune, no grounding (λ=0)"


def fake_results() -> dict:
    return {
        "seeds": [0, 1],
        "control": CONTROL,
        "runs": {
            "UpDn": [{"test/acc": 50.0}, {"test/acc": 70.0}],
            CONTROL: [{"test/acc": 52.0}, {"test/acc": 71.0}],
            "+ HINT": [{"test/acc": 55.0, "test/rho": 0.7}, {"test/acc": 73.0, "test/rho": 0.6}],
        },
        "seconds": {"UpDn": [10.0, 12.0], CONTROL: [1.0, 1.0], "+ HINT": [2.0, 2.0]},
    }


def test_paired_differences_are_taken_seed_by_seed_against_the_control() -> None:
    deltas = demo.paired_differences(fake_results())
    assert deltas == {"UpDn": [-2.0, -1.0], "+ HINT": [3.0, 2.0]}


def test_rows_hold_mean_and_sample_std() -> None:
    rows = {row["model"]: row for row in demo.results_rows(fake_results())}
    assert rows["+ HINT"]["test/acc"] == {"mean": 64.0, "std": pytest.approx(12.7279, rel=1e-4)}
    assert rows["+ HINT"]["paired/test_acc"]["mean"] == 2.5
    assert rows[CONTROL]["paired/test_acc"]["mean"] != rows[CONTROL]["paired/test_acc"]["mean"]
    table = demo.markdown_table(list(rows.values()), [0, 1])
    assert "| + HINT | 64.00 ± 12.73 |" in table and "0.650 ± 0.071" in table


@pytest.mark.slow
def test_demo_command_runs_every_row_and_writes_its_tables(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    results = demo.main(
        [
            "--seeds",
            "0",
            "--output-dir",
            str(tmp_path),
            f"paths.data_dir={easyvqa_data_dir}",
            *QUICK_TRAINER,
        ]
    )
    assert set(results["runs"]) == {run.name for run in demo.DEMO_RUNS}
    saved = json.loads((tmp_path / "demo_results.json").read_text())
    assert len(saved["summary"]) == len(demo.DEMO_RUNS)
    markdown = (tmp_path / "demo_results.md").read_text()
    assert all(run.name in markdown for run in demo.DEMO_RUNS)
