"""Evaluate a checkpoint: ``python -m hint_lightning.evaluate ckpt_path=PATH [split=test|val]``.

The model and data configs come from the checkpoint itself (stored by ``train``), so a
checkpoint is all you need. Writes, in the run's output directory, ``metrics.json`` and the
official results file ``{split}_results.json`` (VQA: ``[{"question_id": int, "answer": str}]``,
captioning: ``[{"image_id": int, "caption": str}]``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hint_lightning.checkpoints import CheckpointError, load_weights, read_checkpoint
from hint_lightning.modules.metric_suite import suite_config
from hint_lightning.named_tests import run_named_tests
from hint_lightning.stored_run import StoredRun, build_datamodule, build_model, read_run
from hint_lightning.suite_outputs import write_suite_outputs
from hint_lightning.train import CONFIG_DIR, results_entries
from hint_lightning.utils.cli_errors import ConfigError, report_user_errors
from hint_lightning.utils.console import quiet_console
from hint_lightning.utils.instantiate import instantiate_group
from hint_lightning.utils.io import write_json
from hint_lightning.utils.report import print_metrics

log = logging.getLogger(__name__)


def stored_run(ckpt_path: str, checkpoint: dict[str, Any] | None = None) -> tuple[DictConfig, Any]:
    """The training config and data info stored in one of our checkpoints.

    The config keeps the sections a run is rebuilt from (``data``, ``model``, ``objective``)
    and the top-level values; every ``_target_`` in it is on the allow-list (see
    :mod:`hint_lightning.stored_run`).

    Raises:
        CheckpointError: naming the file, when it is incomplete, or was not written by
            ``hint_lightning.train``.
        UnsafeConfigError: naming the file and the target, when its config names a target
            outside the allow-list (or holds an interpolation).
    """
    run = _checked_run(ckpt_path, checkpoint)
    return run.config, run.data_info


def _check_rebuildable(run: StoredRun) -> None:
    """Refuse a stored run without the data or model config evaluation rebuilds from."""
    missing = [section for section in ("data", "model") if not run.config.get(section)]
    if missing:
        producer = f"task_name={run.config.get('task_name', '?')}"
        if run.config.get("seed") is not None:
            producer += f", seed={run.config.get('seed')}"
        raise CheckpointError(
            f"{run.source}: the run that produced it ({producer}) stored no {' or '.join(missing)} "
            "config, which evaluation rebuilds the data and model from: evaluate a checkpoint "
            "written by `python -m hint_lightning.train` of this version, or re-train that run"
        )


def _checked_run(ckpt_path: str, checkpoint: dict[str, Any] | None = None) -> StoredRun:
    run = read_run(ckpt_path, checkpoint)
    if run is None:
        raise CheckpointError(
            f"{ckpt_path} holds no hint_lightning run config: was it written by "
            "`python -m hint_lightning.train`?"
        )
    return run


def _vocabulary(info: Any) -> tuple[Any, ...]:
    """The answers (VQA), caption vocabulary or number of classes a model is tied to."""
    for name in ("vocab", "answers"):
        if hasattr(info, name):
            return tuple(getattr(info, name))
    return (getattr(info, "num_classes", None),)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``.

    Returns:
        The metrics as floats (keys ``{split}/...``) plus ``output_dir`` and ``results``.
    """
    quiet_console()
    split = cfg.get("split", "test")
    if split not in ("test", "val"):
        raise ConfigError(f"split must be 'test' or 'val', got split={split!r}")
    checkpoint = read_checkpoint(cfg.ckpt_path)
    run = _checked_run(cfg.ckpt_path, checkpoint)  # refuses foreign or unsafe runs
    _check_rebuildable(run)
    datamodule: pl.LightningDataModule = build_datamodule(run, cfg.get("data") or {})
    datamodule.prepare_data()
    datamodule.setup("test")
    if _vocabulary(datamodule.info) != _vocabulary(run.data_info):
        raise ConfigError(
            f"the answer vocabulary of the data ({getattr(datamodule.info, 'name', 'data')}) "
            f"differs from the one {cfg.ckpt_path} was trained with: evaluate it on the data "
            "it was trained for"
        )
    # Overrides of the stored model config, e.g. another importance method for the grounding
    # metrics: model.eval_importance=integrated_gradients
    model = build_model(run, cfg.get("model") or {})
    if hasattr(model, "configure_metric_suite"):  # metrics=[plausibility,faithfulness,fpvg]
        data_cfg = OmegaConf.merge(run.config.get("data") or {}, cfg.get("data") or {})
        seed = run.config.get("seed")
        model.configure_metric_suite(
            suite_config(cfg.get("metrics"), data_cfg),
            split=split,
            constants={} if seed is None else {"seed": seed},
        )
    load_weights(model, cfg.ckpt_path, checkpoint)
    del checkpoint
    trainer: pl.Trainer = instantiate(
        cfg.trainer, logger=instantiate_group(cfg.get("logger")) or False, callbacks=[]
    )
    # The datamodule (not a ready loader) goes to the trainer, so that under DDP its loaders are
    # built after the processes have started and shard each question exactly once.
    datamodule.test_split = split
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {
        f"{split}/{key.split('/', 1)[1]}": float(value)
        for key, value in trainer.callback_metrics.items()
        if key.startswith("test/")
    }
    if split == "test":
        metrics.update(run_named_tests(trainer, model, datamodule))  # decoy_vqa's test splits
    metrics.update(getattr(model, "suite_results", None) or {})  # removal curves as lists
    out = Path(trainer.default_root_dir)
    results_path = out / f"{split}_results.json"
    if trainer.is_global_zero:
        title = str(run.config.get("task_name", "run"))
        metrics.update(write_suite_outputs(metrics, out, trainer.loggers, title))
        write_json(results_path, results_entries(model, sort=True), indent=None)
        write_json(out / "metrics.json", {"ckpt_path": str(cfg.ckpt_path), **metrics})
        shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
        print_metrics(shown, title=f"{Path(cfg.ckpt_path).name} on {split}")
    return {**metrics, "output_dir": str(out), "results": str(results_path)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval.yaml")
@report_user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
