"""``python -m benchmarks.run --quick``: every section is there and every number is finite.

Speed is reported, not asserted: no timing is compared with anything here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "machine",
    "train_step",
    "vqa_accuracy",
    "hat_scoring",
    "data_loading",
    "easyvqa_cp_loader",
    "importance",
    "metrics",
    "vit",
    "targets",
)
TRAIN_CONFIGS = (
    "none",
    "hint_fast_all",
    "hint_fast_10pct",
    "hint_no_importance",
    "hint_reference_all",
    "attn_align",
    "rrr_all",
    "scr_all",
    "visfis_all",
    "energy_all",
    "hint_rrr_all",
    "attn_align_no_importance",
    "rrr_no_importance",
    "scr_no_importance",
    "visfis_no_importance",
    "energy_no_importance",
)
TARGETS = (
    "hint_without_importance_costs_none",
    "no_importance_costs_none_every_objective",
    "hint_fast_within_1_2x_none",
    "vqa_accuracy_200k_questions",
    "proposal_importance_480x640_36_boxes",
    "loader_vs_hint_training",
    "faithfulness_suite_vs_plain_evaluation",
    "hint_vit_within_2x_plain",
)


def _numbers(value: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a JSON value, with its path (booleans excluded)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}[{index}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, float(value)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON printed by ``python -m benchmarks.run --quick`` (and the file it wrote)."""
    output = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    printed = json.loads(done.stdout)
    assert json.loads(output.read_text()) == printed
    return printed


@pytest.mark.slow
def test_quick_benchmark_has_every_section(quick_results: dict[str, Any]) -> None:
    for section in SECTIONS:
        assert section in quick_results, section
        assert "error" not in quick_results[section], quick_results[section]
    machine = quick_results["machine"]
    for key in ("cpus", "torch", "torch_threads", "load_average_start", "load_average_end"):
        assert key in machine
    train = quick_results["train_step"]
    assert set(train["configs"]) == set(TRAIN_CONFIGS)
    for name, config in train["configs"].items():
        for key in ("median_ms", "iqr_ms", "ratio_to_none", "samples_per_s", "memory"):
            assert key in config, (name, key)
    profile = train["profile"]["hint_fast_all"]["top_operators"]
    assert 1 <= len(profile) <= 8
    assert all(isinstance(op["name"], str) and op["self_cpu_ms"] >= 0 for op in profile)
    assert quick_results["vqa_accuracy"]["questions"] == 200_000
    assert "us_per_question" in quick_results["vqa_accuracy"]["answer_scorer"]
    assert "median_us" in quick_results["hat_scoring"]["proposal_importance"]
    assert "maps_per_s" in quick_results["hat_scoring"]["hat_importance"]["one_map"]
    loading = quick_results["data_loading"]
    assert set(loading["ratio_loader_to_hint"]) == {"workers_0", "workers_2"}
    assert quick_results["easyvqa_cp_loader"]["samples_per_s"] > 0
    importance = quick_results["importance"]["methods"]
    assert {"gradient", "leave_one_out", "kernel_shap"} <= set(importance)
    measured = {name: entry for name, entry in importance.items() if "skipped" not in entry}
    assert {"gradient", "leave_one_out", "kernel_shap"} <= set(measured)
    assert all(entry["forward_passes"] >= 1 and "eval_ms" in entry for entry in measured.values())
    skipped = [entry["skipped"] for name, entry in importance.items() if name not in measured]
    assert all("internals" in reason for reason in skipped)  # transformer methods: bench_vit
    families = quick_results["metrics"]["families"]
    assert families["sufficiency_comprehensiveness"]["forward_rows_per_question"] == 6
    assert families["removal_curves"]["forward_rows_per_question"] == 10
    assert families["fpvg"]["forward_rows_per_question"] == 2
    paper = quick_results["metrics"]["at_10000_questions"]
    assert paper["extrapolated"] is True and paper["from_measured_questions"] == 128
    measured = quick_results["metrics"]["families"]["removal_curves"]["seconds"]
    assert paper["seconds"]["removal_curves"] == pytest.approx(measured * 10_000 / 128, abs=0.1)
    assert set(quick_results["targets"]) == set(TARGETS)
    for name, target in quick_results["targets"].items():
        assert isinstance(target["pass"], bool), name
        assert "measured" in target, name


@pytest.mark.slow
def test_quick_benchmark_numbers_are_finite(quick_results: dict[str, Any]) -> None:
    numbers = list(_numbers(quick_results))
    assert len(numbers) > 50
    for path, number in numbers:
        assert math.isfinite(number), path
