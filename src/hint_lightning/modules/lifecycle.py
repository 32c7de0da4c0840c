"""What every grounded module does around its steps: word vectors, the precision check,
optimizers from the configured factories, and checkpoints that carry the run config, the data
info and the RNG states (so that evaluation needs only the file and a resumed run continues
exactly)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np
import torch

from hint_lightning.models.protocol import load_word_embeddings
from hint_lightning.utils.rng import restore_rng_state, rng_state

__all__ = ["CHECKPOINT_KEY", "ModuleLifecycle"]

CHECKPOINT_KEY = "hint_lightning"
"""Checkpoint entry holding the run's resolved config, the data info and the RNG states."""


class ModuleLifecycle:
    """Mixed into :class:`~hint_lightning.modules.base.GroundedModule` (a LightningModule
    with ``net``, ``caps``, ``objectives``, ``optimizer_factory``, ``scheduler_factory``,
    ``data_info`` and ``run_config``)."""

    net: Any
    caps: Any
    objectives: Any
    optimizer_factory: Any
    scheduler_factory: Any
    data_info: Any
    run_config: dict[str, Any] | None
    trainer: Any

    def initialize_from_data(self, datamodule: Any) -> bool:
        """Load the datamodule's word vectors (``word_vectors_path``) into the backbone.

        Returns:
            Whether vectors were loaded (the path exists and the backbone has the hook).
        """
        path = getattr(datamodule, "word_vectors_path", None)
        if not path or not self.caps.word_embeddings:
            return False
        return load_word_embeddings(self.net, torch.from_numpy(np.load(path)))

    def check_precision(self, precision: str) -> None:
        """Refuse float16 mixed precision when an objective differentiates importance.

        Lightning scales only the returned loss for float16; the inner ``autograd.grad`` of the
        importance would run unscaled and underflow. bfloat16 has float32's range.

        Raises:
            ValueError: for ``16-mixed`` / ``16`` / ``16-true`` with such an objective.
        """
        needs = self.objectives is not None and "importance" in self.objectives.requires
        if needs and str(precision) in ("16-mixed", "16", "16-true"):
            names = ", ".join(name for name, _ in self.objectives.items())  # type: ignore[union-attr]
            raise ValueError(
                f"precision={precision} is refused with objective(s) {names}: float16 needs "
                "the inner gradient of the network importance scaled and unscaled by hand "
                "(Lightning scales only the final loss). Use trainer.precision=bf16-mixed (same "
                "speed on recent GPUs, no scaling needed) or 32-true."
            )

    def on_fit_start(self) -> None:
        """Check the precision before the first step."""
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
