"""Input x gradient on patch tokens, in one pass: ``sum_h t_kh * d score / d t_kh``.

The gradient of the decision scaled by the token (Shrikumar et al. 2016; Captum's
``InputXGradient`` summed over the token dimension), for a ViT whose proposals are its patch
tokens after the embedding (:class:`~hint_lightning.models.vit_vqa.ViTVQA`). Unlike the summed
gradient it does not vanish on pre-norm transformers (see
:mod:`hint_lightning.importance.token_gradient`), and it is the Grad-CAM-style
"activation x gradient" relevance that AMC and Chefer et al. build on.

It is a single-pass gradient method: in training the module's main pass carries the tokens
themselves as the probe (not a detached copy, so the patch embedding learns from the grounding
term too), and the importance is one double-backward away, as HINT's gradient is
(``times_input``; :func:`hint_lightning.objectives.context.probe_gradient`). Called directly
(:meth:`attribute`), it equals :class:`~hint_lightning.importance.input_x_gradient.InputXGradient`.

**At a later layer** (``layer``: e.g. -1, the input of the last encoder layer): the same formula
on the patch tokens entering that layer, Grad-CAM's choice of the last layer's activations
(Selvaraju et al. 2017; for ViTs, the last block's tokens, as pytorch-grad-cam's ViT recipe and
Captum's ``LayerGradientXActivation`` on that block's input). It needs the backbone's internals
(:meth:`~hint_lightning.models.vit_vqa.ViTVQA.record_internals` records the tokens at every
layer's input). In training the main pass carries those tokens as the probe, so HINT's double
backward runs through the last layer only, not through every layer down to the embedding:
the cheap variant on deep stacks (``python -m benchmarks.bench_vit`` measures both).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.importance.base import ForwardFn, require_grad_mode
from hint_lightning.importance.gradient import Gradient, input_gradient
from hint_lightning.importance.internals import call_internals, layer_tokens

__all__ = ["TokenInputXGradient"]


class TokenInputXGradient(Gradient):
    """``sum_h t_kh * d score / d t_kh`` (module docstring).

    Args:
        layer: None: the patch tokens after the embedding (the proposals); an int: the patch
            tokens at the input of that encoder layer (Python index, -1: the last), which needs
            the backbone's ``internals``.

    Example:
        >>> import torch
        >>> score = lambda p, m: (p * torch.tensor([0.5, -1.0])).sum(dim=(1, 2))
        >>> TokenInputXGradient().attribute(score, torch.tensor([[[2.0, 1.0], [0.0, 3.0]]]))
        tensor([[ 0., -3.]])
    """

    name = "token_input_x_gradient"
    times_input = True
    """The probe's gradient is multiplied by the probe (the tokens) before the sum."""

    def __init__(self, layer: int | None = None) -> None:
        super().__init__(use_shift=False)
        self.layer = None if layer is None else int(layer)

    @property
    def requires(self) -> frozenset[str]:
        """Nothing for the embedded tokens; the backbone's internals at a later layer."""
        return frozenset() if self.layer is None else frozenset({"internals"})

    def _arguments(self) -> dict[str, object]:
        return {} if self.layer is None else {"layer": self.layer}

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        if self.layer is None:
            gradient = input_gradient(
                forward_fn, proposals, proposal_mask, create_graph, repr(self)
            )
            return (proposals * gradient).sum(dim=-1)
        require_grad_mode(repr(self))
        with torch.enable_grad():
            points = proposals if proposals.requires_grad else proposals.detach()
            scores, internals = call_internals(forward_fn, points, proposal_mask, repr(self))
            tokens = layer_tokens(internals.layer_tokens, self.layer, repr(self))
            if not scores.requires_grad:
                return proposals.new_zeros(proposals.shape[:2])
            (gradient,) = torch.autograd.grad(
                scores.sum(), tokens, create_graph=create_graph, materialize_grads=True
            )
        return (tokens * gradient).sum(dim=-1).to(proposals.dtype)
