"""The checkpoint callbacks of ``conf/callbacks``: selection checkpoints hold exactly the weights
their validation scored, ``last.ckpt`` is written for resuming from the first steps on and holds
the final weights, and a NaN/inf training loss stops the run before any checkpoint of it.

A tiny regression model (``y = x . w*``, mean squared error) trains on 24 fixed items, 6 batches
an epoch; its validation score is minus its validation error, so every validation scores the
weights of that moment.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hint_lightning.callbacks.checkpoint import ResumableModelCheckpoint
from hint_lightning.callbacks.finite_loss import FiniteLossCheck, NonFiniteLossError
from hint_lightning.compose import compose_train_config
from hint_lightning.testing.callbacks import SimulatedKill, StopAtStep
from hint_lightning.utils.instantiate import instantiate_group

STEPS_PER_EPOCH = 6


class Regression(pl.LightningModule):
    """``y = x . w`` fitted by SGD; ``val/acc`` is minus the validation error."""

    def __init__(self, poison_step: int | None = None) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1, bias=False)
        nn.init.zeros_(self.layer.weight)
        self.poison_step = poison_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        features, targets = batch
        loss = (self.layer(features).squeeze(1) - targets).pow(2).mean()
        if self.global_step + 1 == self.poison_step:  # the loss of this step is NaN
            loss = loss * float("nan")
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        features, targets = batch
        error = (self.layer(features).squeeze(1) - targets).pow(2).mean()
        self.log("val/acc", -error)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(items(24), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(items(8, offset=24), batch_size=8)


def items(count: int, offset: int = 0) -> TensorDataset:
    features = torch.arange(offset, offset + count * 3, dtype=torch.float32).reshape(count, 3)
    features = torch.sin(features)
    return TensorDataset(features, features @ torch.tensor([1.0, -2.0, 0.5]))


class ValidationRecorder(pl.Callback):
    """The weights and the score of every validation."""

    def __init__(self) -> None:
        self.scored: list[tuple[float, torch.Tensor, int]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        score = float(trainer.callback_metrics["val/acc"])
        weight = pl_module.layer.weight.detach().clone()
        self.scored.append((score, weight, trainer.global_step))


def configured_callbacks(tmp_path: Path, *overrides: str) -> list[pl.Callback]:
    """The callbacks of ``conf/callbacks/default.yaml`` (checkpoints under ``tmp_path``)."""
    cfg = compose_train_config(list(overrides), output_dir=tmp_path)
    return instantiate_group(cfg.callbacks)


def fit(
    callbacks: list[pl.Callback], max_epochs: int = 3, model: Regression | None = None
) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    trainer.fit(model or Regression())
    return trainer


def weight(path: str | os.PathLike[str]) -> torch.Tensor:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]["layer.weight"]


def test_the_best_checkpoint_holds_the_weights_its_validation_scored(tmp_path: Path) -> None:
    recorder = ValidationRecorder()
    callbacks = configured_callbacks(tmp_path, "callbacks.model_checkpoint.every_n_train_steps=2")
    trainer = fit([*callbacks, recorder])
    checkpoint = trainer.checkpoint_callback
    score, weights, step = max(recorder.scored, key=lambda scored: scored[0])
    assert float(checkpoint.best_model_score) == score
    torch.testing.assert_close(weight(checkpoint.best_model_path), weights, rtol=0, atol=0)
    assert torch.load(checkpoint.best_model_path, weights_only=True)["global_step"] == step


@pytest.mark.parametrize("every", [2, 4])
def test_last_is_written_from_the_first_epoch_on_and_holds_the_final_weights(
    every: int, tmp_path: Path
) -> None:
    override = f"callbacks.model_checkpoint.every_n_train_steps={every}"
    killed = configured_callbacks(tmp_path / "killed", override)
    with pytest.raises(SimulatedKill):
        fit([*killed, StopAtStep(every + 1)])  # the first epoch, before any validation
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == every

    callbacks = configured_callbacks(tmp_path / "whole", override)
    model = Regression()
    trainer = fit(callbacks, model=model)  # 18 steps: not a multiple of 4
    last = Path(trainer.checkpoint_callback.last_model_path)
    assert last == tmp_path / "whole" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 3 * STEPS_PER_EPOCH
    torch.testing.assert_close(weight(last), model.layer.weight.detach(), rtol=0, atol=0)


def test_a_linked_last_checkpoint_is_replaced_without_a_moment_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    best, last = tmp_path / "epoch_001.ckpt", tmp_path / "last.ckpt"
    best.write_bytes(b"new")
    last.write_bytes(b"old")
    seen_missing: list[bool] = []
    real_symlink = os.symlink

    def watched_symlink(source: str, destination: str) -> None:
        seen_missing.append(not os.path.lexists(last))
        real_symlink(source, destination)

    monkeypatch.setattr(os, "symlink", watched_symlink)
    trainer = SimpleNamespace(is_global_zero=True, strategy=SimpleNamespace(barrier=lambda: None))
    ResumableModelCheckpoint._link_checkpoint(trainer, str(best), str(last))
    assert seen_missing == [False]
    assert last.is_symlink() and last.read_bytes() == b"new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["epoch_001.ckpt", "last.ckpt"]


def test_link_mode_still_resumes_from_the_final_step(tmp_path: Path) -> None:
    callbacks = configured_callbacks(
        tmp_path,
        "callbacks.model_checkpoint.every_n_train_steps=4",
        "callbacks.model_checkpoint.save_last=link",
    )
    trainer = fit(callbacks, max_epochs=2)
    last = Path(trainer.checkpoint_callback.last_model_path)
    assert torch.load(last, weights_only=True)["global_step"] == 2 * STEPS_PER_EPOCH


def test_a_nan_loss_stops_the_run_naming_the_step_before_any_checkpoint_of_it(
    tmp_path: Path,
) -> None:
    callbacks = configured_callbacks(tmp_path, "callbacks.model_checkpoint.every_n_train_steps=1")
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at step 9 \(epoch 1"):
        fit(callbacks, model=Regression(poison_step=9))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 8
    assert torch.isfinite(weight(last)).all()


def test_processes_stop_together_when_one_loss_is_not_finite() -> None:
    decisions: list[bool] = []

    def reduce_boolean_decision(decision: bool, all: bool = True) -> bool:
        decisions.append(decision)
        return False  # another process saw a NaN

    strategy = SimpleNamespace(reduce_boolean_decision=reduce_boolean_decision)
    trainer = SimpleNamespace(world_size=2, strategy=strategy, global_step=5, current_epoch=0)
    with pytest.raises(NonFiniteLossError, match="not finite on another process at step 5"):
        FiniteLossCheck().on_train_batch_end(trainer, None, {"loss": torch.tensor(1.0)}, None, 4)
    assert decisions == [True]


def test_a_bad_every_n_train_steps_is_one_clear_error(tmp_path: Path) -> None:
    cfg = compose_train_config(
        ["callbacks.model_checkpoint.every_n_train_steps=-2"], output_dir=tmp_path
    )
    with pytest.raises(Exception, match="every_n_train_steps=-2"):
        instantiate(cfg.callbacks.model_checkpoint)
