"""A small classifier over image patches (proposals), for HINT beyond VQA.

An MLP over the flattened ``[N, D]`` proposals, as in Ross et al. (2017), who used two hidden
layers on MNIST. It has no attention, ignores proposal masks and offers no proposal shift:
gradient importance takes the reference path (the gradient with respect to the ``[B, N, D]``
proposal features), and methods or objectives that need attention or masking are refused at
start-up.
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchMLP(nn.Module):
    """Classify an image from its patches.

    Args:
        num_proposals: N.
        feature_dim: D, features (pixels) per proposal.
        num_classes: C.
        hidden_dim: width of the two hidden layers.
        dropout: dropout after each hidden layer.
    """

    supports_proposal_shift = False
    supports_proposal_mask = False
    returns_attention = False

    def __init__(
        self,
        num_proposals: int,
        feature_dim: int,
        num_classes: int,
        hidden_dim: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(start_dim=1),
            nn.Linear(num_proposals * feature_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_classes),
        )

    def forward(self, proposals: Tensor) -> Tensor:
        """Logits ``[B, C]`` of proposals ``[B, N, D]``."""
        return self.layers(proposals)
