"""Log a few proposal-importance pictures to W&B after every validation epoch.

For the first validation questions that have human importance, the picture shows the proposals
shaded by human importance and by the model's current network importance for the ground-truth
answer (``hint_lightning.viz.draw_importance_figure``). Boxes are drawn on a blank canvas (the
region-feature datasets ship no pixels). The callback does nothing without a ``WandbLogger``,
so it is on by default at no cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor

from hint_lightning.data import batch as B

CANVAS = 256
"""Side of the square canvas, in pixels, that normalized boxes are drawn on."""


class ImportanceImageLogger(pl.Callback):
    """Every ``every_n_epochs`` validation epochs, log ``num_questions`` importance pictures.

    Args:
        num_questions: how many validation questions (with human importance) to draw.
        every_n_epochs: how often.
    """

    def __init__(self, num_questions: int = 4, every_n_epochs: int = 1) -> None:
        self.num_questions = num_questions
        self.every_n_epochs = every_n_epochs
        self._batch: dict[str, Tensor] | None = None

    @staticmethod
    def _wandb_loggers(trainer: pl.Trainer) -> list[WandbLogger]:
        return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the first validation batch (only when there is somewhere to log)."""
        if batch_idx == 0 and self._wandb_loggers(trainer) and isinstance(batch, dict):
            self._batch = {k: v[: 4 * self.num_questions] for k, v in batch.items()}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Draw and log the pictures (rank 0)."""
        batch, self._batch = self._batch, None
        if (
            batch is None
            or not trainer.is_global_zero
            or trainer.sanity_checking
            or trainer.current_epoch % self.every_n_epochs
            or not hasattr(pl_module, "answer_with_importance")
        ):
            return
        hinted = batch[B.HAS_IMPORTANCE].nonzero(as_tuple=True)[0][: self.num_questions]
        if hinted.numel() == 0:
            return
        batch = {k: v[hinted] for k, v in batch.items()}
        logits, _, importance = pl_module.answer_with_importance(batch)
        images, captions = [], []
        for row in range(hinted.numel()):
            figure = self._figure(batch, row, logits, importance, pl_module)
            images.append(_to_array(figure))
            captions.append(f"question {int(batch[B.QUESTION_ID][row])}")
        for logger in self._wandb_loggers(trainer):
            logger.log_image(key="val/importance", images=images, caption=captions)

    @staticmethod
    def _figure(
        batch: dict[str, Tensor],
        row: int,
        logits: Tensor,
        importance: Tensor | None,
        pl_module: pl.LightningModule,
    ) -> Any:
        from hint_lightning.viz.importance import blank_canvas, draw_importance_figure

        answers = pl_module.data_info.answers
        truth = answers[int(batch[B.TARGETS][row].argmax())]
        predicted = answers[int(logits[row].argmax())]
        mask = batch[B.PROPOSAL_MASK][row].cpu().numpy()
        boxes = batch[B.BOXES][row].cpu().numpy() * CANVAS
        panels = [("human importance", batch[B.HUMAN_IMPORTANCE][row].cpu().numpy())]
        if importance is not None:
            panels.append(
                (f"network importance (answer: {predicted})", importance[row].cpu().numpy())
            )
        return draw_importance_figure(
            blank_canvas(CANVAS, CANVAS),
            boxes,
            panels,
            title=f"question {int(batch[B.QUESTION_ID][row])}, ground truth: {truth}",
            mask=mask,
            show_image=False,
        )


def _to_array(figure: Any) -> np.ndarray:
    """Render a matplotlib figure to an ``[H, W, 3]`` uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
