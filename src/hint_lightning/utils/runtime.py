"""Run-time guards and environment set-up shared by the entry points."""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_info


def is_multirun() -> bool:
    """Whether the current Hydra job is part of a ``-m`` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


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
        ValueError: a fine-tuning experiment (``finetune: true``) without ``init_from``, or
            multirun combined with ``strategy=ddp`` on several devices (Lightning
            relaunches every rank with the original argv, so each rank would run its own
            sweep), unless ``allow_multirun_ddp=true``.
    """
    if cfg.get("finetune") and not cfg.get("init_from") and not cfg.get("ckpt_path"):
        raise ValueError(
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
        raise ValueError(
            f"Hydra multirun with strategy={strategy} on {devices} devices is refused: Lightning "
            "relaunches every rank with the original command line, so each rank would run its "
            "own copy of the sweep. Use trainer.strategy=ddp_spawn for sweeps, launch one "
            "single-run job per point (e.g. hydra/launcher=slurm), or set "
            "allow_multirun_ddp=true if your launcher runs one job per node."
        )


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
