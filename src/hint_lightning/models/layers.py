"""Building blocks shared by the UpDn models: weight-normed linear layers and MLPs."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


def weight_normed_linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer with weight normalization over the whole weight matrix (UpDn reference).

    Args:
        in_features: input size.
        out_features: output size.

    Returns:
        An ``nn.Linear`` whose weight is parametrized as ``g * v / ||v||`` with a scalar ``g``.
    """
    return weight_norm(nn.Linear(in_features, out_features), dim=None)


class FCNet(nn.Module):
    """Weight-normed linear layer followed by a ReLU: the UpDn ``FCNet`` with one layer.

    It can also apply an exact per-row *input shift* without forming it: adding ``t`` to the
    first ``shift_dims`` input features of a row changes the pre-activation by
    ``t * W[:, :shift_dims].sum(dim=1)``, since ``W (x + t 1) = W x + t (W 1)``. The derivative of
    the output with respect to ``t`` is then the input gradient summed over those features,
    which is what network importance needs, at the cost of a vector instead of a matrix product.

    Shapes:
        ``x [..., in_features]``, ``shift [...]`` -> ``[..., out_features]``.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = weight_normed_linear(in_features, out_features)

    def forward(
        self, x: Tensor, shift: Tensor | None = None, shift_dims: int | None = None
    ) -> Tensor:
        """``relu(W x + b)``, with ``x[..., :shift_dims] += shift[..., None]`` applied exactly."""
        pre_activation = self.linear(x)
        if shift is not None:
            direction = self.linear.weight[:, :shift_dims].sum(dim=1)
            pre_activation = pre_activation + shift.unsqueeze(-1) * direction
        return torch.relu(pre_activation)


def masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """Softmax over ``dim`` restricted to ``mask``; a row with nothing unmasked is all zeros.

    Masked entries get the dtype's lowest finite value before the softmax, which gives them
    exactly 0 whenever their row has an unmasked entry (the same numbers as ``-inf``), and a
    finite uniform row otherwise, which the mask then zeroes: no NaN in the output or in its
    gradient, even for a row whose every proposal is masked (importance methods and
    faithfulness metrics remove every proposal of a row).

    Args:
        scores: ``[..., N]`` scores.
        mask: bool, the shape of ``scores`` (True: keep), or None (keep everything).
        dim: the dimension to normalize over.

    Example:
        >>> masked_softmax(torch.zeros(2, 2), torch.tensor([[True, True], [False, False]]))
        tensor([[0.5000, 0.5000],
                [0.0000, 0.0000]])
    """
    if mask is None:
        return torch.softmax(scores, dim=dim)
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=dim) * mask
