"""Run-time guards and environment set-up shared by the entry points."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_info

from hint_lightning.utils.cli_errors import ConfigError
from hint_lightning.utils.settings_checks import (
    check_objective_weights,
    check_training_length,
    objective_nodes,
)

log = logging.getLogger(__name__)

WORKERS_RESOLVER = "machine_workers"
"""``${machine_workers:4}``: DataLoader workers for this machine (see :func:`machine_workers`)."""


def is_multirun() -> bool:
    """Whether the current Hydra job is part of a ``-m`` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def machine_workers(cap: int | str = 4) -> int:
    """DataLoader workers for this machine: ``min(cap, cores - 1)``, at least 0.

    One core stays with the training process, so a 2-core machine gets 1 worker instead of
    the 4 that made PyTorch warn. Configs use it as ``num_workers: ${machine_workers:4}``;
    ``data.num_workers=N`` overrides it.
    """
    return max(0, min(int(cap), cpu_cores() - 1))


def register_resolvers() -> None:
    """Register our config resolvers (idempotent; imported with the entry points)."""
    if not OmegaConf.has_resolver(WORKERS_RESOLVER):
        OmegaConf.register_new_resolver(WORKERS_RESOLVER, machine_workers)


def _devices_count(devices: object) -> int:
    if isinstance(devices, int):
        return devices if devices >= 0 else 2  # -1: all devices, i.e. possibly several
    if isinstance(devices, str):
        return 2 if devices in ("auto", "-1") else len(devices.split(","))
    try:
        return len(devices)  # type: ignore[arg-type]
    except TypeError:
        return 1


def check_config(cfg: DictConfig) -> None:
    """Refuse configurations that are known to go wrong, with a message that says what to do.

    Raises:
        ConfigError: a negative grounding weight or a run that trains nothing (see
            :mod:`hint_lightning.utils.settings_checks`).
        ValueError: a fine-tuning experiment (``finetune: true``) without ``init_from``, or
            multirun combined with ``strategy=ddp`` on several devices (Lightning
            relaunches every rank with the original argv, so each rank would run its own
            sweep), unless ``allow_multirun_ddp=true``.
    """
    check_objective_weights(
        objective_nodes(cfg.get("objective"))
        + objective_nodes(cfg.get("objectives"), path="objectives")
    )
    check_training_length(cfg)
    if cfg.get("finetune") and not cfg.get("init_from") and not cfg.get("ckpt_path"):
        raise ConfigError(
            f"{cfg.get('task_name', 'this experiment')} fine-tunes a trained baseline: pass "
            "init_from=/path/to/baseline.ckpt (e.g. checkpoints/last.ckpt of the matching "
            "*_updn experiment)"
        )
    trainer = cfg.get("trainer") or {}
    strategy = str(trainer.get("strategy", "auto"))
    devices = _devices_count(trainer.get("devices", 1)) * int(trainer.get("num_nodes", 1))
    if (
        is_multirun()
        and strategy.startswith("ddp")
        and strategy != "ddp_spawn"
        and devices > 1
        and not cfg.get("allow_multirun_ddp", False)
    ):
        raise ConfigError(
            f"Hydra multirun with strategy={strategy} on {devices} devices is refused: Lightning "
            "relaunches every rank with the original command line, so each rank would run its "
            "own copy of the sweep. Use trainer.strategy=ddp_spawn for sweeps, launch one "
            "single-run job per point (e.g. hydra/launcher=slurm), or set "
            "allow_multirun_ddp=true if your launcher runs one job per node."
        )


def optimized_value(
    metrics: Mapping[str, Any], name: str | None, sweeper: str | None
) -> float | None:
    """The value a sweeper optimizes, ``metrics[name]``.

    When it was not logged (the run ended before its first validation), only a sweeper that
    needs the value fails; a single run or the basic sweeper (which ignores return values)
    warns and goes on.

    Args:
        metrics: the final metrics of the run.
        name: ``optimized_metric`` (None or empty: nothing to return).
        sweeper: the ``_target_`` of the multirun's sweeper, or None outside a multirun.

    Raises:
        ConfigError: for a sweeper other than the basic one (e.g. Optuna), saying how to make
            validation run.
    """
    if not name:
        return None
    if name in metrics:
        return float(metrics[name])
    logged = sorted(key for key in metrics if "/" in key)
    message = f"optimized_metric={name!r} was not logged (logged: {logged})"
    if sweeper is not None and not sweeper.endswith("BasicSweeper"):
        raise ConfigError(
            f"{message}, and the sweeper ({sweeper.rpartition('.')[2]}) needs it: the run "
            "ended before its first validation. Let validation run: train at least one full "
            "epoch (raise or remove trainer.max_steps, trainer.max_epochs >= "
            "trainer.check_val_every_n_epoch), or validate every N steps with "
            "trainer.val_check_interval=N"
        )
    log.warning("%s: nothing is returned to the sweeper", message)
    return None


def sweeper_target() -> str | None:
    """The ``_target_`` of the running multirun's sweeper, or None outside a multirun."""
    if not is_multirun():
        return None
    return str(HydraConfig.get().sweeper.get("_target_", ""))


def wandb_has_credentials() -> bool:
    """Whether W&B could log online: an API key in the environment or in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def configure_wandb(cfg: DictConfig) -> None:
    """Switch W&B to offline mode when no key is configured, and group sweep jobs.

    Sets ``logger.wandb.offline`` when neither ``WANDB_MODE`` nor credentials are present, and
    ``logger.wandb.group`` to the sweep directory's name in a multirun when it is empty.
    """
    logger = cfg.get("logger") or {}
    node = logger.get("wandb") if hasattr(logger, "get") else None
    if node is None:
        return
    if not wandb_has_credentials() and os.environ.get("WANDB_MODE") not in ("online",):
        node.offline = True
        rank_zero_info(
            "W&B: no API key found, logging offline. Upload later with: "
            f"wandb sync {Path(str(node.save_dir)) / 'wandb'}/offline-run-*"
        )
    if is_multirun() and not node.get("group"):
        node.group = f"{cfg.get('task_name', 'sweep')}-{Path(HydraConfig.get().sweep.dir).name}"


def finish_wandb() -> None:
    """Close the active W&B run, so the next multirun job starts its own."""
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        wandb.finish()
