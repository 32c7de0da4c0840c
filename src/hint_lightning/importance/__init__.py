"""Importance methods: one score per proposal for a decision, one class per method.

Every method follows :class:`~hint_lightning.importance.base.ImportanceMethod`'s call::

    method.attribute(forward_fn, proposals, proposal_mask=None, *, create_graph=False) -> [B, N]

:data:`METHODS` maps each name (the file name in ``conf/importance/``) to its class;
:func:`get_method` builds one by name.
"""

from __future__ import annotations

from typing import Any

from hint_lightning.importance.attention import Attention
from hint_lightning.importance.attention_gradcam import AttentionGradCAM
from hint_lightning.importance.attention_rollout import AttentionRollout
from hint_lightning.importance.base import (
    CAPABILITIES,
    DecisionFunction,
    ImportanceMethod,
    capabilities,
)
from hint_lightning.importance.chefer_relevance import CheferRelevance
from hint_lightning.importance.expected_gradients import ExpectedGradients, VisFISExpectedGradients
from hint_lightning.importance.gradient import Gradient
from hint_lightning.importance.input_x_gradient import InputXGradient
from hint_lightning.importance.integrated_gradients import IntegratedGradients
from hint_lightning.importance.keep_one_in import KeepOneIn
from hint_lightning.importance.kernel_shap import KernelShap
from hint_lightning.importance.leave_one_out import LeaveOneOut
from hint_lightning.importance.token_gradient import TokenGradient
from hint_lightning.importance.token_input_x_gradient import TokenInputXGradient

METHODS: dict[str, type[ImportanceMethod]] = {
    cls.name: cls
    for cls in (
        Gradient,
        InputXGradient,
        IntegratedGradients,
        ExpectedGradients,
        VisFISExpectedGradients,
        LeaveOneOut,
        KeepOneIn,
        KernelShap,
        Attention,
        TokenGradient,
        TokenInputXGradient,
        AttentionGradCAM,
        AttentionRollout,
        CheferRelevance,
    )
}
"""Every importance method, by name."""


def get_method(name: str, **kwargs: Any) -> ImportanceMethod:
    """Build the importance method called ``name`` with its keyword arguments.

    Raises:
        ValueError: for an unknown name, listing the available ones.

    Example:
        >>> get_method("gradient", use_shift=False)
        Gradient(use_shift=False)
    """
    if name not in METHODS:
        raise ValueError(f"unknown importance method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name](**kwargs)


__all__ = [
    "CAPABILITIES",
    "METHODS",
    "Attention",
    "AttentionGradCAM",
    "AttentionRollout",
    "CheferRelevance",
    "DecisionFunction",
    "ExpectedGradients",
    "Gradient",
    "ImportanceMethod",
    "InputXGradient",
    "IntegratedGradients",
    "KeepOneIn",
    "KernelShap",
    "LeaveOneOut",
    "TokenGradient",
    "TokenInputXGradient",
    "VisFISExpectedGradients",
    "capabilities",
    "get_method",
]
