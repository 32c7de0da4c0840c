"""The command-line parts of ``make gpu-check``: the device tests (pytest) and the short
training runs (the train CLI), each a subprocess with a time limit, and the time budget they
share with the measuring parts (:mod:`benchmarks.gpu_check`)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT

BUDGET_S = 450.0
"""Default wall-clock budget of the whole check (the issue: under 8 minutes on one H100)."""
PART_LIMITS_S = {
    "environment": 60,
    "device_tests": 150,
    "training_runs": 240,
    "train_step": 180,
    "precision": 120,
    "loader": 200,
}
"""Time limit of each part (seconds) under the default budget, scaled up with a larger one and
capped by what is left of it; the training runs share theirs, as do the two training steps."""
RUN_FILES = ("metrics.json", "test_results.json", "checkpoints/last.ckpt")
"""What every training run must write."""


def log(message: str) -> None:
    """One progress line on stderr."""
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


class Budget:
    """The wall-clock budget shared by the parts.

    Args:
        seconds: the whole check's budget; above :data:`BUDGET_S` every part's limit grows in
            proportion (slow or busy machines).
    """

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.scale = max(1.0, seconds / BUDGET_S)
        self.spent: dict[str, float] = {}

    def limit(self, part: str) -> float:
        """Seconds ``part`` may still take: its own limit less what it spent, at most what is
        left of the budget."""
        own = PART_LIMITS_S[part] * self.scale - self.spent.get(part, 0.0)
        return max(0.0, min(own, self.deadline - time.monotonic()))

    def charge(self, part: str, seconds: float) -> None:
        """Record that ``part`` spent ``seconds``."""
        self.spent[part] = self.spent.get(part, 0.0) + seconds


def run_command(command: list[str], limit: float) -> tuple[int | None, str, str, float]:
    """Run a command from the repository root in its own process group, W&B offline.

    On timeout the whole group is killed (DDP ranks, loader workers, benchmark phases too).

    Returns:
        The exit status (None on timeout), its stdout, the tail of its stderr and stdout
        (or the timeout message), its seconds.
    """
    start = time.perf_counter()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=limit)
        code, tail = process.returncode, (stderr + stdout)[-3000:]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, _ = process.communicate()
        code, tail = None, f"timed out after {limit:.0f} s"
    return code, stdout, tail, round(time.perf_counter() - start, 1)


def _junit_counts(report: Path) -> dict[str, Any]:
    """Test counts and failure messages of a pytest JUnit XML report."""
    root = ElementTree.parse(report).getroot()
    suite = root.find("testsuite") if root.tag == "testsuites" else root
    assert suite is not None
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [
        f"{case.get('classname')}::{case.get('name')}: {(problem.get('message') or '')[:300]}"
        for case in suite.iter("testcase")
        for problem in [*case.findall("failure"), *case.findall("error")]
    ]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts | {"passed": passed, "failed": failed}


def device_tests(device: str, workdir: Path, budget: Budget) -> dict[str, Any]:
    """``pytest tests -m device --device <device>``: counts, failures, seconds.

    An error is recorded when pytest fails, finds no test, or skips one (on an available
    device nothing should be skipped).
    """
    report = workdir / "device_tests.xml"
    command = [sys.executable, "-m", "pytest", "tests", "-m", "device", "--device", device]
    command += ["-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    limit = budget.limit("device_tests")
    code, _, tail, seconds = run_command(command, limit)
    budget.charge("device_tests", seconds)
    result: dict[str, Any] = {"device": device, "command": " ".join(command[2:]), "wall_s": seconds}
    if not report.exists():
        return result | {"error": tail}
    result |= _junit_counts(report)
    if code != 0 or not result["tests"] or result["skipped"]:
        problems = result["failed"] or [tail]
        result["error"] = f"pytest exited {code}, {result['skipped']} skipped: {problems}"
    return result


def _trainers(device: str) -> tuple[list[str], list[str]]:
    """Trainer overrides: (one device, bf16-mixed) and (DDP with one process, bf16-mixed)."""
    if device == "cuda":
        return ["trainer=gpu"], ["trainer=ddp", "trainer.devices=1"]
    bf16 = "trainer.precision=bf16-mixed"
    return ["trainer=cpu", bf16], ["trainer=ddp_cpu", "trainer.devices=1", bf16]


def check_run(out: Path, hint: bool) -> tuple[dict[str, Any], list[str]]:
    """The figures of a finished run and what is wrong with its outputs (nothing: it is fine).

    Args:
        out: the run's output directory.
        hint: the run has a HINT term (its grounding loss must be logged and finite).
    """
    problems = [f"missing {name}" for name in RUN_FILES if not (out / name).is_file()]
    if problems:
        return {}, problems
    metrics = json.loads((out / "metrics.json").read_text())
    results = json.loads((out / "test_results.json").read_text())
    keys = ["train/loss", "train/loss_task", "test/acc", "test/rho"]
    keys += ["train/loss_grounding", "train/hinted_frac"] if hint else []
    figures = {key: metrics.get(key) for key in keys}
    problems += [f"{key} was not logged" for key, value in figures.items() if value is None]
    problems += [
        f"{key} is not finite ({value})"
        for key, value in figures.items()
        if isinstance(value, float) and not math.isfinite(value)
    ]
    if not results:
        problems.append("test_results.json is empty")
    return figures | {"test_results": len(results)}, problems


def training_runs(
    device: str, quick: bool, workdir: Path, data_dir: Path, budget: Budget
) -> dict[str, Any]:
    """The easy-VQA-CP baseline, then HINT on one device and HINT under DDP, via the train CLI.

    Each run is one epoch cut at a few training batches (2 validation and 2 test batches); the
    HINT runs start from the baseline's ``last.ckpt``. A run that fails, or does not write
    :data:`RUN_FILES` with finite losses, is an error; the others still run.
    """
    single, ddp = _trainers(device)
    steps = 2 if quick else (3 if device == "cpu" else 30)
    common = [f"paths.data_dir={data_dir}", "trainer.max_epochs=1", "logger=csv"]
    common += [f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=2"]
    common += ["trainer.limit_test_batches=2", "trainer.enable_progress_bar=false"]
    baseline = workdir / "runs" / "updn" / "checkpoints" / "last.ckpt"
    plan = [
        ("updn", ["experiment=easyvqa_cp_updn", *single]),
        ("hint", ["experiment=easyvqa_cp_hint", *single]),
        ("hint_ddp", ["experiment=easyvqa_cp_hint", *ddp]),
    ]
    runs: dict[str, Any] = {}
    for name, overrides in plan:
        hint = name != "updn"
        out = workdir / "runs" / name
        record: dict[str, Any] = {"overrides": " ".join(overrides), "output_dir": str(out)}
        runs[name] = record
        limit = budget.limit("training_runs")
        if hint and "error" in runs["updn"]:
            record["error"] = "skipped: the baseline run failed"
            continue
        if limit < 5:
            record["error"] = "skipped: the time budget is spent"
            continue
        log(f"training run {name}: {record['overrides']}")
        args = [*overrides, *common, f"hydra.run.dir={out}"]
        args += [f"init_from={baseline}"] if hint else []
        command = [sys.executable, "-m", "hint_lightning.train", *args]
        code, _, tail, record["wall_s"] = run_command(command, limit)
        budget.charge("training_runs", record["wall_s"])
        if code != 0:
            record["error"] = f"exit {code}: {tail}"
            continue
        record["metrics"], problems = check_run(out, hint)
        if problems:
            record["error"] = "; ".join(problems)
    result: dict[str, Any] = {"device": device, "train_batches": steps, "runs": runs}
    result["wall_s"] = round(sum(run.get("wall_s", 0.0) for run in runs.values()), 1)
    failed = [name for name, run in runs.items() if "error" in run]
    return result | ({"error": f"failed: {failed}"} if failed else {})
