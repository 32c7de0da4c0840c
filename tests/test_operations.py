"""Operations: precision, reproducibility, sweeps (basic and Optuna), the multirun+DDP guard,
and the SLURM launcher config."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from testkit import quick_overrides

from hint_lightning.compose import compose_train_config
from hint_lightning.train import CONFIG_DIR, train
from hint_lightning.utils.sweep import collect_sweep, summary_markdown, varying_overrides

QUICK = quick_overrides(train=3)


def run(data_dir: Path, out: Path, *extra: str) -> dict[str, Any]:
    overrides = ["experiment=easyvqa_cp_updn", f"paths.data_dir={data_dir}", *QUICK, *extra]
    return train(compose_train_config(overrides, output_dir=out))


@pytest.fixture(scope="module")
def baseline_ckpt(easyvqa_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return run(easyvqa_data_dir, tmp_path_factory.mktemp("ops_baseline"))["ckpt/last"]


def test_bf16_mixed_with_hint_gives_a_finite_loss(
    baseline_ckpt: str, easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    metrics = run(
        easyvqa_data_dir,
        tmp_path,
        "experiment=easyvqa_cp_hint",
        f"init_from={baseline_ckpt}",
        "trainer.precision=bf16-mixed",
    )
    assert math.isfinite(metrics["train/loss"]) and metrics["train/loss_grounding"] > 0


def test_float16_with_hint_is_refused_with_a_clear_message() -> None:
    from hint_lightning.modules.hint_mixin import HintMixin
    from hint_lightning.objectives.hint import HintObjective

    host = HintMixin()
    host.objective = HintObjective()
    with pytest.raises(ValueError, match="bf16-mixed"):
        host.check_precision("16-mixed")
    host.check_precision("bf16-mixed")  # fine
    host.objective = None
    host.check_precision("16-mixed")  # fine without a grounding objective


def test_same_seed_same_config_same_metrics(easyvqa_data_dir: Path, tmp_path: Path) -> None:
    first = run(easyvqa_data_dir, tmp_path / "a", "trainer.deterministic=true")
    second = run(easyvqa_data_dir, tmp_path / "b", "trainer.deterministic=true")
    keys = [k for k in first if k.startswith(("train/", "val/", "test/"))]
    assert keys and {k: first[k] for k in keys} == {k: second[k] for k in keys}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hint_lightning.train", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_basic_sweep_runs_one_job_per_point_and_writes_one_summary(
    baseline_ckpt: str, easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / "sweep"
    result = cli(
        "-m",
        "experiment=easyvqa_cp_hint",
        f"init_from={baseline_ckpt}",
        f"paths.data_dir={easyvqa_data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        "objective.weight=0.5,2",
        "model.optimizer.lr=0.0001",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = json.loads((sweep_dir / "sweep_summary.json").read_text())["jobs"]
    assert [job["status"] for job in jobs] == ["done", "done"]
    assert varying_overrides(jobs) == ["objective.weight"]
    table = (sweep_dir / "sweep_summary.md").read_text()
    assert "| job | objective.weight | val/acc |" in table and "| 1 | 2 |" in table


@pytest.mark.slow
def test_optuna_sweep_with_persistent_storage_optimizes_validation_accuracy(
    baseline_ckpt: str, easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    storage = tmp_path / "study.db"
    result = cli(
        "-m",
        "experiment=easyvqa_cp_hint",
        "hparams_search=easyvqa_cp_hint_optuna",
        f"init_from={baseline_ckpt}",
        f"paths.data_dir={easyvqa_data_dir}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage=sqlite:///{storage}",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    import optuna

    study = optuna.load_study(study_name="easyvqa_cp_hint", storage=f"sqlite:///{storage}")
    assert len(study.trials) == 2 and all(t.value is not None for t in study.trials)
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()


@pytest.mark.slow
def test_multirun_with_ddp_stops_at_once_with_a_clear_message(tmp_path: Path) -> None:
    result = cli(
        "-m",
        "experiment=easyvqa_cp_updn",
        "trainer=ddp_cpu",
        "seed=0,1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"paths.data_dir={tmp_path / 'data'}",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "multirun with strategy=ddp" in result.stderr and "ddp_spawn" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before any work


def test_sweep_summary_of_jobs_with_and_without_results(tmp_path: Path) -> None:
    for job, weight in ((0, "1"), (1, "3")):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(
            f"- objective.weight={weight}\n- seed=0\n"
        )
    (tmp_path / "0" / "metrics.json").write_text(json.dumps({"val/acc": 91.234, "test/rho": 0.5}))
    jobs = collect_sweep(tmp_path)
    assert [j["status"] for j in jobs] == ["done", "missing"]
    table = summary_markdown(jobs)
    assert "| 0 | 1 | 91.23 | 0.500 |" in table and "| 1 | 3 | — | — |" in table


def test_slurm_launcher_config_composes() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train.yaml",
            overrides=["hydra/launcher=slurm", "hydra.launcher.nodes=2"],
            return_hydra_config=True,
        )
    assert "SlurmLauncher" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.nodes == 2
