"""In-process training runs of every experiment, evaluation of their checkpoints, and CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import quick_overrides

from hint_lightning.compose import compose_train_config
from hint_lightning.evaluate import evaluate
from hint_lightning.train import train

QUICK = quick_overrides(train=4, val=2, test=2)


def run(experiment: str, data_dir: Path, out: Path, *extra: str) -> dict[str, Any]:
    overrides = [f"experiment={experiment}", f"paths.data_dir={data_dir}", *QUICK, *extra]
    return train(compose_train_config(overrides, output_dir=out))


@pytest.fixture(scope="module")
def baseline(easyvqa_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run("easyvqa_cp_updn", easyvqa_data_dir, tmp_path_factory.mktemp("updn"))


def test_baseline_trains_tests_and_writes_results(baseline: dict[str, Any]) -> None:
    out = Path(baseline["output_dir"])
    for key in ("val/acc", "test/acc", "test/acc_yes_no", "test/acc_other", "test/rho"):
        assert 0 <= baseline[key] <= 100 or key.endswith("rho"), key
    assert "test/acc_number" not in baseline  # easy-VQA has no number questions
    assert -1 <= baseline["test/rho"] <= 1
    assert Path(baseline["ckpt/best"]).is_file() and Path(baseline["ckpt/last"]).is_file()
    results = json.loads((out / "test_results.json").read_text())
    assert results and set(results[0]) == {"question_id", "answer"}
    assert len({r["question_id"] for r in results}) == len(results)
    assert json.loads((out / "metrics.json").read_text())["test/acc"] == baseline["test/acc"]


@pytest.mark.parametrize(
    "experiment",
    [
        "easyvqa_cp_finetune",
        "easyvqa_cp_hint",
        "easyvqa_cp_attn_align",
        "easyvqa_cp_hint_random",
        "easyvqa_cp_hint_one_minus",
        "easyvqa_cp_scr",
        "easyvqa_cp_visfis",
    ],
)
def test_every_finetune_experiment_runs_from_the_baseline(
    experiment: str, baseline: dict[str, Any], easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    metrics = run(experiment, easyvqa_data_dir, tmp_path, f"init_from={baseline['ckpt/best']}")
    assert "test/acc" in metrics
    if experiment == "easyvqa_cp_finetune":
        assert "train/loss_grounding" not in metrics
    else:
        assert metrics["train/hinted_frac"] == 1.0  # hinted_only: every question is hinted
        assert metrics["train/loss_grounding"] > 0


def test_evaluate_reproduces_the_test_metrics_of_the_checkpoint(
    baseline: dict[str, Any], tmp_path: Path
) -> None:
    from omegaconf import OmegaConf

    from hint_lightning.evaluate import stored_run

    run_cfg, _ = stored_run(baseline["ckpt/best"])
    cfg = OmegaConf.create(
        {
            "ckpt_path": baseline["ckpt/best"],
            "split": "test",
            "data": {},
            "trainer": {
                "_target_": "pytorch_lightning.Trainer",
                "default_root_dir": str(tmp_path),
                "accelerator": "cpu",
                "devices": 1,
                "inference_mode": False,
                "limit_test_batches": 2,
                "enable_progress_bar": False,
            },
        }
    )
    metrics = evaluate(cfg)
    assert metrics["test/acc"] == pytest.approx(baseline["test/acc"], abs=1e-4)
    assert metrics["test/rho"] == pytest.approx(baseline["test/rho"], abs=1e-4)
    assert run_cfg.task_name == "easyvqa_cp_updn"
    results = json.loads(Path(metrics["results"]).read_text())
    assert len(results) > 0
    # the grounding metrics with another importance method than the training run's
    cfg.model = {"eval_importance": "input_x_gradient"}
    cfg.trainer.default_root_dir = str(tmp_path / "ixg")
    other = evaluate(cfg)
    assert other["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert -1 <= other["test/rho"] <= 1 and other["test/rho"] != metrics["test/rho"]


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_two_process_cpu_ddp_with_hint_through_the_cli(
    baseline: dict[str, Any], easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    result = cli(
        "hint_lightning.train",
        "experiment=easyvqa_cp_hint",
        f"init_from={baseline['ckpt/best']}",
        "trainer=ddp_cpu",
        f"paths.data_dir={easyvqa_data_dir}",
        f"hydra.run.dir={tmp_path / 'run'}",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train/loss_grounding"] > 0 and "test/acc" in metrics


@pytest.mark.slow
def test_cli_train_then_evaluate(easyvqa_data_dir: Path, tmp_path: Path) -> None:
    train_run = cli(
        "hint_lightning.train",
        "experiment=easyvqa_cp_updn",
        f"paths.data_dir={easyvqa_data_dir}",
        f"hydra.run.dir={tmp_path / 'train'}",
        *QUICK,
        cwd=tmp_path,
    )
    assert train_run.returncode == 0, train_run.stderr[-4000:]
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    eval_run = cli(
        "hint_lightning.evaluate",
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        "trainer.limit_test_batches=2",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert eval_run.returncode == 0, eval_run.stderr[-4000:]
    assert (tmp_path / "eval" / "test_results.json").is_file()
    assert "test/acc" in json.loads((tmp_path / "eval" / "metrics.json").read_text())


@pytest.mark.slow
def test_wandb_logger_goes_offline_without_a_key(
    easyvqa_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a W&B key
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from hint_lightning.utils.runtime import finish_wandb

    try:
        metrics = run("easyvqa_cp_updn", easyvqa_data_dir, tmp_path / "run", "logger=wandb")
    finally:
        finish_wandb()
    assert "test/acc" in metrics
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert runs
    media = {p.parent.name for p in runs[0].rglob("files/media/*/*")}
    assert {"images", "table"} <= media  # importance pictures and the results table
    tables = {p.name.split("_table")[0] for p in runs[0].rglob("files/media/table/*.json")}
    assert any(name.startswith("grounding_metrics") for name in tables), tables  # the suite
