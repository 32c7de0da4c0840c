"""Train (and test) a model: ``python -m hint_lightning.train experiment=...``.

``train(cfg)`` does the work and returns the metrics, so tests and drivers (the demo, sweeps)
call it in-process; ``main`` is the thin Hydra entry point around it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from hint_lightning.build import build_model, option_name
from hint_lightning.checkpoints import load_weights, read_checkpoint
from hint_lightning.modules.metric_suite import suite_config
from hint_lightning.named_tests import run_named_tests
from hint_lightning.stored_run import read_run
from hint_lightning.utils.cli_errors import report_user_errors
from hint_lightning.utils.console import quiet_console
from hint_lightning.utils.instantiate import instantiate_group
from hint_lightning.utils.io import write_json
from hint_lightning.utils.report import print_metrics
from hint_lightning.utils.runtime import (
    check_config,
    configure_wandb,
    finish_wandb,
    optimized_value,
    register_resolvers,
    sweeper_target,
)
from hint_lightning.utils.settings_checks import check_resume_matches

log = logging.getLogger(__name__)

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
"""The repository's ``conf/`` folder (the package is installed editable from the checkout)."""

register_resolvers()


def build_objective(cfg: DictConfig) -> Any:
    """The configured grounding objectives: ``objective`` (one; empty for ``objective=none``)
    and the named ``objectives.<name>`` (``+objective@objectives.<name>=<name>``), combined
    into one :class:`~hint_lightning.objectives.combination.ObjectiveSet` (None: plain training).
    """
    from hint_lightning.objectives.combination import ObjectiveSet

    nodes = {"objective": cfg.get("objective")} if cfg.get("objective") else {}
    nodes |= {f"objectives.{k}": v for k, v in (cfg.get("objectives") or {}).items()}
    built = {}
    for key, node in nodes.items():
        try:
            built[key] = instantiate(node)
        except Exception as error:  # Hydra wraps the constructor's TypeError
            raise ValueError(
                f"{key} does not build ({error}); objective= takes one objective: add more "
                "with +objective@objectives.<name>=<name>"
            ) from None
    single = built.pop("objective", None)
    return ObjectiveSet.build(single, {k.split(".", 1)[1]: v for k, v in built.items()})


def _read_start_checkpoints(cfg: DictConfig) -> dict[str, Any] | None:
    """Check ``ckpt_path`` and ``init_from`` before anything else runs.

    Both are read (an incomplete file is one clear error) and their stored run config is
    checked against the allow-list; a ``ckpt_path`` must come from this same run.

    Returns:
        The content of ``init_from`` (its weights are loaded later), or None.
    """
    if cfg.get("ckpt_path"):
        resumed = read_checkpoint(cfg.ckpt_path)
        run = read_run(cfg.ckpt_path, resumed)
        stored = None if run is None else OmegaConf.to_container(run.config)
        check_resume_matches(str(cfg.ckpt_path), stored, cfg)
        del resumed  # Lightning reads it again when fitting
    if not cfg.get("init_from"):
        return None
    initial = read_checkpoint(cfg.init_from)
    read_run(cfg.init_from, initial)
    return initial


def _metrics_to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        key: float(value.item() if isinstance(value, torch.Tensor) else value)
        for key, value in sorted(metrics.items())
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the model and test it, as configured.

    Args:
        cfg: the composed ``train.yaml`` config.

    Returns:
        The final metrics (``val/...``, ``test/...`` as floats), plus ``output_dir``,
        ``ckpt/best`` and ``ckpt/last`` (paths as strings, empty when absent).
    """
    quiet_console()
    check_config(cfg)
    initial = _read_start_checkpoints(cfg)
    configure_wandb(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    # Objects built here are passed after instantiation: Hydra would turn them into configs.
    model = build_model(
        cfg.model, datamodule.info, build_objective(cfg), option_name("data", cfg.data)
    )
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    if hasattr(model, "configure_metric_suite"):  # metrics=[...]: the evaluation suite
        stages = list(cfg.get("metrics_stages") or ["test"])
        options = suite_config(cfg.get("metrics"), cfg.data)
        model.configure_metric_suite(options, stages, strict=False)  # no human importance: warn
    if hasattr(model, "initialize_from_data") and model.initialize_from_data(datamodule):
        log.info("Initialized the word embeddings from the prepared word vectors")
    if cfg.get("init_from"):
        load_weights(model, cfg.init_from, initial)
        log.info("Initialized the weights from %s", cfg.init_from)

    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in trainer.loggers:
        logger.log_hyperparams(model.run_config)

    metrics: dict[str, Any] = {}
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        metrics.update(trainer.callback_metrics)

    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") or ""
    last = getattr(checkpoint, "last_model_path", "") or ""
    if cfg.get("test", True):
        wanted = cfg.get("test_ckpt", "best")
        ckpt_path = best if wanted == "best" and best else None
        if wanted == "best" and not best:
            log.warning("No best checkpoint (no monitored metric): testing the last weights")
        trainer.test(
            model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, verbose=False
        )
        metrics.update(trainer.callback_metrics)
        metrics.update(run_named_tests(trainer, model, datamodule))  # decoy_vqa's test splits
        _write_test_outputs(trainer, model)

    result: dict[str, Any] = _metrics_to_floats(metrics)
    result.update(getattr(model, "suite_results", None) or {})  # with the removal curves
    _log_results_table(trainer, result)
    result.update(
        {"output_dir": str(trainer.default_root_dir), "ckpt/best": best, "ckpt/last": last}
    )
    _suite_outputs(trainer, result, title=str(cfg.get("task_name", "train")))
    _report(trainer, result, title=str(cfg.get("task_name", "train")))
    return result


def results_entries(model: Any, sort: bool = False) -> list[dict[str, Any]]:
    """The official results file of the model's last test run.

    VQA: ``[{"question_id", "answer"}]`` (by question id with ``sort``); a module with
    ``results_entries()`` (captioning: ``[{"image_id", "caption"}]``) says its own.
    """
    entries = getattr(model, "results_entries", None)
    if callable(entries):
        return list(entries())
    predictions = getattr(model, "test_predictions", None) or {}
    pairs = sorted(predictions.items()) if sort else predictions.items()
    return [{"question_id": qid, "answer": answer} for qid, answer in pairs]


@rank_zero_only
def _write_test_outputs(trainer: pl.Trainer, model: Any) -> None:
    """Write the official results file of the test split (``test_results.json``)."""
    results = results_entries(model)
    if results:
        write_json(Path(trainer.default_root_dir) / "test_results.json", results, indent=None)


@rank_zero_only
def _log_results_table(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """The final metrics as a W&B table (one row per metric), for every W&B logger."""
    from pytorch_lightning.loggers import WandbLogger

    rows = [[name, value] for name, value in sorted(metrics.items()) if "/" in name]
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and rows:
            logger.log_table(key="results", columns=["metric", "value"], data=rows)


@rank_zero_only
def _suite_outputs(trainer: pl.Trainer, result: dict[str, Any], title: str) -> None:
    """The removal-curve plot and the suite's W&B tables (``hint_lightning.suite_outputs``)."""
    from hint_lightning.suite_outputs import write_suite_outputs

    result.update(write_suite_outputs(result, trainer.default_root_dir, trainer.loggers, title))


@rank_zero_only
def _report(trainer: pl.Trainer, result: dict[str, Any], title: str) -> None:
    write_json(Path(trainer.default_root_dir) / "metrics.json", result)
    print_metrics({k: v for k, v in result.items() if isinstance(v, float)}, title=title)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train.yaml")
@report_user_errors
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: train, then return the metric that sweepers optimize."""
    try:
        metrics = train(cfg)
    finally:
        finish_wandb()
    return optimized_value(metrics, cfg.get("optimized_metric"), sweeper_target())


if __name__ == "__main__":
    main()
