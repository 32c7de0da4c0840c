"""Attention rollout (Abnar & Zuidema, ACL 2020, "Quantifying Attention Flow in Transformers").

Each layer's attention, averaged over heads, is mixed with the identity for the residual
connection and renormalized: ``Â_l = (A_l + I) / 2`` with rows rescaled to sum to 1; the
rollout is the product ``Â_L ... Â_1`` (first layer applied first, ``start_layer`` skips the
earliest ones), and the importance of proposal token ``k`` is the rollout's ``[CLS]`` row at
``k``. Class-agnostic (it reads no gradient); differentiable with ``create_graph=True`` through
the attention maps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.importance.base import ForwardFn, ImportanceMethod
from hint_lightning.importance.internals import call_internals

__all__ = ["AttentionRollout", "rollout"]


def rollout(attentions: list[Tensor], start_layer: int = 0) -> Tensor:
    """``[B, L, L]`` rollout of ``[B, heads, L, L]`` maps (module docstring)."""
    first = attentions[start_layer]
    length = first.shape[-1]
    eye = torch.eye(length, dtype=first.dtype, device=first.device)
    result = eye.expand(first.shape[0], length, length)
    for attention in attentions[start_layer:]:
        mixed = 0.5 * attention.mean(dim=1) + 0.5 * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed @ result
    return result


class AttentionRollout(ImportanceMethod):
    """Abnar & Zuidema's rollout, ``[CLS]`` row at the proposal tokens (module docstring).

    Args:
        start_layer: the first layer rolled out.
    """

    name = "attention_rollout"

    def __init__(self, start_layer: int = 0) -> None:
        self.start_layer = int(start_layer)

    @property
    def requires(self) -> frozenset[str]:
        """The attention maps of every layer (``internals``)."""
        return frozenset({"internals"})

    def forward_passes(self, num_proposals: int) -> int:
        """One forward pass (no backward)."""
        return 1

    def _arguments(self) -> dict[str, object]:
        return {"start_layer": self.start_layer}

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        with torch.enable_grad() if create_graph else torch.no_grad():
            _, internals = call_internals(forward_fn, proposals, proposal_mask, repr(self))
            flow = rollout(internals.attentions, self.start_layer)
        columns = internals.proposal_columns(proposals.shape[1])
        return flow[:, internals.query_index, columns].to(proposals.dtype)
