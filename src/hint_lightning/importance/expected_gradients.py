"""Expected gradients, and the variant VisFIS trains with.

**Expected gradients** (Erion et al. 2021, "Improving performance of deep learning models with
axiomatic attribution priors and expected gradients", Nature Machine Intelligence; public code
suinleelab/attributionpriors, ``AttributionPriorExplainer`` with ``scale_by_inputs=True``)::

    EG_r = E_{P' ~ D, a ~ U(0, 1)} sum_i (P_ri - P'_ri) * d score / d P_ri (P' + a (P - P'))

estimated with ``n_samples`` draws per sample. Baselines ``P'`` are other samples' proposals:
draw ``k`` of sample ``b`` takes all ``N`` proposals of a sample ``b' != b`` of the same batch,
chosen uniformly (the batch stands in for the data distribution ``D``, as in Erion et al.'s
training, which draws references from the training set; its proposals keep sample ``b``'s
mask). Constant baselines (``zeros``, ``mean``, ``shuffle``, ``negative_ones``) turn it into
integrated gradients with random path points.

**VisFIS's variant** (Ying, Hase & Bansal 2022, zfying/visfis ``components/feature_impt.py``,
``model_importance == "expected_gradient"`` with ``gradcam_type == "sum"``): the average of the
gradient summed over features at the same random path points, *without* the ``(P - P')``
factor, and with the replacement of every proposal as baseline (``negative_ones``, VisFIS's
default ``replace_func``). Without the factor it is a smoothed gradient, so it can take the
exact proposal-shift path like :class:`~hint_lightning.importance.gradient.Gradient`.

Draws (``a`` per sample and draw, and the partner samples) come from ``generator``, or from a
generator seeded once with ``seed`` (reproducible sequences), or else from torch's global
generator (seeded by ``seed_everything``); :meth:`ExpectedGradients.draw` exposes them.
"""

from __future__ import annotations

from typing import NamedTuple

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
from hint_lightning.importance.gradient import input_gradient, summed_gradient
from hint_lightning.importance.integrated_gradients import baseline_values, check_baseline
from hint_lightning.importance.replacement import tile_batch

SAMPLES = "samples"
"""The baseline that draws whole other samples of the batch."""


class Draws(NamedTuple):
    """The random draws of one call.

    Attributes:
        alphas: ``[K, B]`` float64 in ``[0, 1)``: path point ``P' + a (P - P')``.
        partners: ``[K, B]`` long, the sample whose proposals are draw ``k``'s baseline for
            sample ``b`` (never ``b``), or None for a constant baseline.
    """

    alphas: Tensor
    partners: Tensor | None


class ExpectedGradients(ImportanceMethod):
    """Expected gradients summed over features (Erion et al. 2021).

    Args:
        n_samples: draws per sample (forward passes).
        baseline: ``"samples"`` (other samples of the batch) or a constant baseline (a number,
            or ``zeros``, ``mean``, ``shuffle``, ``negative_ones``).
        seed: seed a generator of this method once (None: see ``generator``).
        generator: a CPU ``torch.Generator`` to draw from (None: ``seed``, else torch's global
            generator).
        max_batch_rows: at most this many rows per forward call (None: all at once).
    """

    name = "expected_gradients"
    uses_gradients = True
    multiply_by_inputs = True
    """Whether each draw's gradient is multiplied by ``P - P'`` (Erion et al.: yes)."""

    def __init__(
        self,
        n_samples: int = 8,
        baseline: str | float = SAMPLES,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        max_batch_rows: int | None = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        owner = type(self).__name__
        self.n_samples = check_positive(n_samples, "n_samples", owner)
        if baseline != SAMPLES:
            try:
                check_baseline(baseline, owner)
            except ValueError as error:
                raise ValueError(f"{error} (or {SAMPLES!r}: other samples of the batch)") from None
        self.baseline = baseline
        self.seed = seed
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        self.generator = generator
        self.max_batch_rows = check_max_batch_rows(max_batch_rows, owner)

    def forward_passes(self, num_proposals: int) -> int:
        """``n_samples`` forward (and backward) passes."""
        return self.n_samples

    def _arguments(self) -> dict[str, object]:
        return {"n_samples": self.n_samples, "baseline": self.baseline, "seed": self.seed}

    def draw(self, batch_size: int) -> Draws:
        """Draw the path points (and partners) of one call for ``batch_size`` samples.

        Raises:
            ValueError: for the ``samples`` baseline on a batch of one sample.
        """
        alphas = torch.rand(
            self.n_samples, batch_size, generator=self.generator, dtype=torch.float64
        )
        if self.baseline != SAMPLES:
            return Draws(alphas, None)
        if batch_size < 2:
            raise ValueError(
                f"{self!r} draws baselines from other samples of the batch and needs at least "
                "2 samples; use a constant baseline (e.g. baseline='zeros') for one sample"
            )
        offsets = torch.randint(
            1, batch_size, (self.n_samples, batch_size), generator=self.generator
        )
        return Draws(alphas, (torch.arange(batch_size) + offsets) % batch_size)

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        batch = proposals.shape[0]
        draws = self.draw(batch)
        alphas = draws.alphas.to(proposals)
        constant = None
        if draws.partners is None:
            constant = baseline_values(proposals, proposal_mask, self.baseline)  # type: ignore[arg-type]
        total = torch.zeros(proposal_mask.shape, dtype=proposals.dtype, device=proposals.device)
        for start, stop in copy_chunks(self.n_samples, batch, self.max_batch_rows):
            if draws.partners is None:
                starts = constant.expand(stop - start, *proposals.shape)  # type: ignore[union-attr]
            else:
                starts = proposals[draws.partners[start:stop].to(proposals.device)]
            delta = proposals - starts  # [k, B, N, D]
            points = (starts + alphas[start:stop].view(-1, batch, 1, 1) * delta).flatten(0, 1)
            mask = tile_batch(proposal_mask, points.shape[0])
            total = total + self._per_draw(forward_fn, points, mask, delta, create_graph).sum(0)
        return total / self.n_samples

    def _per_draw(
        self, forward_fn: ForwardFn, points: Tensor, mask: Tensor, delta: Tensor, create_graph: bool
    ) -> Tensor:
        """``[k, B, N]`` attribution of each draw at ``points [k * B, N, D]``."""
        gradient = input_gradient(forward_fn, points, mask, create_graph, repr(self))
        return (delta * gradient.view(delta.shape)).sum(dim=-1)


class VisFISExpectedGradients(ExpectedGradients):
    """VisFIS's "expected gradient": the mean summed gradient at random path points.

    ``E_a sum_i d score / d P_ri (P' + a (P - P'))``, without Erion et al.'s ``(P - P')``
    factor; baseline ``negative_ones`` by default (VisFIS's ``replace_func``).

    Args:
        n_samples: draws per sample (forward passes).
        baseline: as :class:`ExpectedGradients` (default ``"negative_ones"``).
        use_shift: take the exact proposal-shift path when the forward function offers it.
        seed: as :class:`ExpectedGradients`.
        generator: as :class:`ExpectedGradients`.
        max_batch_rows: as :class:`ExpectedGradients`.
    """

    name = "visfis_expected_gradients"
    multiply_by_inputs = False

    def __init__(
        self,
        n_samples: int = 8,
        baseline: str | float = "negative_ones",
        use_shift: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        max_batch_rows: int | None = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        super().__init__(n_samples, baseline, seed, generator, max_batch_rows)
        self.use_shift = bool(use_shift)

    def _arguments(self) -> dict[str, object]:
        return {**super()._arguments(), "use_shift": self.use_shift}

    def _per_draw(
        self, forward_fn: ForwardFn, points: Tensor, mask: Tensor, delta: Tensor, create_graph: bool
    ) -> Tensor:
        gradient = summed_gradient(
            forward_fn, points, mask, create_graph, self.use_shift, repr(self)
        )
        return gradient.view(delta.shape[:-1])
