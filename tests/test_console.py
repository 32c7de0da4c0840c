"""The console of the entry points: one clear message for a user's mistake (traceback behind
``HYDRA_FULL_ERROR=1``), no advertisement or library deprecation noise, loader workers fitted
to the machine, each task's own metrics in the final table, and sweeps that go on when the
optimized metric is missing (only a sweeper that needs it fails)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from hint_lightning.compose import compose_train_config
from hint_lightning.utils.report import metrics_table

QUICK = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
)


def rendered(table: Any) -> str:
    console = Console(record=True, width=240)
    console.print(table)
    return console.export_text()


def header(table: Any) -> list[str]:
    return [str(column.header) for column in table.columns]


# ---------------------------------------------------------------------------- final table
def test_captioning_table_shows_the_caption_scores_and_grounding() -> None:
    metrics = {"test/Bleu_4": 0.25, "test/METEOR": 0.22, "test/ROUGE_L": 0.5, "test/CIDEr": 0.81}
    metrics |= {"test/rho": 0.3, "test/rho_attention": 0.6, "test/images": 100.0, "val/CIDEr": 0.7}
    table = metrics_table(metrics)
    assert header(table) == [
        "split",
        "BLEU-4",
        "METEOR",
        "ROUGE-L",
        "CIDEr",
        "rho (net. imp.)",
        "rho (attention)",
    ]
    text = rendered(table)
    assert "0.810" in text and "0.250" in text and "0.700" in text


def test_vqa_table_shows_accuracy_by_answer_type_and_grounding() -> None:
    metrics = {"test/acc": 50.0, "test/acc_yes_no": 41.0, "test/acc_number": 30.0}
    metrics |= {"test/acc_other": 85.0, "test/rho": 0.16, "test/misgrounded": 12.5}
    assert header(metrics_table(metrics)) == [
        "split",
        "Overall",
        "Yes/No",
        "Number",
        "Other",
        "rho (net. imp.)",
        "misgrounded (%)",
    ]


def test_classification_table_shows_accuracy_and_the_decoy_share() -> None:
    metrics = {"val/acc": 97.0, "test/acc": 40.0, "test/rho": 0.2, "test/decoy_share": 35.0}
    table = metrics_table(metrics)
    assert header(table) == ["split", "Accuracy", "rho (net. imp.)", "net. imp. on decoy (%)"]
    assert "35.00" in rendered(table)


@pytest.mark.slow
def test_evaluate_shows_the_accuracy_of_a_classification_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from omegaconf import OmegaConf

    from hint_lightning.evaluate import evaluate
    from hint_lightning.train import train

    cfg = compose_train_config(
        ["experiment=decoy_digits_hint", *QUICK, "trainer.enable_model_summary=false"],
        output_dir=tmp_path / "run",
    )
    trained = train(cfg)
    assert "net. imp. on decoy (%)" in capsys.readouterr().out  # the end of train
    eval_cfg = OmegaConf.create(
        {
            "ckpt_path": trained["ckpt/last"],
            "data": {},
            "trainer": {**QUICK_TRAINER, "default_root_dir": str(tmp_path / "eval")},
        }
    )
    metrics = evaluate(eval_cfg)
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-4)
    out = capsys.readouterr().out
    assert "Accuracy" in out and "net. imp. on decoy (%)" in out


QUICK_TRAINER = {
    "_target_": "pytorch_lightning.Trainer",
    "accelerator": "cpu",
    "devices": 1,
    "inference_mode": False,
    "limit_test_batches": 1,
    "enable_progress_bar": False,
    "logger": False,
}


# --------------------------------------------------------------------------- loader workers
@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 1), (4, 3), (16, 4)])
@pytest.mark.parametrize("data", ["vqacp_v2", "vqa_v2", "coco_karpathy", "coco_robust"])
def test_real_data_configs_take_their_workers_from_the_machine(
    data: str, cores: int, workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    cfg = compose_train_config([f"data={data}"], output_dir=tmp_path)
    assert cfg.data.num_workers == workers
    cfg = compose_train_config([f"data={data}", "data.num_workers=6"], output_dir=tmp_path)
    assert cfg.data.num_workers == 6


# ------------------------------------------------------------------------------- filters
def test_quiet_console_drops_the_tips_and_the_library_deprecation_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pytorch_lightning.utilities import rank_zero_info

    from hint_lightning.utils.console import quiet_console

    quiet_console()
    with caplog.at_level(logging.INFO):
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing litlogger")
        rank_zero_info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_console()  # after simplefilter: its filters take precedence
        message = "`isinstance(treespec, LeafSpec)` is deprecated, use something else"
        warnings.warn(message, FutureWarning, stacklevel=1)
        warnings.warn("a real deprecation of ours", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a real deprecation of ours"]


# --------------------------------------------------------------------------- user errors
def test_user_errors_are_our_messages_and_bugs_keep_their_traceback() -> None:
    from hydra.errors import InstantiationException

    from hint_lightning.utils.cli_errors import ConfigError, user_message
    from hint_lightning.utils.masks import as_proposal_mask

    assert user_message(ConfigError("objective.weight=-1 is negative")) == (
        "objective.weight=-1 is negative"
    )
    with pytest.raises(ValueError) as ours:
        as_proposal_mask(torch.full((1, 2), 2.0), (1, 2))  # our own ValueError: not 0/1
    assert user_message(ours.value) == str(ours.value) != ""
    with pytest.raises(ValueError) as theirs:
        int("not a number")  # raised outside our package: looks like a bug, traceback kept
    assert user_message(theirs.value) is None
    wrapped = InstantiationException("Error in call to target 'X'")
    wrapped.__cause__ = FileNotFoundError("the prepared data is incomplete: run prepare")
    assert user_message(wrapped) == "the prepared data is incomplete: run prepare"
    assert user_message(IndexError("list index out of range")) is None


def test_report_user_errors_prints_one_message_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hint_lightning.utils.cli_errors import ConfigError, report_user_errors

    @report_user_errors
    def main() -> None:
        raise ConfigError("init_from is missing: pass init_from=...")

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "Error: init_from is missing: pass init_from=..."
    assert "Traceback" not in err
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError):
        main()


def cli(module: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    environment.pop("HYDRA_FULL_ERROR", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("hint_lightning.train", ["experiment=easyvqa_cp_hint"], "pass init_from="),
        ("hint_lightning.train", ["experiment=vqacp_updn"], "python -m hint_lightning.prepare"),
        ("hint_lightning.train", ["objective.wieght=2"], "Could not override 'objective.wieght'"),
        ("hint_lightning.train", ["objective=hint", "objective.weight=-1"], "is negative"),
        ("hint_lightning.evaluate", [], "ckpt_path is required: pass ckpt_path=..."),
        ("hint_lightning.evaluate", ["ckpt_path=missing.ckpt"], "not found: missing.ckpt"),
    ],
)
def test_configuration_errors_print_one_message_without_traceback(
    module: str, args: list[str], expected: str, tmp_path: Path
) -> None:
    result = cli(module, *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert expected in result.stderr
    if args == ["experiment=easyvqa_cp_hint"]:
        with_traceback = cli(
            module, *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, HYDRA_FULL_ERROR="1"
        )
        assert with_traceback.returncode == 1
        assert "Traceback" in with_traceback.stderr


@pytest.mark.slow
def test_a_run_prints_no_tips_nor_library_deprecations_but_real_warnings(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    result = cli(
        "hint_lightning.train",
        "experiment=easyvqa_cp_updn",
        f"paths.data_dir={easyvqa_data_dir}",
        f"hydra.run.dir={tmp_path / 'run'}",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "💡" not in output and "Tip:" not in output
    assert "LeafSpec" not in output
    assert "smaller than the logging interval" in output  # a real warning stays


# --------------------------------------------------------------------------------- sweeps
def test_a_missing_optimized_metric_only_fails_a_sweeper_that_needs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from hint_lightning.utils.runtime import optimized_value

    metrics = {"test/acc": 50.0, "train/loss": 1.0}
    assert optimized_value({"val/acc": 93.5}, "val/acc", None) == 93.5
    basic = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    with caplog.at_level(logging.WARNING):
        assert optimized_value(metrics, "val/acc", basic) is None
        assert optimized_value(metrics, "val/acc", None) is None
    assert "optimized_metric='val/acc' was not logged" in caplog.text
    optuna = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    with pytest.raises(ValueError) as caught:
        optimized_value(metrics, "val/acc", optuna)
    message = str(caught.value)
    assert "OptunaSweeper" in message and "trainer.val_check_interval" in message
    assert optimized_value(metrics, None, optuna) is None


@pytest.mark.slow
def test_basic_sweep_goes_on_when_validation_never_ran(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    result = cli(
        "hint_lightning.train",
        "-m",
        "experiment=easyvqa_cp_updn",
        f"paths.data_dir={easyvqa_data_dir}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "seed=0,1",
        *QUICK,
        "trainer.limit_train_batches=4",
        "++trainer.max_steps=2",  # stops mid-epoch, before the first validation
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "optimized_metric='val/acc' was not logged" in result.stdout + result.stderr
    for job in ("0", "1"):
        assert "test/acc" in json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())


@pytest.mark.slow
def test_optuna_sweep_fails_with_how_to_make_validation_run(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    result = cli(
        "hint_lightning.train",
        "-m",
        "experiment=easyvqa_cp_updn",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.direction=maximize",
        f"paths.data_dir={easyvqa_data_dir}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *QUICK,
        "trainer.limit_train_batches=4",
        "++trainer.max_steps=2",  # stops mid-epoch, before the first validation
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "trainer.val_check_interval" in result.stderr
