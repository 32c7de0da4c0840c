"""Compose the training config in-process (for drivers such as the demo, and for tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from hint_lightning.train import CONFIG_DIR


def compose_train_config(
    overrides: Sequence[str], output_dir: str | os.PathLike[str], root_dir: str | None = None
) -> DictConfig:
    """The ``train.yaml`` config with ``overrides``, outside a Hydra run.

    Outside ``@hydra.main`` there is no Hydra runtime, so the paths that default to it are
    set here: ``paths.root_dir`` (default: the current directory) and ``paths.output_dir``.

    Args:
        overrides: Hydra command-line overrides, e.g. ``["experiment=easyvqa_cp_updn"]``.
        output_dir: where the run writes its checkpoints, logs and metrics.
        root_dir: the project root (``data/`` and ``logs/`` live below it).
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train.yaml", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(Path(root_dir or os.getcwd()).resolve())
        cfg.paths.output_dir = str(Path(output_dir).resolve())
    return cfg
