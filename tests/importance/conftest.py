"""A tiny attention model over proposals, in float64: the model every importance test explains.

::

    h_r   = tanh(P_r W + c)                     [B, N, H]
    a     = softmax_r(<h_r, q>) over real proposals (all zero when none is real)
    score = <tanh(sum_r a_r h_r + q), v>        [B]

``q`` is a per-sample "question" captured by the forward function, which tiles it to the rows
it receives (copy-major, as the contract asks). The model offers every capability: the mask,
``with_shift`` (``(P_r + t_r 1) W = P_r W + t_r W.sum(0)``, exact) and its attention ``a``.
An empty proposal set scores ``<tanh(q), v>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from hint_lightning.importance import DecisionFunction
from hint_lightning.importance.replacement import tile_batch


@dataclass
class TinyModel:
    """The tiny model's parameters; ``q`` holds one row per sample of the explained batch."""

    weight: Tensor  # W [D, H]
    bias: Tensor  # c [H]
    question: Tensor  # q [B, H]
    readout: Tensor  # v [H]

    def _hidden(self, proposals: Tensor, shift: Tensor | None = None) -> Tensor:
        pre = proposals @ self.weight + self.bias
        if shift is not None:
            pre = pre + shift.unsqueeze(-1) * self.weight.sum(dim=0)
        return torch.tanh(pre)

    def _attention(self, hidden: Tensor, mask: Tensor) -> Tensor:
        question = tile_batch(self.question, hidden.shape[0])
        logits = (hidden * question.unsqueeze(1)).sum(-1)
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=1) * mask

    def _score(self, hidden: Tensor, mask: Tensor) -> Tensor:
        question = tile_batch(self.question, hidden.shape[0])
        context = (self._attention(hidden, mask).unsqueeze(-1) * hidden).sum(dim=1)
        return torch.tanh(context + question) @ self.readout

    def score(self, proposals: Tensor, mask: Tensor) -> Tensor:
        """The plain forward function: ``[B', N, D], [B', N] -> [B']``."""
        return self._score(self._hidden(proposals), mask)

    def score_with_shift(self, proposals: Tensor, mask: Tensor, shift: Tensor) -> Tensor:
        """``score(proposals + shift[..., None], mask)`` without forming the sum."""
        return self._score(self._hidden(proposals, shift), mask)

    def attention(self, proposals: Tensor, mask: Tensor) -> Tensor:
        """The attention weights ``[B', N]``."""
        return self._attention(self._hidden(proposals), mask)

    def decision_function(self, **overrides: object) -> DecisionFunction:
        """The model as a :class:`DecisionFunction` offering every capability."""
        capabilities: dict = {"with_shift": self.score_with_shift, "attention": self.attention}
        capabilities.update(overrides)
        return DecisionFunction(self.score, **capabilities)


def make_tiny_model(batch: int = 3, dim: int = 5, hidden: int = 3, seed: int = 0) -> TinyModel:
    """A :class:`TinyModel` with random float64 parameters."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    return TinyModel(draw(dim, hidden), draw(hidden), draw(batch, hidden), draw(hidden))


def make_proposals(batch: int = 3, slots: int = 4, dim: int = 5, seed: int = 1) -> Tensor:
    """Random float64 proposals ``[B, N, D]``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, slots, dim, generator=generator, dtype=torch.float64)


@pytest.fixture
def tiny() -> Callable[..., TinyModel]:
    """:func:`make_tiny_model`."""
    return make_tiny_model


@pytest.fixture
def proposals_of() -> Callable[..., Tensor]:
    """:func:`make_proposals`."""
    return make_proposals


@pytest.fixture
def ragged_mask() -> Tensor:
    """A ``[3, 4]`` mask: 4, 3 and 2 real proposals."""
    return torch.tensor(
        [[True, True, True, True], [True, True, True, False], [True, False, True, False]]
    )
