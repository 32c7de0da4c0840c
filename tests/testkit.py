"""What the tests share besides fixtures (``tests/conftest.py`` holds those): quick-run
overrides, the sizes of the tiny data, and helpers that damage a store. Imported by the test
modules as ``testkit`` (a name no other ``conftest`` can shadow)."""

from __future__ import annotations

from pathlib import Path

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


TINY_VQA_DATA: tuple[str, ...] = (
    "data.num_workers=0",
    "data.batch_size=16",
    "data.eval_batch_size=16",
    "data.val_fraction=0.2",
)
"""Data overrides for the tiny prepared VQA-CP tree (:func:`prepared_vqacp`)."""


def temp_files(root: Path) -> list[Path]:
    """Leftover temporary files of atomic writes under ``root``."""
    return list(root.rglob(".*.tmp"))


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
