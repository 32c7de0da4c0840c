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
"""

from __future__ import annotations

from torch import Tensor

from hint_lightning.importance.base import ForwardFn
from hint_lightning.importance.gradient import Gradient, input_gradient

__all__ = ["TokenInputXGradient"]


class TokenInputXGradient(Gradient):
    """``sum_h t_kh * d score / d t_kh`` (module docstring).

    Example:
        >>> import torch
        >>> score = lambda p, m: (p * torch.tensor([0.5, -1.0])).sum(dim=(1, 2))
        >>> TokenInputXGradient().attribute(score, torch.tensor([[[2.0, 1.0], [0.0, 3.0]]]))
        tensor([[ 0., -3.]])
    """

    name = "token_input_x_gradient"
    times_input = True
    """The probe's gradient is multiplied by the probe (the tokens) before the sum."""

    def __init__(self) -> None:
        super().__init__(use_shift=False)

    def _arguments(self) -> dict[str, object]:
        return {}

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        gradient = input_gradient(forward_fn, proposals, proposal_mask, create_graph, repr(self))
        return (proposals * gradient).sum(dim=-1)
