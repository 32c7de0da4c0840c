"""Shared fixtures: the easy-VQA-CP store (built once per session), the tiny fixture trees and a
store-damaging helper (their constants: ``tests/testkit.py``); the ``device`` parameter of the
device tests (``@pytest.mark.device``) comes from ``--device``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from testkit import FIXTURE_FEATURE_DIM, overwrite_dataset_bytes

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

DEVICES_ENV = "HINT_TEST_DEVICES"
"""Comma-separated devices for the ``device`` parameter when ``--device`` is not given."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--device cpu|cuda`` (repeatable): where the ``device`` tests run."""
    parser.addoption(
        "--device",
        action="append",
        choices=("cpu", "cuda"),
        help=f"run tests that take a `device` on this device (repeatable; default: cpu, and "
        f"cuda when available; or ${DEVICES_ENV}=cpu,cuda)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that takes ``device`` over the selected devices.

    Default: ``cpu``, plus ``cuda`` when ``torch.cuda.is_available()``. A requested ``cuda``
    without a CUDA device is skipped with a reason, never silently run on the CPU.
    """
    if "device" not in metafunc.fixturenames:
        return
    import torch

    cuda = torch.cuda.is_available()
    chosen = metafunc.config.getoption("--device") or [
        name.strip() for name in os.environ.get(DEVICES_ENV, "").split(",") if name.strip()
    ]
    unknown = sorted(set(chosen) - {"cpu", "cuda"})
    if unknown:
        raise pytest.UsageError(f"{DEVICES_ENV}: unknown device(s) {unknown}; use cpu, cuda")
    devices = list(dict.fromkeys(chosen)) or ["cpu", *(["cuda"] if cuda else [])]
    no_cuda = pytest.mark.skip(reason="--device cuda: no CUDA device (torch.cuda.is_available())")
    metafunc.parametrize(
        "device",
        [
            pytest.param(
                torch.device(name), id=name, marks=[no_cuda] if name == "cuda" and not cuda else []
            )
            for name in devices
        ],
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A fresh fixture tree in the raw layout (``prepare fixture``; about 0.1 s), D = 64."""
    from hint_lightning.prepare.fixture.tree import write_fixture_tree

    write_fixture_tree(tmp_path, feature_dim=FIXTURE_FEATURE_DIM)
    return tmp_path


@pytest.fixture(scope="session")
def prepared_vqacp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixture tree (D = 2048) prepared for vqacp_v2 (``--min-answer-count 2``), once."""
    from hint_lightning.prepare.fixture.tree import write_fixture_tree
    from hint_lightning.prepare.pipeline import prepare_vqa

    data_dir = tmp_path_factory.mktemp("vqa_data")
    write_fixture_tree(data_dir)
    prepare_vqa("vqacp_v2", data_dir, min_answer_count=2, progress=False)
    return data_dir


@pytest.fixture(scope="session")
def easyvqa_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the prepared easy-VQA-CP store (default parameters)."""
    from hint_lightning.data.easyvqa_datamodule import EasyVQACPDataModule

    data_dir = tmp_path_factory.mktemp("data")
    EasyVQACPDataModule(data_dir=str(data_dir)).prepare_data()
    return data_dir


@pytest.fixture
def corrupt_bytes() -> Callable[..., None]:
    """:func:`overwrite_dataset_bytes`."""
    return overwrite_dataset_bytes
