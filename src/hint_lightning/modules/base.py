"""What every grounded LightningModule shares (VQA, captioning, classification).

:class:`GroundedModule` adds to :class:`HintMixin` the plumbing that is the same for every
task: the precision check before fitting, optimizers built from the configured factories, and
checkpoints that carry the run config, the data info and the RNG states (so that evaluation
needs only the file and a resumed run continues exactly).
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

import pytorch_lightning as pl

from hint_lightning.modules.hint_mixin import HintMixin
from hint_lightning.utils.rng import restore_rng_state, rng_state

CHECKPOINT_KEY = "hint_lightning"
"""Checkpoint entry holding the run's resolved config, the data info and the RNG states."""


class GroundedModule(HintMixin, pl.LightningModule):
    """Base LightningModule: subclasses set ``optimizer_factory``, ``scheduler_factory`` (or
    None), ``data_info``, ``run_config`` and ``objective``, and implement the steps."""

    optimizer_factory: Any
    scheduler_factory: Any = None
    data_info: Any
    run_config: dict[str, Any] | None = None

    def on_fit_start(self) -> None:
        """Check the precision before the first step (see :meth:`HintMixin.check_precision`)."""
        self.check_precision(str(self.trainer.precision))

    def configure_optimizers(self) -> Any:
        """Build the optimizer (and scheduler) from the configured factories."""
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the run config, the data info (evaluation needs only the file) and RNG states."""
        info = self.data_info
        checkpoint[CHECKPOINT_KEY] = {
            "config": self.run_config,
            "data_info": asdict(info) if is_dataclass(info) else dict(vars(info)),
            "rng": rng_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the random generators, so a resumed run continues exactly (dropout...)."""
        payload = checkpoint.get(CHECKPOINT_KEY) or {}
        if payload.get("rng"):
            restore_rng_state(payload["rng"])
