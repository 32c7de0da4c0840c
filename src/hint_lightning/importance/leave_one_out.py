"""Leave-one-out (occlusion): how much the score drops when one proposal is removed.

``LOO_r = score(all proposals) - score(all but r)`` (Zeiler & Fergus 2014's occlusion, one
proposal at a time; VisFIS's ``"LOO"`` feature importance, zfying/visfis; Captum's
``FeatureAblation`` with one feature group per proposal). ``N + 1`` copies of the batch (the
original and one per removed proposal) are scored copy-major.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hint_lightning.importance.base import ForwardFn
from hint_lightning.importance.perturbation import PerturbationMethod


class LeaveOneOut(PerturbationMethod):
    """``score(all) - score(all but r)`` for every proposal ``r``.

    Args:
        replacement: how the removed proposal is replaced (default ``drop``).
        max_batch_rows: at most this many rows per forward call (None: all at once).

    Example:
        >>> score = lambda p, m: (p.sum(-1) * m).sum(-1) ** 2
        >>> LeaveOneOut().attribute(score, torch.tensor([[[1.0], [2.0]]]))  # 9 - 4, 9 - 1
        tensor([[5., 8.]])
    """

    name = "leave_one_out"

    def forward_passes(self, num_proposals: int) -> int:
        """``N + 1`` forward passes (no backward)."""
        return num_proposals + 1

    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        batch, slots = proposal_mask.shape
        one_out = torch.eye(slots, dtype=torch.bool, device=proposals.device)
        none_out = torch.zeros(1, slots, dtype=torch.bool, device=proposals.device)
        remove = torch.cat([none_out, one_out]).unsqueeze(1).expand(slots + 1, batch, slots)
        scores = self._scores(forward_fn, proposals, proposal_mask, remove, create_graph)
        return (scores[0] - scores[1:]).T
