"""Building blocks shared by the UpDn models: weight-normed linear layers and MLPs."""

from __future__ import annotations

from torch import nn
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


class FCNet(nn.Sequential):
    """Weight-normed linear layer followed by a ReLU: the UpDn ``FCNet`` with one layer.

    Shapes:
        input ``[..., in_features]`` -> output ``[..., out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [weight_normed_linear(in_features, out_features), nn.ReLU()]
        super().__init__(*layers)
