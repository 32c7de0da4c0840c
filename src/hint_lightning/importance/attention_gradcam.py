"""Grad-CAM on a transformer's attention, as AMC computes it (Yang et al. CVPR 2023).

For the attention map ``A`` of one layer (the last by default) and its gradient
``G = d score / d A`` (``[B, heads, L, L]``), the importance of proposal token ``k`` is

    g_k = mean_h( A[h, q, k] * max(G[h, q, k], 0) )

for the query ``q`` whose decision is explained (``[CLS]``). AMC (public code
uvavision/AMC-grounding, ``models/model_pretrain.py``, building on ALBEF's Grad-CAM) takes it on
the cross-attention of its fusion layer, averaged over the text queries; in a single-stream
transformer the ``[CLS]`` row of the joint attention plays that role. AMC then clamps at 0 and
min-max normalizes per sample inside its loss (:mod:`hint_lightning.objectives.amc`); the method
returns the raw, non-negative map. Differentiable with ``create_graph=True`` (training).
"""

from __future__ import annotations

from torch import Tensor

from hint_lightning.importance.base import ForwardFn, ImportanceMethod, require_grad_mode
from hint_lightning.importance.internals import attention_gradients, call_internals

__all__ = ["AttentionGradCAM"]


class AttentionGradCAM(ImportanceMethod):
    """AMC's Grad-CAM on one layer's attention (module docstring).

    Args:
        layer: which layer's map (Python index; -1: the last).
    """

    name = "attention_gradcam"
    uses_gradients = True

    def __init__(self, layer: int = -1) -> None:
        self.layer = int(layer)

    @property
    def requires(self) -> frozenset[str]:
        """The attention maps of every layer (``internals``)."""
        return frozenset({"internals"})

    def forward_passes(self, num_proposals: int) -> int:
        """One forward and one backward pass."""
        return 1

    def _arguments(self) -> dict[str, object]:
        return {"layer": self.layer}

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        require_grad_mode(repr(self))
        scores, internals = call_internals(forward_fn, proposals, proposal_mask, repr(self))
        attention = internals.attentions[self.layer]
        (gradient,) = attention_gradients(scores, [attention], create_graph)
        columns = internals.proposal_columns(proposals.shape[1])
        row = internals.query_index
        cam = attention[:, :, row, columns] * gradient[:, :, row, columns].clamp(min=0)
        return cam.mean(dim=1).to(proposals.dtype)
