"""The run stored in one of our checkpoints, and the model and data rebuilt from it.

``train`` stores in every checkpoint the run's resolved config and the data's info (see
:class:`hint_lightning.modules.base.GroundedModule`). This module is the only way the package
reads them back: :func:`read_run` keeps the sections a run is rebuilt from (``data``,
``model``, ``objective``) and the top-level plain values (``task_name``, ``seed``...), drops the
others unread (``trainer``, ``callbacks``, ``logger``: evaluation never builds them from a file,
so a custom callback used in training does not block evaluating its checkpoint), and checks
every ``_target_`` of the kept sections against the allow-list of
:mod:`hint_lightning.utils.safe_config` before anything else happens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hint_lightning.build import build_model as _build_model
from hint_lightning.checkpoints import CheckpointError, read_checkpoint
from hint_lightning.modules.base import CHECKPOINT_KEY
from hint_lightning.utils.safe_config import check_stored_config

__all__ = [
    "REBUILT_SECTIONS",
    "StoredRun",
    "build_datamodule",
    "build_model",
    "data_info_from_dict",
    "read_run",
]

REBUILT_SECTIONS: tuple[str, ...] = ("data", "model", "objective")
"""The stored config sections that are kept (and checked); other mappings are dropped."""


@dataclass(frozen=True)
class StoredRun:
    """A checkpoint's stored run.

    Attributes:
        source: the checkpoint path (for messages).
        config: the kept part of the run config (checked: allowed targets, no interpolation).
        data_info: the data info the model was built with.
    """

    source: str
    config: DictConfig
    data_info: Any


def data_info_from_dict(info: Mapping[str, Any]) -> Any:
    """The data info dataclass of a stored ``dataclasses.asdict`` payload.

    Captioning (``vocab``), classification (``num_classes``) or VQA (``answers``).
    """
    from hint_lightning.data.batch import VQADataInfo
    from hint_lightning.data.caption_batch import CaptionDataInfo

    if "vocab" in info:
        return CaptionDataInfo.from_dict(info)
    if "num_classes" in info:
        from hint_lightning.data.decoy_digits import DecoyDigitsInfo

        return DecoyDigitsInfo(**{key: int(value) for key, value in info.items()})
    return VQADataInfo(
        answers=tuple(str(answer) for answer in info["answers"]),
        tokens=tuple(str(token) for token in info["tokens"]),
        feature_dim=int(info["feature_dim"]),
        max_proposals=int(info["max_proposals"]),
        name=str(info.get("name", "vqa")),
    )


def _kept(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in config.items()
        if key in REBUILT_SECTIONS or not isinstance(value, Mapping | list | tuple)
    }


def read_run(
    ckpt_path: str | os.PathLike[str], checkpoint: Mapping[str, Any] | None = None
) -> StoredRun | None:
    """The checked run stored in a checkpoint, or None when it stores none.

    Args:
        ckpt_path: the checkpoint file.
        checkpoint: its content when already loaded (else it is read).

    Raises:
        CheckpointError: the file is incomplete or unsafe, or its stored run is malformed.
        UnsafeConfigError: its config names a target outside the allow-list or interpolates.
    """
    if checkpoint is None:
        checkpoint = read_checkpoint(ckpt_path)
    payload = checkpoint.get(CHECKPOINT_KEY)
    if not payload or not payload.get("config"):
        return None
    config, info = payload.get("config"), payload.get("data_info")
    if not isinstance(config, Mapping) or not isinstance(info, Mapping):
        raise CheckpointError(f"{ckpt_path}: the stored run config or data info is not a mapping")
    kept = _kept(config)
    check_stored_config(kept, str(ckpt_path))
    try:
        data_info = data_info_from_dict(info)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{ckpt_path}: malformed stored data info ({error!r})") from None
    return StoredRun(str(ckpt_path), OmegaConf.create(kept), data_info)


def build_datamodule(run: StoredRun, overrides: Mapping[str, Any] | None = None) -> Any:
    """The run's DataModule (not yet prepared), with ``overrides`` (the user's) merged in.

    Args:
        run: from :func:`read_run`.
        overrides: options given on the command line, e.g. ``{"data_dir": "/elsewhere"}``.
    """
    check_stored_config(run.config.data, run.source, "data")
    data_cfg = OmegaConf.merge(run.config.data, overrides or {})
    return instantiate(data_cfg)


def build_model(run: StoredRun, overrides: Mapping[str, Any] | None = None) -> pl.LightningModule:
    """The run's LightningModule with fresh weights (no objective); load them separately.

    Args:
        run: from :func:`read_run`.
        overrides: options given on the command line, merged into the stored model config,
            e.g. ``{"eval_importance": "integrated_gradients"}`` to judge another importance
            method. The stored part is checked against the allow-list before the merge.
    """
    check_stored_config(run.config.model, run.source, "model")
    model_cfg = OmegaConf.merge(run.config.model, overrides or {})
    return _build_model(model_cfg, run.data_info, objective=None)
