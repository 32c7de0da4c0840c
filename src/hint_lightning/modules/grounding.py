"""Importance methods for a grounded module: choosing them, and checking at start-up that the
backbone and the task can serve what the chosen methods and objectives need.

``model.train_importance`` and ``model.eval_importance`` name an importance method of
:mod:`hint_lightning.importance` (``gradient``, the default: today's network importance), or
give ``{name: ..., <its arguments>}``, or an instantiated method (a ``_target_`` node of
``conf/importance/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hint_lightning.importance import Gradient, ImportanceMethod, get_method
from hint_lightning.models.protocol import BackboneCapabilities
from hint_lightning.objectives.combination import ObjectiveSet

__all__ = [
    "check_grounding",
    "is_single_pass_gradient",
    "method_capabilities",
    "probe_kind",
    "resolve_importance",
]


def resolve_importance(spec: Any, option: str = "model.train_importance") -> ImportanceMethod:
    """An importance method from a name, a ``{name, **arguments}`` mapping or a method.

    Raises:
        ValueError: naming ``option`` for an unknown name (listing the available ones) or
            arguments the method does not take.
    """
    if isinstance(spec, ImportanceMethod):
        return spec
    if spec is None:
        spec = "gradient"
    arguments: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        arguments = {str(k): v for k, v in spec.items() if k not in ("name", "_target_")}
        if "name" not in spec:
            raise ValueError(f"{option} must name its method: {{name: gradient, ...}}")
        spec = spec["name"]
    if not isinstance(spec, str):
        raise ValueError(f"{option} must be a method name, got {type(spec).__name__}")
    try:
        return get_method(spec, **arguments)
    except TypeError as error:
        raise ValueError(f"{option}={spec}: {error}") from None
    except ValueError as error:
        raise ValueError(f"{option}: {error}") from None


def is_single_pass_gradient(method: Any) -> bool:
    """Whether ``method`` is plain gradient importance, which a probe in the module's own
    forward pass can serve (no extra pass)."""
    return isinstance(method, Gradient)


def method_capabilities(caps: BackboneCapabilities, fast_importance: bool = True) -> set[str]:
    """The capabilities (``hint_lightning.importance.CAPABILITIES`` names) a backbone offers
    to importance methods; ``fast_importance=False`` withholds the shift path."""
    offered = set()
    if caps.mask:
        offered.add("mask")
    if caps.attention:
        offered.add("attention")
    if caps.internals:
        offered.add("internals")
    if caps.shift and fast_importance:
        offered.add("with_shift")
    return offered


def probe_kind(method: Any, caps: BackboneCapabilities, fast_importance: bool = True) -> str | None:
    """The probe the base pass carries for ``method``: ``"shift"`` (the exact fast path),
    ``"features"`` (the reference path: gradient with respect to ``[B, N, D]``), ``"layer"``
    (the tokens at the input of the method's ``layer``, recorded by the backbone's internals),
    or None (not a single-pass method: importance runs extra passes)."""
    if not is_single_pass_gradient(method):
        return None
    if getattr(method, "layer", None) is not None:
        return "layer"
    if caps.shift and fast_importance and getattr(method, "use_shift", True):
        return "shift"
    return "features"


def check_grounding(
    objectives: ObjectiveSet | None,
    train_method: ImportanceMethod,
    eval_method: ImportanceMethod,
    caps: BackboneCapabilities,
    decision_kinds: frozenset[str],
    task: str,
    grounding_metrics: bool,
    fast_importance: bool = True,
) -> None:
    """Refuse, with one message, what the backbone or the task cannot serve.

    Args:
        objectives: the objectives (None: plain training).
        train_method: the training importance method.
        eval_method: the evaluation importance method.
        caps: the backbone's capabilities.
        decision_kinds: the decisions the task offers (``ground_truth``, ``predicted``,
            ``wrong``).
        task: the task's name (for messages).
        grounding_metrics: whether evaluation takes importance.
        fast_importance: whether the shift path may be used.

    Raises:
        ValueError: naming the objective, the method and the missing capability.
    """
    offered = method_capabilities(caps, fast_importance)
    where = f"backbone {caps.name}"
    for name, objective in (objectives.active() if objectives else {}).items():
        needs = objective.requires
        if "attention" in needs and not caps.attention:
            raise ValueError(
                f"objective {name} needs the backbone's attention weights, and {where} "
                "returns none (returns_attention = False): choose another objective or a "
                "backbone with attention"
            )
        if "mask" in needs and not caps.mask:
            raise ValueError(
                f"objective {name} switches proposals off through proposal_mask, which {where} "
                "does not honour (supports_proposal_mask = False)"
            )
        if "wrong_answers" in needs and "wrong" not in decision_kinds:
            raise ValueError(
                f"objective {name} compares the ground truth with wrong answers, and task "
                f"{task} has no wrong answers (it offers decisions: "
                f"{', '.join(sorted(decision_kinds))})"
            )
        if "importance" in needs:
            try:
                train_method.check_capabilities(offered, where)
            except ValueError as error:
                raise ValueError(
                    f"objective {name} with model.train_importance={train_method!r}: {error}"
                ) from None
    if grounding_metrics:
        try:
            eval_method.check_capabilities(offered, where)
        except ValueError as error:
            raise ValueError(
                f"model.eval_importance={eval_method!r} (grounding metrics): {error}; or set "
                "model.grounding_metrics=false"
            ) from None
