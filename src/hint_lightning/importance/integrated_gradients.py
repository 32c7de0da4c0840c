"""Integrated gradients: the gradient integrated along the straight path from a baseline.

``IG_r = sum_i (P_ri - P'_ri) * int_0^1 d score / d P_ri (P' + a (P - P')) da`` (Sundararajan et
al. 2017, "Axiomatic attribution for deep networks"), summed over the feature dimension. The
integral is a quadrature with Captum's rules (``captum.attr.IntegratedGradients``; its
``approximation_methods``): ``gausslegendre`` (Captum's default), ``riemann_left``,
``riemann_right``, ``riemann_middle`` and ``riemann_trapezoid`` (whose weights, as Captum's,
are ``1 / n_steps`` with both ends halved). The ``n_steps`` path points of the whole batch are
evaluated copy-major, ``max_batch_rows`` rows per forward call.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from hint_lightning.importance.base import (
    DEFAULT_MAX_BATCH_ROWS,
    ForwardFn,
    ImportanceMethod,
    check_max_batch_rows,
    check_positive,
    copy_chunks,
)
from hint_lightning.importance.gradient import input_gradient
from hint_lightning.importance.replacement import REPLACEMENTS, replacement_values, tile_batch

QUADRATURES = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)
"""The quadrature rules, as Captum names them."""

BASELINES = tuple(name for name in REPLACEMENTS if name != "drop")
"""Named baselines: the replacement values of :mod:`hint_lightning.importance.replacement`."""


def quadrature(method: str, n_steps: int) -> tuple[Tensor, Tensor]:
    """Points and weights of a quadrature rule on ``[0, 1]``.

    Args:
        method: one of :data:`QUADRATURES`.
        n_steps: number of points (at least 2 for the Riemann rules, as in Captum).

    Returns:
        ``(alphas [n_steps], weights [n_steps])`` in float64.

    Example:
        >>> alphas, weights = quadrature("riemann_middle", 2)
        >>> alphas.tolist(), weights.tolist()
        ([0.25, 0.75], [0.5, 0.5])
    """
    if method not in QUADRATURES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(QUADRATURES)}")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)
    if n_steps < 2:
        raise ValueError(f"{method} needs n_steps >= 2, got {n_steps}")
    steps = torch.arange(n_steps, dtype=torch.float64)
    weights = torch.full((n_steps,), 1 / n_steps, dtype=torch.float64)
    if method == "riemann_trapezoid":
        weights[[0, -1]] /= 2
        return steps / (n_steps - 1), weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (steps + offset) / n_steps, weights


def check_baseline(baseline: str | float, owner: str) -> str | float:
    """Return ``baseline`` if it is a number or one of :data:`BASELINES`."""
    if isinstance(baseline, bool) or not isinstance(baseline, str | int | float):
        raise ValueError(f"{owner}: baseline must be a number or a name, got {baseline!r}")
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise ValueError(
            f"{owner}: unknown baseline {baseline!r}; choose a number or one of "
            f"{', '.join(BASELINES)}"
        )
    return baseline


def baseline_values(proposals: Tensor, proposal_mask: Tensor, baseline: str | float) -> Tensor:
    """The baseline ``P' [B, N, D]``: a constant, or a replacement of every proposal."""
    if isinstance(baseline, str):
        return replacement_values(proposals, proposal_mask, baseline)
    return torch.full_like(proposals, float(baseline))


class IntegratedGradients(ImportanceMethod):
    """Integrated gradients summed over features; equals Captum's ``IntegratedGradients``.

    Args:
        n_steps: quadrature points (forward passes per sample).
        baseline: a number (every feature of the baseline) or the name of a replacement
            (``zeros``, ``mean``, ``shuffle``, ``negative_ones``; see
            :mod:`hint_lightning.importance.replacement`).
        method: the quadrature rule, one of :data:`QUADRATURES`.
        max_batch_rows: at most this many rows per forward call (None: all at once).

    Example:
        >>> score = lambda p, m: (p**2).sum(dim=(1, 2))  # IG from 0 of x^2 is x^2: exact here
        >>> IntegratedGradients(n_steps=2).attribute(score, torch.tensor([[[1.0, 2.0]]]))
        tensor([[5.]])
    """

    name = "integrated_gradients"
    uses_gradients = True

    def __init__(
        self,
        n_steps: int = 50,
        baseline: str | float = "zeros",
        method: str = "gausslegendre",
        max_batch_rows: int | None = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        owner = type(self).__name__
        self.n_steps = check_positive(n_steps, "n_steps", owner)
        self.baseline = check_baseline(baseline, owner)
        self.method = method
        self.alphas, self.weights = quadrature(method, n_steps)
        self.max_batch_rows = check_max_batch_rows(max_batch_rows, owner)

    def forward_passes(self, num_proposals: int) -> int:
        """``n_steps`` forward (and backward) passes."""
        return self.n_steps

    def _arguments(self) -> dict[str, object]:
        return {"n_steps": self.n_steps, "baseline": self.baseline, "method": self.method}

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        batch = proposals.shape[0]
        start_point = baseline_values(proposals, proposal_mask, self.baseline)
        delta = proposals - start_point
        alphas = self.alphas.to(proposals)
        weights = self.weights.to(proposals)
        path_gradient = torch.zeros_like(proposals)
        for start, stop in copy_chunks(self.n_steps, batch, self.max_batch_rows):
            steps = alphas[start:stop].view(-1, 1, 1, 1)
            points = (start_point + steps * delta).flatten(0, 1)
            mask = tile_batch(proposal_mask, points.shape[0])
            gradient = input_gradient(forward_fn, points, mask, create_graph, repr(self))
            gradient = gradient.view(stop - start, *proposals.shape)
            path_gradient = path_gradient + (weights[start:stop].view(-1, 1, 1, 1) * gradient).sum(
                0
            )
        return (delta * path_gradient).sum(dim=-1)
