"""Statistics over runs: two-level bootstrap intervals over seeds and questions."""

from hint_lightning.stats.bootstrap import Interval, SeedQuestionTable, bootstrap_intervals

__all__ = ["Interval", "SeedQuestionTable", "bootstrap_intervals"]
