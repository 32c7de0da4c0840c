"""Metrics: task metrics (VQA accuracy, captions), grounding, plausibility, faithfulness, FPVG.

Functional cores live in :mod:`hint_lightning.metrics.functional`; the classes here keep the
state (sums and counts, exact under DDP).
"""

from hint_lightning.metrics.faithfulness import Faithfulness
from hint_lightning.metrics.fpvg import FPVG
from hint_lightning.metrics.grounding import GroundingCorrelation, MisgroundedRate
from hint_lightning.metrics.plausibility import Plausibility
from hint_lightning.metrics.question_means import QuestionMeans
from hint_lightning.metrics.suite import GroundingMetrics

__all__ = [
    "FPVG",
    "Faithfulness",
    "GroundingCorrelation",
    "GroundingMetrics",
    "MisgroundedRate",
    "Plausibility",
    "QuestionMeans",
]
