"""Studies: configured tables of runs with intervals (``python -m hint_lightning.study NAME``)."""

from hint_lightning.study.config import StudyConfig, StudyConfigError, available_studies, load_study

__all__ = ["StudyConfig", "StudyConfigError", "available_studies", "load_study"]
