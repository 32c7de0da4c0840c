"""What transformer importance methods read from a forward pass: the attention maps.

A backbone that declares ``returns_internals = True`` records, during a forward pass run inside
its ``record_internals()`` context, the attention weights of every layer into a
:class:`TransformerInternals`; the modules offer it to importance methods as the ``internals``
capability of a :class:`~hint_lightning.importance.base.DecisionFunction`::

    scores, internals = forward_fn.internals(proposals, proposal_mask)   # [B], TransformerInternals

The maps stay in the autograd graph, so a method can take ``d score / d A`` (Grad-CAM on
attention, Chefer et al.'s relevance) and keep it differentiable (``create_graph=True``) for
training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["TransformerInternals", "attention_gradients", "call_internals", "layer_tokens"]


@dataclass
class TransformerInternals:
    """The attention maps of one forward pass of a single-stream transformer.

    Attributes:
        attentions: one ``[B, heads, L, L]`` map per layer, first layer first (row = query,
            column = key; 0 for masked keys), in the autograd graph.
        proposal_start: index of the first proposal (patch) token in the sequence; the
            proposals are ``[proposal_start, proposal_start + N)``.
        query_index: the token whose decision is explained (``[CLS]``: 0).
        layer_tokens: one ``[B, N, H]`` tensor per layer, first layer first: the proposal
            (patch) tokens at that layer's input, in the autograd graph as the path the pass
            took (a gradient with respect to one is the decision's gradient there).
        attention_maps: whether the pass records ``attentions`` (False: only ``layer_tokens``,
            and a backbone may skip the rows of its last layer that the decision does not read).
    """

    attentions: list[Tensor] = field(default_factory=list)
    proposal_start: int = 0
    query_index: int = 0
    layer_tokens: list[Tensor] = field(default_factory=list)
    attention_maps: bool = True

    def proposal_columns(self, num_proposals: int) -> slice:
        """The proposals' columns (keys) of a map."""
        return slice(self.proposal_start, self.proposal_start + num_proposals)


def call_internals(
    forward_fn: object, proposals: Tensor, mask: Tensor, where: str
) -> tuple[Tensor, TransformerInternals]:
    """``forward_fn.internals(proposals, mask)``, checked.

    Raises:
        ValueError: naming ``where`` when it returns no scores ``[B]`` or no attention maps.
    """
    scores, internals = forward_fn.internals(proposals, mask)  # type: ignore[attr-defined]
    rows = proposals.shape[0]
    if not isinstance(scores, Tensor) or tuple(scores.shape) != (rows,):
        raise ValueError(f"{where}: forward_fn.internals must return scores of shape ({rows},)")
    if not isinstance(internals, TransformerInternals) or not (
        internals.attentions or internals.layer_tokens
    ):
        raise ValueError(f"{where}: the forward pass recorded no attention maps or layer tokens")
    return scores, internals


def attention_gradients(
    scores: Tensor, attentions: list[Tensor], create_graph: bool
) -> list[Tensor]:
    """``d scores.sum() / d A_l`` for every map (zeros where a map does not reach the scores).

    Rows are independent, so each row's gradient is its own score's.
    """
    if not scores.requires_grad:
        return [torch.zeros_like(a) for a in attentions]
    return list(
        torch.autograd.grad(
            scores.sum(), attentions, create_graph=create_graph, materialize_grads=True
        )
    )


def layer_tokens(recorded: list[Tensor], layer: int, where: str) -> Tensor:
    """The recorded ``[B, N, H]`` tokens at the input of ``layer``, or a one-line error."""
    if not -len(recorded) <= layer < len(recorded):
        raise ValueError(
            f"{where}: layer {layer} does not exist: the backbone recorded the tokens of "
            f"{len(recorded)} layers"
        )
    return recorded[layer]
