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

from hint_lightning.checkpoints import load_weights, read_checkpoint
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.modules.base import CHECKPOINT_KEY
from hint_lightning.train import CONFIG_DIR, results_entries
from hint_lightning.utils.instantiate import instantiate_group
from hint_lightning.utils.io import write_json
from hint_lightning.utils.report import print_metrics

log = logging.getLogger(__name__)


def stored_run(ckpt_path: str) -> tuple[DictConfig, VQADataInfo | CaptionDataInfo]:
    """The training config and data info stored in one of our checkpoints.

    Raises:
        ValueError: naming the file, when it was not written by ``hint_lightning.train``.
    """
    payload = read_checkpoint(ckpt_path).get(CHECKPOINT_KEY)
    if not payload or not payload.get("config"):
        raise ValueError(
            f"{ckpt_path} holds no hint_lightning run config: was it written by "
            "`python -m hint_lightning.train`?"
        )
    info = payload["data_info"]
    if "vocab" in info:  # a captioning checkpoint
        return OmegaConf.create(payload["config"]), CaptionDataInfo.from_dict(info)
    data_info = VQADataInfo(
        answers=tuple(info["answers"]),
        tokens=tuple(info["tokens"]),
        feature_dim=int(info["feature_dim"]),
        max_proposals=int(info["max_proposals"]),
        name=str(info.get("name", "vqa")),
    )
    return OmegaConf.create(payload["config"]), data_info


def _vocabulary(info: VQADataInfo | CaptionDataInfo) -> tuple[str, ...]:
    """The answers (VQA) or the caption vocabulary (captioning) a model is tied to."""
    return info.vocab if isinstance(info, CaptionDataInfo) else info.answers


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``.

    Returns:
        The metrics as floats (keys ``{split}/...``) plus ``output_dir`` and ``results``.
    """
    split = cfg.get("split", "test")
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    run_cfg, stored_info = stored_run(cfg.ckpt_path)
    data_cfg = OmegaConf.merge(run_cfg.data, cfg.get("data") or {})
    datamodule: pl.LightningDataModule = instantiate(data_cfg)
    datamodule.prepare_data()
    datamodule.setup("test")
    if _vocabulary(datamodule.info) != _vocabulary(stored_info):
        raise ValueError(
            f"the answer vocabulary of the data ({datamodule.info.name}) differs from the one "
            f"{cfg.ckpt_path} was trained with: evaluate it on the data it was trained for"
        )
    # Overrides of the stored model config, e.g. another importance method for the grounding
    # metrics: +model.eval_importance=integrated_gradients
    model_cfg = OmegaConf.merge(run_cfg.model, cfg.get("model") or {})
    model = instantiate(model_cfg, _partial_=True)(objective=None, data_info=stored_info)
    load_weights(model, cfg.ckpt_path)
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
    out = Path(trainer.default_root_dir)
    results_path = out / f"{split}_results.json"
    if trainer.is_global_zero:
        write_json(results_path, results_entries(model, sort=True), indent=None)
        write_json(out / "metrics.json", {"ckpt_path": str(cfg.ckpt_path), **metrics})
        print_metrics(metrics, title=f"{Path(cfg.ckpt_path).name} on {split}")
    return {**metrics, "output_dir": str(out), "results": str(results_path)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
