"""Chefer et al.'s relevance for self-attention (ICCV 2021, "Generic Attention-model
Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers"; public code
hila-chefer/Transformer-MM-Explainability).

For a single-stream (joint) transformer only the self-attention rule applies. Starting from the
identity ``R = I`` (``[L, L]``, each token relevant to itself), every layer ``l`` (first to
last) updates

    Ā_l = mean_h( max(G_l ⊙ A_l, 0) ),  G_l = d score / d A_l
    R  <- R + Ā_l R

and the importance of proposal token ``k`` is ``R[CLS, k]``. Class-specific through the
gradients; differentiable with ``create_graph=True`` (RobustViT trains on it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.importance.base import ForwardFn, ImportanceMethod, require_grad_mode
from hint_lightning.importance.internals import attention_gradients, call_internals

__all__ = ["CheferRelevance", "relevance"]


def relevance(attentions: list[Tensor], gradients: list[Tensor], start_layer: int = 0) -> Tensor:
    """``[B, L, L]`` relevance of ``[B, heads, L, L]`` maps and their gradients."""
    first = attentions[0]
    length = first.shape[-1]
    eye = torch.eye(length, dtype=first.dtype, device=first.device)
    result = eye.expand(first.shape[0], length, length)
    for attention, gradient in list(zip(attentions, gradients, strict=True))[start_layer:]:
        weighted = (gradient * attention).clamp(min=0).mean(dim=1)
        result = result + weighted @ result
    return result


class CheferRelevance(ImportanceMethod):
    """Chefer et al.'s relevance, ``[CLS]`` row at the proposal tokens (module docstring).

    Args:
        start_layer: the first layer propagated.
    """

    name = "chefer_relevance"
    uses_gradients = True

    def __init__(self, start_layer: int = 0) -> None:
        self.start_layer = int(start_layer)

    @property
    def requires(self) -> frozenset[str]:
        """The attention maps of every layer (``internals``)."""
        return frozenset({"internals"})

    def forward_passes(self, num_proposals: int) -> int:
        """One forward and one backward pass."""
        return 1

    def _arguments(self) -> dict[str, object]:
        return {"start_layer": self.start_layer}

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        require_grad_mode(repr(self))
        scores, internals = call_internals(forward_fn, proposals, proposal_mask, repr(self))
        gradients = attention_gradients(scores, internals.attentions, create_graph)
        relevant = relevance(internals.attentions, gradients, self.start_layer)
        columns = internals.proposal_columns(proposals.shape[1])
        return relevant[:, internals.query_index, columns].to(proposals.dtype)
