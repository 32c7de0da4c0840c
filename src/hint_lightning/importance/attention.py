"""The model's own attention weights over the proposals, as importance.

Not an attribution: what the model says it looks at (the quantity attention alignment
supervises, Selvaraju et al. 2019's baseline). It needs a forward function that offers
``attention`` (see :mod:`hint_lightning.importance.base`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.importance.base import ForwardFn, ImportanceMethod


class Attention(ImportanceMethod):
    """``forward_fn.attention(proposals, proposal_mask)``: ``[B, N]`` attention weights.

    Example:
        >>> from hint_lightning.importance.base import DecisionFunction
        >>> weights = lambda p, m: torch.softmax(p.sum(-1), dim=1)
        >>> decision = DecisionFunction(lambda p, m: p.sum((1, 2)), attention=weights)
        >>> Attention().attribute(decision, torch.zeros(1, 2, 3))
        tensor([[0.5000, 0.5000]])
    """

    name = "attention"

    @property
    def requires(self) -> frozenset[str]:
        """The forward function's ``attention``."""
        return frozenset({"attention"})

    def forward_passes(self, num_proposals: int) -> int:
        """One forward pass (no backward)."""
        return 1

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        with torch.enable_grad() if create_graph else torch.no_grad():
            weights = forward_fn.attention(proposals, proposal_mask)  # type: ignore[attr-defined]
        if not isinstance(weights, Tensor) or weights.shape != proposal_mask.shape:
            got = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
            raise ValueError(
                f"{self!r}: forward_fn.attention must return [B, N] = "
                f"{tuple(proposal_mask.shape)} weights, got {got}"
            )
        return weights.to(proposals.dtype)
