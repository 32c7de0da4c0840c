"""Rebuild objects from a config we *loaded* (a checkpoint's run config) through an allow-list.

A checkpoint's stored run config is data anyone can write: instantiating its ``_target_``
entries as they are would run any importable callable (e.g. write a module into the working
directory, then import it). Every loader of a stored config (``evaluate``, ``viz``, the
notebooks' helpers, ``train ckpt_path=`` and ``init_from=``) therefore goes through
:func:`check_stored_config` first, and builds only through :func:`safe_instantiate`.

The rule (one :class:`TargetRule` per package, in :data:`TARGET_RULES`): a ``_target_`` is
allowed only if

1. it is a plain dotted name (identifiers, no ``__dunder__`` part) inside a package of a rule
   (our own ``hint_lightning.{models,modules,objectives,importance,data}``, and the optimizers
   and schedulers of ``torch.optim``) -- this is checked on the string, *before anything is
   imported*, for every ``_target_`` of the checked tree, nested ones included; then
2. it names a class defined in that package (``__module__`` inside it, so a name re-exported
   from elsewhere is refused) that subclasses one of the rule's bases (``nn.Module``,
   ``LightningModule``, ``LightningDataModule``, ``torch.optim.Optimizer``, ``LRScheduler``);
   functions are never allowed. Importance methods subclass
   :class:`hint_lightning.importance.base.ImportanceMethod`.

Interpolations (``${...}``, hence custom resolvers such as ``oc.env``) are refused anywhere in
a stored config: ``train`` stores its config resolved, so a stored config has none. A new kind
of configurable class (e.g. an importance method with its own base class) is one more rule or
one more base in :data:`TARGET_RULES`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hint_lightning.utils.cli_errors import ConfigError

__all__ = [
    "TARGET_RULES",
    "TargetRule",
    "UnsafeConfigError",
    "check_stored_config",
    "safe_instantiate",
    "stored_targets",
]


@dataclass(frozen=True)
class TargetRule:
    """Classes of ``package`` (and its subpackages) that subclass one of ``bases``.

    Attributes:
        package: a dotted package name, e.g. ``"hint_lightning.models"``.
        bases: dotted names of the base classes a target must subclass (imported only when a
            target of this package is checked).
    """

    package: str
    bases: tuple[str, ...]

    def covers(self, target: str) -> bool:
        """Whether the dotted name ``target`` lies inside this rule's package."""
        return target == self.package or target.startswith(self.package + ".")


_MODULE = "torch.nn.Module"
TARGET_RULES: tuple[TargetRule, ...] = (
    TargetRule("hint_lightning.models", (_MODULE,)),
    TargetRule("hint_lightning.modules", ("pytorch_lightning.LightningModule", _MODULE)),
    TargetRule("hint_lightning.objectives", (_MODULE,)),
    TargetRule(
        "hint_lightning.importance", ("hint_lightning.importance.base.ImportanceMethod", _MODULE)
    ),
    TargetRule("hint_lightning.data", ("pytorch_lightning.LightningDataModule",)),
    TargetRule("torch.optim.lr_scheduler", ("torch.optim.lr_scheduler.LRScheduler",)),
    TargetRule("torch.optim", ("torch.optim.Optimizer",)),
)
"""The allow-list of targets a stored config may name (the first rule that covers it applies)."""

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


class UnsafeConfigError(ConfigError):
    """A stored config names a target outside the allow-list, or holds an interpolation."""


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Yield ``(path, key, value)`` for every entry of a nested mapping/sequence tree."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, str(key), value
            yield from _walk(value, child)
    elif isinstance(node, Sequence) and not isinstance(node, str | bytes):
        for index, value in enumerate(node):
            child = f"{path}[{index}]"
            yield child, "", value
            yield from _walk(value, child)


def _plain(tree: Any) -> Any:
    """A DictConfig as plain containers *without resolving it*; other values as they are."""
    if OmegaConf.is_config(tree):
        return OmegaConf.to_container(tree, resolve=False)
    return tree


def stored_targets(tree: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every ``(path, value)`` of a ``_target_`` key in ``tree``, nested ones included.

    Example:
        >>> stored_targets({"model": {"_target_": "a.B", "net": {"_target_": "a.C"}}})
        [('model._target_', 'a.B'), ('model.net._target_', 'a.C')]
    """
    return [(p, value) for p, key, value in _walk(_plain(tree), path) if key == "_target_"]


def _rule_for(target: str) -> TargetRule | None:
    return next((rule for rule in TARGET_RULES if rule.covers(target)), None)


def _import_class(dotted: str) -> Any:
    module_name, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def _refuse(source: str, path: str, target: Any, why: str) -> UnsafeConfigError:
    return UnsafeConfigError(
        f"{source}: refused target {path}={target!r} ({why}); a stored config may only name "
        "hint_lightning's models, modules, objectives, importance methods and data modules, "
        "and torch.optim optimizers and schedulers"
    )


def _check_name(source: str, path: str, target: Any) -> TargetRule:
    """Step 1, on the string only: nothing is imported."""
    if not isinstance(target, str) or not _DOTTED.fullmatch(target):
        raise _refuse(source, path, target, "not a dotted class name")
    if any(part.startswith("__") for part in target.split(".")):
        raise _refuse(source, path, target, "names a private attribute")
    rule = _rule_for(target)
    if rule is None:
        raise _refuse(source, path, target, "outside the allow-list")
    return rule


def _check_class(source: str, path: str, target: str, rule: TargetRule) -> None:
    """Step 2: the name is inside an allowed package, so importing it runs only our code."""
    try:
        cls = _import_class(target)
    except (ImportError, AttributeError) as error:
        raise _refuse(source, path, target, f"cannot be imported: {error}") from None
    if not isinstance(cls, type) or not rule.covers(cls.__module__):
        raise _refuse(source, path, target, f"not a class defined in {rule.package}")
    bases = tuple(_import_class(base) for base in rule.bases)
    if not issubclass(cls, bases):
        names = " or ".join(base.rpartition(".")[2] for base in rule.bases)
        raise _refuse(source, path, target, f"not a subclass of {names}")


def check_stored_config(tree: Any, source: str, path: str = "") -> None:
    """Refuse a loaded config unless every ``_target_`` in it is allowed and it interpolates
    nothing.

    Every target name is checked against :data:`TARGET_RULES` before any of them is imported;
    only then are the (allowed) classes imported and their base classes checked.

    Args:
        tree: the loaded config (plain containers or an unresolved DictConfig).
        source: what it was loaded from (the checkpoint path), for the message.
        path: the dotted path of ``tree`` inside the stored config, for the message.

    Raises:
        UnsafeConfigError: naming ``source`` and the refused target or interpolation.
    """
    plain = _plain(tree)
    for where, key, value in _walk(plain, path):
        for text in (key, value):
            if isinstance(text, str) and "${" in text:
                raise UnsafeConfigError(
                    f"{source}: refused interpolation {where}={text!r} (a stored config is "
                    "resolved when it is saved, so it never holds one)"
                )
    targets = stored_targets(plain, path)
    rules = [_check_name(source, where, target) for where, target in targets]
    for (where, target), rule in zip(targets, rules, strict=True):
        _check_class(source, where, target, rule)


def safe_instantiate(node: Any, source: str, path: str = "", **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)`` after :func:`check_stored_config`.

    Args:
        node: a node of a loaded config (e.g. the stored ``data`` config).
        source: what it was loaded from, for the message.
        path: its dotted path in the stored config (e.g. ``"data"``), for the message.
        **kwargs: passed to ``instantiate`` (e.g. ``_partial_=True``).
    """
    check_stored_config(node, source, path)
    config = node if isinstance(node, DictConfig) else OmegaConf.create(node)
    return instantiate(config, **kwargs)
