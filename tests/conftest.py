"""Shared fixtures: the easy-VQA-CP store is built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def easyvqa_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the prepared easy-VQA-CP store (default parameters)."""
    from hint_lightning.data.easyvqa_datamodule import EasyVQACPDataModule

    data_dir = tmp_path_factory.mktemp("data")
    EasyVQACPDataModule(data_dir=str(data_dir)).prepare_data()
    return data_dir
