"""Callbacks for tests of fault tolerance."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytorch_lightning as pl


class KillAtStep(pl.Callback):
    """Kill the process with SIGKILL (no clean-up at all) once ``global_step`` reaches ``step``.

    Used to test that a run resumed from its last checkpoint ends exactly like an uninterrupted
    one, e.g. with the overrides ``+callbacks.kill._target_=<this class's path>`` and
    ``+callbacks.kill.step=7``.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        """Kill after the optimizer step that reaches ``step``."""
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SimulatedKill(RuntimeError):
    """Raised by :class:`StopAtStep`: the in-process stand-in for a killed run."""


class StopAtStep(pl.Callback):
    """Raise :class:`SimulatedKill` once ``global_step`` reaches ``step`` (in-process tests).

    Like :class:`KillAtStep` it acts in ``on_train_batch_end``, before the checkpoint callbacks
    of the same step (Lightning runs those last), so the newest checkpoint on disk is the one a
    real kill at this point would have left; unlike it, the test process lives on.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        """Stop after the optimizer step that reaches ``step``."""
        if trainer.global_step >= self.step:
            raise SimulatedKill(f"simulated kill at step {trainer.global_step}")
