"""Input x gradient: ``sum_i P_ri * d score / d P_ri``.

The gradient scaled by the input (Shrikumar et al. 2016, "Not just a black box"; Captum's
``InputXGradient``), summed over the feature dimension: one signed score per proposal. It is
integrated gradients with a zero baseline and a one-step path.
"""

from __future__ import annotations

from torch import Tensor

from hint_lightning.importance.base import ForwardFn, ImportanceMethod
from hint_lightning.importance.gradient import input_gradient


class InputXGradient(ImportanceMethod):
    """``sum_i P_ri * d score / d P_ri``; equals Captum's ``InputXGradient`` summed over features.

    Example:
        >>> import torch
        >>> weights = torch.tensor([0.5, -1.0])
        >>> score = lambda p, m: (p * weights).sum(dim=(1, 2))
        >>> InputXGradient().attribute(score, torch.tensor([[[2.0, 1.0], [0.0, 3.0]]]))
        tensor([[ 0., -3.]])
    """

    name = "input_x_gradient"
    uses_gradients = True

    def forward_passes(self, num_proposals: int) -> int:
        """One forward (and one backward) pass."""
        return 1

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        gradient = input_gradient(forward_fn, proposals, proposal_mask, create_graph, repr(self))
        return (proposals * gradient).sum(dim=-1)
