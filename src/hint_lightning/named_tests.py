"""Tests on every named test split a DataModule offers (``datamodule.test_splits``).

``decoy_vqa`` offers ``test_clean``, ``test_random`` and ``test_flipped``; ``train`` and
``evaluate`` run one more ``trainer.test`` per split after the usual test, and log each split's
metrics under its own prefix (``test_flipped/acc``, ``test_random/decoy_share``). A DataModule
without ``test_splits`` costs nothing. The last split run is the one whose predictions the model
keeps, so a DataModule lists its default test split last.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytorch_lightning as pl

__all__ = ["run_named_tests"]


def run_named_tests(
    trainer: pl.Trainer, model: pl.LightningModule, datamodule: Any
) -> dict[str, float]:
    """Tests the model's current weights on each of ``datamodule.test_splits``.

    Args:
        trainer: The trainer (its ``callback_metrics`` are read after each test).
        model: The model, with the weights to test already loaded.
        datamodule: A DataModule; nothing happens without a ``test_splits`` attribute.

    Returns:
        ``{"<split>/<metric>": value}`` for every split and every ``test/`` metric.
    """
    splits = tuple(getattr(datamodule, "test_splits", ()) or ())
    if not splits:
        return {}
    metrics: dict[str, float] = {}
    previous = datamodule.test_split
    try:
        for split in splits:
            datamodule.test_split = split
            labelled = getattr(model, "suite_labelled", None)  # the evaluation suite's names
            with labelled(split) if labelled is not None else contextlib.nullcontext():
                trainer.test(model, datamodule=datamodule, verbose=False, weights_only=True)
            for key, value in trainer.callback_metrics.items():
                if key.startswith("test/"):
                    metrics[f"{split}/{key.split('/', 1)[1]}"] = float(value)
    finally:
        datamodule.test_split = previous
    return metrics
