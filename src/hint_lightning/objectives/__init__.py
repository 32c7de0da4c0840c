"""Grounding objectives: network importance, HINT, attention alignment."""

from hint_lightning.objectives.attn_align import AttnAlignObjective, attention_alignment_loss
from hint_lightning.objectives.base import GroundingInputs, GroundingObjective
from hint_lightning.objectives.hint import HintObjective, hint_ranking_loss
from hint_lightning.objectives.importance import network_importance

__all__ = [
    "AttnAlignObjective",
    "GroundingInputs",
    "GroundingObjective",
    "HintObjective",
    "attention_alignment_loss",
    "hint_ranking_loss",
    "network_importance",
]
