"""``make gpu-check`` (``benchmarks.gpu_check``): its verdicts, its run checks, and a whole
``--quick`` run on this machine (on a CPU-only machine: the CUDA parts are skipped with a line
each and their CPU equivalents run). Figures are reported, never compared with timings here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.bench_train_step import autocast_for, dtype_name
from benchmarks.gpu_check import HINT_LOSS_BF16_RTOL, targets
from benchmarks.gpu_check_parts import STEP_CONFIGS, step_figures
from benchmarks.gpu_check_runs import (
    BUDGET_S,
    PART_LIMITS_S,
    Budget,
    _junit_counts,
    check_run,
    run_command,
)

ROOT = Path(__file__).resolve().parents[1]


def _measured(ratio: float = 1.2, loss_difference: float = 0.01, loader: float = 3.0) -> dict:
    """A finished check's figures as the parts report them (only what the targets read)."""
    configs = {name: {"nonfinite_losses": 0} for name in STEP_CONFIGS}
    compared = {"loss_relative_difference": loss_difference, "finite": True}
    return {
        "device": "cuda",
        "train_step": {"bfloat16": {"hint_to_plain": ratio, "batch_size": 512, "configs": configs}},
        "precision": {
            "batch_size": 512,
            "alpha_spread_of_mean": 0.1,
            "bf16_vs_float32": {"shift": compared, "reference": dict(compared)},
        },
        "loader": {"best_ratio_to_hint": loader, "workers_reaching_target": 4},
    }


def test_targets_pass_when_every_figure_is_within_its_bound() -> None:
    verdicts = targets(_measured())
    assert {name: v["pass"] for name, v in verdicts.items()} == {
        "hint_step_vs_plain_bf16": True,
        "no_nan_inf_bf16": True,
        "hint_loss_float32_vs_bf16": True,
        "loader_vs_hint_training": True,
    }
    assert verdicts["loader_vs_hint_training"]["workers"] == 4


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"ratio": 1.31}, "hint_step_vs_plain_bf16"),
        ({"loss_difference": HINT_LOSS_BF16_RTOL * 1.01}, "hint_loss_float32_vs_bf16"),
        ({"loader": 1.99}, "loader_vs_hint_training"),
    ],
)
def test_each_target_fails_alone_past_its_bound(change: dict[str, float], failing: str) -> None:
    verdicts = targets(_measured(**change))
    assert [name for name, v in verdicts.items() if not v["pass"]] == [failing]


def test_a_nan_in_bf16_fails_and_a_missing_part_fails_on_cuda() -> None:
    measured = _measured()
    measured["train_step"]["bfloat16"]["configs"]["attn_align"]["nonfinite_losses"] = 2
    measured["precision"]["bf16_vs_float32"]["shift"]["finite"] = False
    finite = targets(measured)["no_nan_inf_bf16"]
    assert finite["pass"] is False and finite["measured"] == 3
    del measured["loader"]
    missing = targets(measured)["loader_vs_hint_training"]
    assert missing["pass"] is False and "figure missing" in missing["error"]


def test_the_targets_are_not_evaluated_without_cuda() -> None:
    measured = _measured(ratio=2.0) | {"device": "cpu"}
    verdicts = targets(measured)
    assert all(v["pass"] is None for v in verdicts.values())
    assert verdicts["hint_step_vs_plain_bf16"]["measured"] == 2.0
    assert "CUDA" in verdicts["hint_step_vs_plain_bf16"]["note"]


def _finished_run(out: Path, **metrics: float) -> Path:
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (out / "test_results.json").write_text(json.dumps([{"question_id": 1, "answer": "yes"}]))
    values = {"train/loss": 1.0, "train/loss_task": 0.9, "test/acc": 50.0, "test/rho": 0.1}
    (out / "metrics.json").write_text(json.dumps(values | metrics))
    return out


def test_a_finished_run_with_its_files_and_finite_losses_is_fine(tmp_path: Path) -> None:
    out = _finished_run(tmp_path, **{"train/loss_grounding": 0.1, "train/hinted_frac": 1.0})
    figures, problems = check_run(out, hint=True)
    assert problems == []
    assert figures["train/loss_grounding"] == 0.1 and figures["test_results"] == 1


def test_a_run_without_results_a_nan_loss_or_no_grounding_term_is_not(tmp_path: Path) -> None:
    out = _finished_run(tmp_path / "a", **{"train/loss": math.nan})
    _, problems = check_run(out, hint=True)
    assert "train/loss is not finite (nan)" in problems
    assert "train/loss_grounding was not logged" in problems
    (out / "test_results.json").unlink()
    assert check_run(out, hint=False) == ({}, ["missing test_results.json"])


def test_junit_counts_and_failures(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest" tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.test_devices" name="test_a[cuda]"/>'
        '<testcase classname="tests.test_devices" name="test_b[cuda]">'
        '<failure message="assert 0.5 &gt;= 0.9">trace</failure></testcase>'
        '<testcase classname="tests.test_devices" name="test_c[cuda]"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    counts = _junit_counts(report)
    assert (counts["tests"], counts["passed"], counts["failures"], counts["skipped"]) == (
        3,
        1,
        1,
        1,
    )
    assert counts["failed"] == ["tests.test_devices::test_b[cuda]: assert 0.5 >= 0.9"]


def test_budget_caps_each_part_by_its_limit_its_spending_and_the_deadline() -> None:
    budget = Budget(BUDGET_S)
    assert budget.limit("device_tests") <= PART_LIMITS_S["device_tests"]
    budget.charge("training_runs", 100.0)
    assert budget.limit("training_runs") <= PART_LIMITS_S["training_runs"] - 100.0
    assert Budget(2 * BUDGET_S).limit("loader") > PART_LIMITS_S["loader"]  # scaled up
    spent = Budget(10.0)
    spent.deadline = time.monotonic() - 1.0
    assert spent.limit("loader") == 0.0


def test_a_part_past_its_limit_is_killed_with_its_children() -> None:
    # The part starts a child (as DDP ranks, loader workers and benchmark phases are) and
    # hangs: both must be gone after the timeout, not left running on the machine.
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    code, stdout, tail, seconds = run_command([sys.executable, "-c", script], limit=3.0)
    assert code is None and tail == "timed out after 3 s" and seconds < 30
    child = int(stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), f"the part's child {child} survived the timeout"


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def test_bench_train_step_takes_the_precision() -> None:
    cpu = torch.device("cpu")
    with autocast_for(cpu, torch.bfloat16)():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast_for(cpu, torch.float32)():
        assert not torch.is_autocast_enabled("cpu")
    assert (dtype_name(torch.bfloat16), dtype_name(torch.float32)) == (
        "bfloat16-autocast",
        "float32",
    )


def test_step_figures_read_the_bench_json() -> None:
    def config(ms: float) -> dict[str, Any]:
        memory = {"peak_rss_mb": 900.0, "step_rss_mb": 24.0}
        return {"median_ms": ms, "iqr_ms": 1.0, "samples_per_s": 8000 / ms, "memory": memory}

    times = {"none": 100.0, "hint_fast_all": 125.0, "hint_no_importance": 101.0, "attn_align": 99.0}
    step = {
        "device": "cpu",
        "dtype": "float32",
        "batch_size": 8,
        "timed_rounds": 2,
        "seconds": 3.0,
        "configs": {
            name: config(ms) | {"ratio_to_none": ms / 100.0, "nonfinite_losses": 0}
            for name, ms in times.items()
        },
    }
    figures = step_figures(step)
    assert figures["hint_to_plain"] == 1.25
    assert figures["configs"]["none"]["peak_memory_mb"] == 900.0
    assert figures["memory"] == "peak RSS (VmHWM)"


def _gpu_check(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_asking_for_cuda_without_it_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _gpu_check("--device", "cuda", "--output", str(tmp_path / "x.json"), timeout=300)
    assert done.returncode == 2
    assert "gpu-check: --device cuda: no CUDA device" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_quick_check_runs_every_part_and_writes_one_json(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "gpu_check.json"
    args = ["--quick", "--output", str(output), "--workdir", str(tmp_path / "work")]
    args += ["--data-dir", str(easyvqa_data_dir), "--budget", str(6 * BUDGET_S)]
    done = _gpu_check(*args, timeout=8 * BUDGET_S)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert json.loads(output.read_text()) == result
    assert result["complete"] and result["passed"] and result["errors"] == []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert result["device"] == device
    if device == "cpu":
        skips = [line for line in done.stderr.splitlines() if "SKIP" in line]
        assert len(skips) == len(result["skipped"]) >= 5
        assert all("no CUDA device" in line for line in skips)
    tests = result["device_tests"]
    assert tests["passed"] == tests["tests"] > 0 and tests["device"] == device
    runs = result["training_runs"]["runs"]
    assert set(runs) == {"updn", "hint", "hint_ddp"}
    for name in ("hint", "hint_ddp"):
        assert runs[name]["metrics"]["train/loss_grounding"] > 0
        assert runs[name]["metrics"]["test_results"] > 0
    for dtype in ("bfloat16", "float32"):
        step = result["train_step"][dtype]
        assert set(step["configs"]) == set(STEP_CONFIGS)
        for figures in step["configs"].values():
            assert figures["ms_per_step"] > 0 and figures["peak_memory_mb"] > 0
            assert figures["nonfinite_losses"] == 0
    precision = result["precision"]
    for path in ("reference", "shift"):
        assert precision["bf16_vs_float32"][path]["finite"]
    assert precision["shift_vs_reference_float32"]["loss_relative_difference"] < 1e-4
    assert result["loader"]["best_ratio_to_hint"] > 0
    verdicts = result["targets"]
    assert all((v["pass"] is None) == (device == "cpu") for v in verdicts.values())
    assert result["environment"]["torch"] == torch.__version__
