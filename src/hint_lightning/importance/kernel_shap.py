"""KernelSHAP over proposals: Shapley values of the proposals by weighted linear regression.

Players are the ``N`` proposal slots; the value of a coalition ``S`` is the score with every
proposal outside ``S`` removed (``replacement``). KernelSHAP (Lundberg & Lee 2017, "A unified
approach to interpreting model predictions") finds the Shapley values as the weighted least
squares fit ``v(S) - v(empty) ~ sum_{r in S} phi_r`` over coalitions, with the Shapley kernel
``pi(S) = (N - 1) / (C(N, |S|) |S| (N - |S|))`` and the efficiency constraint
``sum_r phi_r = v(all) - v(empty)`` imposed exactly (by eliminating the last player). With all
``2^N - 2`` proper coalitions weighted by the kernel the fit is exact: the Shapley values.

When ``n_samples`` is smaller than ``2^N - 2``, coalitions are sampled as in Covert & Lee 2021
("Improving KernelSHAP"): a size ``s`` with probability proportional to the kernel's mass of
that size, ``(N - 1) / (s (N - s))``, a uniform coalition of that size, paired with its
complement; sampled coalitions have equal weights. The same coalitions serve every sample of
the batch (as in VisFIS's ``"SHAP"``, zfying/visfis); the fit is one fixed linear map of the
scores, so it is differentiable.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hint_lightning.importance.base import DEFAULT_MAX_BATCH_ROWS, ForwardFn, check_positive
from hint_lightning.importance.perturbation import PerturbationMethod


def shapley_kernel(num_players: int, sizes: Tensor) -> Tensor:
    """The Shapley kernel weight of coalitions of the given sizes (``0 < size < N``)."""
    sizes = sizes.to(torch.float64)
    combinations = torch.tensor(
        [math.comb(num_players, int(size)) for size in sizes.tolist()], dtype=torch.float64
    )
    return (num_players - 1) / (combinations * sizes * (num_players - sizes))


def all_coalitions(num_players: int) -> Tensor:
    """Every proper, non-empty coalition: ``[2^N - 2, N]`` bool (True = player kept)."""
    codes = torch.arange(1, 2**num_players - 1)
    return (codes.unsqueeze(1) >> torch.arange(num_players)) & 1 == 1


def sample_coalitions(
    num_players: int, num_samples: int, generator: torch.Generator | None
) -> Tensor:
    """``num_samples`` coalitions drawn from the Shapley kernel, in complementary pairs.

    Returns:
        ``[num_samples, N]`` bool (an odd ``num_samples`` ends with an unpaired coalition).
    """
    sizes = torch.arange(1, num_players, dtype=torch.float64)
    size_mass = (num_players - 1) / (sizes * (num_players - sizes))
    pairs = (num_samples + 1) // 2
    drawn = torch.multinomial(size_mass, pairs, replacement=True, generator=generator) + 1
    order = torch.rand(pairs, num_players, generator=generator).argsort(dim=1)
    kept = order < drawn.unsqueeze(1)  # a uniform subset of each drawn size
    return torch.cat([kept, ~kept])[:num_samples]


class KernelShap(PerturbationMethod):
    """KernelSHAP values of the proposals.

    Args:
        n_samples: coalitions scored per call besides "all" and "none"; at least ``2^N - 2``
            enumerates every coalition (exact Shapley values).
        replacement: how the proposals outside a coalition are replaced (default ``drop``).
        seed: seed a generator of this method once (None: see ``generator``).
        generator: a CPU ``torch.Generator`` for the coalitions (None: ``seed``, else torch's
            global generator).
        max_batch_rows: at most this many rows per forward call (None: all at once).

    Example:
        >>> score = lambda p, m: (p.sum(-1) * m).sum(-1) ** 2  # (x1 + x2)^2, Shapley by hand
        >>> KernelShap().attribute(score, torch.tensor([[[1.0], [2.0]]]))  # 1 + 2, 4 + 2
        tensor([[3., 6.]])
    """

    name = "kernel_shap"

    def __init__(
        self,
        n_samples: int = 64,
        replacement: str = "drop",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        max_batch_rows: int | None = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        super().__init__(replacement, max_batch_rows)
        self.n_samples = check_positive(n_samples, "n_samples", type(self).__name__)
        self.seed = seed
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        self.generator = generator

    def _arguments(self) -> dict[str, object]:
        return {**super()._arguments(), "n_samples": self.n_samples, "seed": self.seed}

    def _enumerates(self, num_players: int) -> bool:
        return num_players < 63 and self.n_samples >= 2**num_players - 2

    def forward_passes(self, num_proposals: int) -> int:
        """Coalitions scored plus "all" and "none" (``2^N`` when every one is enumerated)."""
        if self._enumerates(num_proposals):
            return 2**num_proposals
        return self.n_samples + 2

    def coalitions(self, num_players: int) -> tuple[Tensor, Tensor]:
        """The coalitions of one call and their regression weights.

        Returns:
            ``(kept [M, N] bool, weights [M] float64)``.
        """
        if self._enumerates(num_players):
            kept = all_coalitions(num_players)
            return kept, shapley_kernel(num_players, kept.sum(dim=1))
        kept = sample_coalitions(num_players, self.n_samples, self.generator)
        return kept, torch.ones(kept.shape[0], dtype=torch.float64)

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        batch, slots = proposal_mask.shape
        kept, weights = self.coalitions(slots)
        everything = torch.ones(1, slots, dtype=torch.bool)
        remove = torch.cat([~everything, everything, ~kept]).to(proposals.device)
        remove = remove.unsqueeze(1).expand(-1, batch, slots)
        scores = self._scores(forward_fn, proposals, proposal_mask, remove, create_graph)
        empty = scores[1]
        total = scores[0] - empty  # [B]: the efficiency constraint
        if slots == 1:
            return total.unsqueeze(1)
        gains = (scores[2:] - empty).T  # [B, M]
        # phi_last = total - sum_{r < N-1} phi_r, so the fit is over the first N - 1 players:
        # gains - z_last total ~ (z_r - z_last) phi_r.
        design = (kept[:, :-1].double() - kept[:, -1:].double()) * weights.sqrt().unsqueeze(1)
        solve = torch.linalg.pinv(design) * weights.sqrt()  # [N - 1, M]
        solve = solve.to(proposals)
        last = kept[:, -1].to(proposals)
        head = (gains - total.unsqueeze(1) * last) @ solve.T  # [B, N - 1]
        return torch.cat([head, (total - head.sum(dim=1)).unsqueeze(1)], dim=1)
