"""Keep-one-in: the score of one proposal alone, above the score of none.

``KOI_r = score(only r kept) - score(none kept)`` (VisFIS's ``"KOI"`` feature importance,
zfying/visfis: every other proposal replaced, and the reference is every proposal replaced).
With ``replacement="drop"``, "none kept" is the empty proposal set: the model sees an all-False
mask row (see :mod:`hint_lightning.importance.base`, "Empty sets"), and keeping a padded slot
keeps nothing (its importance is 0). ``N + 1`` copies of the batch are scored copy-major.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.importance.base import ForwardFn
from hint_lightning.importance.perturbation import PerturbationMethod


class KeepOneIn(PerturbationMethod):
    """``score(only r kept) - score(none kept)`` for every proposal ``r``.

    Args:
        replacement: how the other proposals are replaced (default ``drop``).
        max_batch_rows: at most this many rows per forward call (None: all at once).

    Example:
        >>> score = lambda p, m: (p.sum(-1) * m).sum(-1) ** 2 + 1
        >>> KeepOneIn().attribute(score, torch.tensor([[[1.0], [2.0]]]))  # 2 - 1, 5 - 1
        tensor([[1., 4.]])
    """

    name = "keep_one_in"

    def forward_passes(self, num_proposals: int) -> int:
        """``N + 1`` forward passes (no backward)."""
        return num_proposals + 1

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        batch, slots = proposal_mask.shape
        all_but_one = ~torch.eye(slots, dtype=torch.bool, device=proposals.device)
        everything = torch.ones(1, slots, dtype=torch.bool, device=proposals.device)
        remove = torch.cat([everything, all_but_one]).unsqueeze(1).expand(slots + 1, batch, slots)
        scores = self._scores(forward_fn, proposals, proposal_mask, remove, create_graph)
        return (scores[1:] - scores[0]).T
