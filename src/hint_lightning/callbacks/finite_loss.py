"""Stop a run whose training loss is NaN or infinite, before any checkpoint of it is written.

A corrupted feature store (or a learning rate that diverges) gives a NaN loss; Lightning keeps
training on it, saves the NaN weights as ``last.ckpt`` (over the good one) and exits 0 (issue
10, item 5). :class:`FiniteLossCheck` looks at the loss of every training step in
``on_train_batch_end``, which Lightning calls before the checkpoint callbacks of the same step
(they run last), and raises :class:`NonFiniteLossError` naming the step: the run stops, the
checkpoints on disk are those of the last finite step. Under DDP the processes agree first (one
boolean all-reduce), so all of them stop at the same step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite (the message names the step)."""


def step_loss(outputs: Any) -> torch.Tensor | None:
    """The loss a ``training_step`` returned (a tensor, or the ``"loss"`` of a mapping)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class FiniteLossCheck(pl.Callback):
    """Raise :class:`NonFiniteLossError` at the first step whose training loss is not finite.

    Example:
        >>> import torch
        >>> step_loss({"loss": torch.tensor(float("nan"))}).isnan().item()
        True
    """

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Check this step's loss (all processes decide together under DDP)."""
        loss = step_loss(outputs)
        value = float(loss.detach().float().sum().item()) if loss is not None else 0.0
        finite = math.isfinite(value)
        if trainer.world_size > 1:
            finite = bool(trainer.strategy.reduce_boolean_decision(finite, all=True))
        if finite:
            return
        described = "not finite on another process" if math.isfinite(value) else f"{value}"
        raise NonFiniteLossError(
            f"the training loss is {described} at step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}, batch {batch_idx}): stopped without saving a checkpoint "
            "of it. Check the training data (a corrupted feature store: delete it to rebuild "
            "it) or lower model.optimizer.lr"
        )
