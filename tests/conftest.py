"""Shared fixtures: the easy-VQA-CP store (built once per session), quick-run overrides,
helpers that build tiny data or damage a store the way a disk or a user would; the ``device``
parameter of the device tests (``@pytest.mark.device``) comes from ``--device``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

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


QUIET_TRAINER: tuple[str, ...] = (
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
)
"""Overrides of every in-process test run: CPU, no progress bar, no model summary."""


def quick_overrides(
    train: int | None = 2, val: int | None = 1, test: int | None = 1, epochs: int = 1
) -> tuple[str, ...]:
    """The overrides of a quick run: ``epochs`` epochs of at most ``train``/``val``/``test``
    batches (None: no limit), quiet, on the CPU."""
    limits = {"train": train, "val": val, "test": test}
    return (
        f"trainer.max_epochs={epochs}",
        *(f"trainer.limit_{k}_batches={v}" for k, v in limits.items() if v is not None),
        *QUIET_TRAINER,
    )


QUICK_TRAINER: tuple[str, ...] = quick_overrides()
"""One epoch of 2 train, 1 val and 1 test batches, quiet, on the CPU."""


FIXTURE_FEATURE_DIM = 64
"""D of the fixture trees of the prepare tests (small and fast; the CLI test uses 2048)."""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A fresh fixture tree in the raw layout (``prepare fixture``; about 0.1 s), D = 64."""
    from hint_lightning.prepare.fixture.tree import write_fixture_tree

    write_fixture_tree(tmp_path, feature_dim=FIXTURE_FEATURE_DIM)
    return tmp_path


TINY_VQA_DATA: tuple[str, ...] = (
    "data.num_workers=0",
    "data.batch_size=16",
    "data.eval_batch_size=16",
    "data.val_fraction=0.2",
)
"""Data overrides for the tiny prepared VQA-CP tree (:func:`prepared_vqacp`)."""


@pytest.fixture(scope="session")
def prepared_vqacp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixture tree (D = 2048) prepared for vqacp_v2 (``--min-answer-count 2``), once."""
    from hint_lightning.prepare.fixture.tree import write_fixture_tree
    from hint_lightning.prepare.pipeline import prepare_vqa

    data_dir = tmp_path_factory.mktemp("vqa_data")
    write_fixture_tree(data_dir)
    prepare_vqa("vqacp_v2", data_dir, min_answer_count=2, progress=False)
    return data_dir


def temp_files(root: Path) -> list[Path]:
    """Leftover temporary files of atomic writes under ``root``."""
    return list(root.rglob(".*.tmp"))


@pytest.fixture(scope="session")
def easyvqa_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the prepared easy-VQA-CP store (default parameters)."""
    from hint_lightning.data.easyvqa_datamodule import EasyVQACPDataModule

    data_dir = tmp_path_factory.mktemp("data")
    EasyVQACPDataModule(data_dir=str(data_dir)).prepare_data()
    return data_dir


def overwrite_dataset_bytes(path: Path, name: str, fraction: float = 0.5, byte: int = 0xFF) -> None:
    """Overwrites the first ``fraction`` of the stored bytes of dataset ``name`` with ``byte``
    directly in the file (as a failing disk or a stray write would; HDF5 is not told)."""
    import h5py

    with h5py.File(path, "r") as handle:
        dataset = handle[name].id
        if dataset.get_offset() is not None:  # contiguous
            spans = [(dataset.get_offset(), dataset.get_storage_size())]
        else:
            spans = [
                (info.byte_offset, info.size)
                for info in map(dataset.get_chunk_info, range(dataset.get_num_chunks()))
            ]
    budget = int(sum(size for _, size in spans) * fraction)
    with path.open("r+b") as handle:
        for offset, size in spans:
            count = min(size, budget)
            if count <= 0:
                break
            handle.seek(offset)
            handle.write(bytes([byte]) * count)
            budget -= count


@pytest.fixture
def corrupt_bytes() -> Callable[..., None]:
    """:func:`overwrite_dataset_bytes`."""
    return overwrite_dataset_bytes
