"""Human importance of proposals: the public names (``proposal_importance``, ...).

They are implemented in :mod:`hint_lightning.prepare.human_importance`, with the prepare steps
that build the importance stores (prepare never goes through data/); a new one is added there
and re-exported here.
"""

from __future__ import annotations

from hint_lightning.prepare.human_importance import (
    average_attention_maps,
    proposal_importance,
    sampled_summed_area_table,
    summed_area_table,
)
from hint_lightning.prepare.patch_importance import (
    box_map,
    box_patch_importance,
    check_grid,
    patch_boxes,
    patch_importance,
)

__all__ = [
    "average_attention_maps",
    "box_map",
    "box_patch_importance",
    "check_grid",
    "patch_boxes",
    "patch_importance",
    "proposal_importance",
    "sampled_summed_area_table",
    "summed_area_table",
]
