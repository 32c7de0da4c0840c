"""Settings that run without error but silently do the wrong thing, refused with one line each.

* a negative (or non-finite) grounding weight, on every objective node of the config (one
  objective or several: :func:`objective_nodes` finds them all);
* a training run that trains nothing (``trainer.max_epochs=0``...) and would then test the
  untrained model;
* ``ckpt_path=`` given a checkpoint of *another* run (e.g. the baseline's, where ``init_from=``
  was meant): resuming restores that run's optimizer state and learning rate, so the run would
  silently differ from its config.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hint_lightning.utils.cli_errors import ConfigError

__all__ = [
    "RESUME_COMPARED",
    "check_objective_weights",
    "check_resume_matches",
    "check_training_length",
    "config_differences",
    "objective_nodes",
]

RESUME_COMPARED: tuple[str, ...] = ("task_name", "model", "objective", "data")
"""Sections that must be the same in a checkpoint and in the run that resumes it."""
_HOW_TO_RUN_KEYS = frozenset({"num_workers", "pin_memory", "persistent_workers", "compile"})
"""Keys that may change on resume: where and how fast the run goes, not what it computes."""


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def objective_nodes(node: Any, path: str = "objective") -> list[tuple[str, Mapping[str, Any]]]:
    """Every configured objective under ``node``: ``(path, node)`` of each mapping with a
    ``_target_``, whether ``node`` is one objective, a list or a mapping of named objectives.

    Example:
        >>> objective_nodes({"hint": {"_target_": "H", "weight": 1}, "scr": {"_target_": "S"}})
        [('objective.hint', {'_target_': 'H', 'weight': 1}), ('objective.scr', {'_target_': 'S'})]
        >>> objective_nodes(None)
        []
    """
    node = _plain(node)
    if isinstance(node, Mapping):
        found = [(path, node)] if "_target_" in node else []
        for key, value in node.items():
            found += objective_nodes(value, f"{path}.{key}")
        return found
    if isinstance(node, Sequence) and not isinstance(node, str):
        return [item for i, v in enumerate(node) for item in objective_nodes(v, f"{path}[{i}]")]
    return []


def check_objective_weights(nodes: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """Refuse a grounding weight that is negative, not finite or not a number.

    Args:
        nodes: ``(path, objective config)`` pairs, e.g. from :func:`objective_nodes`.

    Raises:
        ConfigError: naming the option and its value, why, and what to use instead.
    """
    for path, node in nodes:
        if "weight" not in node:
            continue
        weight = node["weight"]
        option = f"{path}.weight={weight}"
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(f"{option} is not a number: give the weight of the term (>= 0)")
        if not math.isfinite(weight):
            raise ConfigError(f"{option} is not finite: give the weight of the term (>= 0)")
        if weight < 0:
            raise ConfigError(
                f"{option} is negative: the term is a loss to minimize, so a negative weight "
                "rewards disagreeing with human importance. Use a weight >= 0 (0 switches the "
                "term off); to train against inverted importance on purpose use "
                "data.importance_source=one_minus (e.g. experiment=easyvqa_cp_hint_one_minus)"
            )


def check_training_length(cfg: DictConfig) -> None:
    """Refuse a training run that trains nothing (and would then test the untrained model).

    Raises:
        ConfigError: for ``trainer.max_epochs=0``, ``trainer.max_steps=0`` or
            ``trainer.limit_train_batches=0`` while ``train`` is true.
    """
    if not cfg.get("train", True):
        return
    trainer = cfg.get("trainer") or {}
    for key in ("max_epochs", "max_steps", "limit_train_batches"):
        value = trainer.get(key)
        if value is not None and not isinstance(value, bool) and value == 0:
            raise ConfigError(
                f"trainer.{key}={value} trains nothing, and the run would then test the "
                "untrained model and write its results: give trainer.max_epochs >= 1 to "
                "train, or test a trained checkpoint with "
                "`python -m hint_lightning.evaluate ckpt_path=...`"
            )


def config_differences(stored: Any, current: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``(path, stored value, current value)`` of every differing leaf.

    Keys present on one side only are not compared (an option added or removed since the
    checkpoint was written), nor data paths (``*_dir``) and :data:`_HOW_TO_RUN_KEYS`.

    Example:
        >>> config_differences({"lr": 0.002, "data_dir": "/a"}, {"lr": 0.0002, "data_dir": "/b"})
        [('lr', 0.002, 0.0002)]
    """
    if isinstance(stored, Mapping) and isinstance(current, Mapping):
        found: list[tuple[str, Any, Any]] = []
        for key in sorted(set(stored) & set(current), key=str):
            if key in _HOW_TO_RUN_KEYS or str(key).endswith("_dir"):
                continue
            child = f"{path}.{key}" if path else str(key)
            found += config_differences(stored[key], current[key], child)
        return found
    return [] if stored == current else [(path, stored, current)]


def check_resume_matches(
    ckpt_path: str, stored: Mapping[str, Any] | None, cfg: DictConfig, shown: int = 3
) -> None:
    """Refuse resuming (``ckpt_path=``) a checkpoint written by a different run.

    Args:
        ckpt_path: the checkpoint given as ``ckpt_path``.
        stored: the run config stored in it (None: not ours, nothing to compare).
        cfg: the config of this run.
        shown: how many differences the message lists.

    Raises:
        ConfigError: listing the first differences and pointing to ``init_from=``.
    """
    if stored is None:
        return
    differences = [
        difference
        for section in RESUME_COMPARED
        if section in stored
        for difference in config_differences(stored.get(section), _plain(cfg.get(section)), section)
    ]
    if not differences:
        return
    listed = "; ".join(
        f"{where}: {old!r} in the checkpoint, {new!r} here"
        for where, old, new in differences[:shown]
    )
    more = f" (and {len(differences) - shown} more)" if len(differences) > shown else ""
    raise ConfigError(
        f"ckpt_path={ckpt_path} was written by a different run ({listed}{more}). ckpt_path "
        "resumes that same run, with its optimizer state and learning rate; to start this run "
        f"from the checkpoint's weights pass init_from={ckpt_path} instead"
    )
