"""Selection checkpoints written when validation scores them; ``last.ckpt`` written for resuming.

Lightning's ``ModelCheckpoint(every_n_train_steps=N, monitor=...)`` uses one trigger for two
jobs (issue 10, item 4): every N steps it ranks the weights of *that* step by the metric of the
*previous* validation, so the "best" checkpoint holds weights no validation ever saw; and while
the monitored metric does not exist yet (the whole first epoch) it defers every save, so a run
killed in its first epoch has no ``last.ckpt``. :class:`ResumableModelCheckpoint` separates them:

* **selection** (``monitor``, ``save_top_k``, ``filename``): Lightning's own per-validation
  trigger, so a checkpoint is ranked with the score of exactly the weights it holds;
* **resume** (``save_last``): ``last.ckpt`` every ``every_n_train_steps`` optimizer steps
  (from the first step on, whatever the monitor), at the end of every epoch (after validation
  and the epoch-end hooks) and at the end of training. A step whose batch is followed at once
  by a validation or by the end of the epoch is saved after them instead, because a checkpoint
  written between a batch and its validation resumes past that validation.

``last.ckpt`` links (``save_last="link"``) and copies are replaced atomically (a temporary
link in the same folder, then a rename); file writes go through the trainer's CheckpointIO
(:class:`hint_lightning.callbacks.checkpoint_io.AtomicCheckpointIO` in our configs).
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor


class ResumableModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose step trigger writes only ``last.ckpt`` (see the module doc).

    Args:
        every_n_train_steps: write ``last.ckpt`` every this many optimizer steps (None or 0:
            only at epoch ends and at the end of training). Never ranks a checkpoint.
        *args: the other ``ModelCheckpoint`` arguments, in its order (``dirpath``...).
        **kwargs: the other ``ModelCheckpoint`` arguments (``dirpath``, ``filename``,
            ``monitor``, ``mode``, ``save_top_k``, ``save_last``...). The selection checkpoints
            follow ``every_n_epochs`` (default: every validation).
    """

    def __init__(self, *args: Any, every_n_train_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, every_n_train_steps=None, **kwargs)
        if every_n_train_steps is not None and every_n_train_steps < 0:
            raise ValueError(
                f"callbacks.model_checkpoint.every_n_train_steps={every_n_train_steps}: must be "
                "a positive number of optimizer steps (or null: last.ckpt at epoch ends only)"
            )
        self.resume_every_n_train_steps = int(every_n_train_steps or 0)
        self._writing_last = False
        self._last_written_step: int | None = None

    # ------------------------------------------------------------------ resume: last.ckpt
    def _save_last_checkpoint(
        self, trainer: pl.Trainer, monitor_candidates: dict[str, Tensor]
    ) -> None:
        """Only :meth:`_write_last` writes ``last.ckpt`` (Lightning's own calls are ignored)."""
        if self._writing_last:
            super()._save_last_checkpoint(trainer, monitor_candidates)

    def _write_last(self, trainer: pl.Trainer) -> None:
        """Write (or link) ``last.ckpt`` for the current step, once per step."""
        if not self.save_last or not _may_save(trainer):
            return
        if self._last_written_step == trainer.global_step:
            return
        if self._last_global_step_saved != trainer.global_step:
            # Nothing was saved at this step for a link to point to: write the file.
            self._last_checkpoint_saved = ""
        ranked_step = self._last_global_step_saved
        self._writing_last = True
        try:
            super()._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        finally:
            self._writing_last = False
        # A resume checkpoint must not stop a selection checkpoint of the same step.
        self._last_global_step_saved = ranked_step
        self._last_written_step = trainer.global_step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A resumed run already has ``last.ckpt`` of the step it starts from."""
        super().on_train_start(trainer, pl_module)
        self._last_written_step = trainer.global_step if trainer.global_step else None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Write ``last.ckpt`` every ``every_n_train_steps`` steps (see the module doc)."""
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self.resume_every_n_train_steps
        if every < 1 or trainer.global_step == 0 or trainer.global_step % every:
            return
        if _boundary_follows(trainer):
            return  # written after the validation / at the epoch end
        self._write_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Selection as Lightning does it, then ``last.ckpt`` of the finished epoch."""
        super().on_train_epoch_end(trainer, pl_module)
        self._write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``last.ckpt`` holds the final weights."""
        self._write_last(trainer)

    @staticmethod
    def _link_checkpoint(trainer: pl.Trainer, filepath: str, linkpath: str) -> None:
        """Point ``linkpath`` at ``filepath`` atomically (symlink, or a copy where links fail).

        Lightning removes the old ``last.ckpt`` before linking, so a kill in between leaves
        none; here the new link (or copy) is made under a temporary name in the same folder
        and renamed onto ``linkpath``.
        """
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            folder = os.path.dirname(os.path.abspath(linkpath))
            name = f".{os.path.basename(linkpath)}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            tmp = os.path.join(folder, name)
            try:
                try:
                    os.symlink(os.path.relpath(filepath, folder), tmp)
                except OSError:
                    shutil.copyfile(filepath, tmp)
                os.replace(tmp, linkpath)
            finally:
                if os.path.lexists(tmp):
                    os.remove(tmp)
        trainer.strategy.barrier()


def _may_save(trainer: pl.Trainer) -> bool:
    """Whether checkpoints may be written now (fitting, not a sanity check or fast_dev_run)."""
    return (
        not trainer.fast_dev_run
        and trainer.state.fn == TrainerFn.FITTING
        and not trainer.sanity_checking
    )


def _boundary_follows(trainer: pl.Trainer) -> bool:
    """Whether the batch that just ended is followed by a validation or the epoch's end."""
    loop = trainer.fit_loop.epoch_loop
    if loop.batch_progress.is_last_batch:
        return True
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return True
    # Lightning's own decision (private, stable since 2.0): validation after this batch.
    should_check_val = getattr(loop, "_should_check_val_fx", None)
    if should_check_val is None:
        return False
    return bool(should_check_val(trainer.fit_loop._data_fetcher))
