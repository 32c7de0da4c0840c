"""Instantiate the named-node groups of the config (callbacks, loggers)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every child with a ``_target_`` of a ``{name: {_target_: ...}}`` group.

    A missing, empty or null group gives an empty list, so ``callbacks=none`` or
    ``logger=null`` just work, and an experiment can drop one entry with ``~callbacks.name``.
    """
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(f"expected a mapping of named nodes, got {type(group).__name__}")
    return [
        instantiate(node)
        for node in group.values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]
