"""The resumable training sampler: whole-epoch length, the resume position, and Lightning runs on
a tiny data module (the real ``VQADataModuleBase`` loaders) killed at any step and resumed.

The oracle of an interrupted run is the uninterrupted one: the batches trained on after the
resume are exactly the uninterrupted run's batches after the checkpoint's step, and the final
weights are bit-identical.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.connectors.data_connector import _parse_num_batches
from pytorch_lightning.trainer.states import RunningStage
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from hint_lightning.callbacks.checkpoint import ResumableModelCheckpoint
from hint_lightning.data.loading import VQADataModuleBase
from hint_lightning.data.samplers import (
    ResumableEpochSampler,
    batches_per_epoch,
    resume_position,
    trainer_position,
)
from hint_lightning.testing.callbacks import SimulatedKill, StopAtStep
from hint_lightning.utils.rng import restore_rng_state, rng_state

# ----------------------------------------------------------------------------- the sampler


def test_a_resumed_sampler_yields_the_rest_of_the_epoch_and_keeps_its_length() -> None:
    whole = list(ResumableEpochSampler(10, seed=3, start_epoch=2))
    resumed = ResumableEpochSampler(10, seed=3, start_epoch=2, skip=4)
    # Lightning counts the 4 items' batches as done: the length must stay the epoch's.
    assert len(resumed) == 10
    assert list(resumed) == whole[4:]
    resumed.set_epoch(3)
    assert list(resumed) == list(ResumableEpochSampler(10, seed=3, start_epoch=3))


def test_processes_share_one_order_and_skip_their_own_part() -> None:
    order = list(ResumableEpochSampler(7, seed=1))
    padded = order + order[:1]  # 7 items on 2 processes: padded to 8 as DistributedSampler does
    for rank in (0, 1):
        shard = ResumableEpochSampler(7, seed=1, skip=2, num_replicas=2, rank=rank)
        assert len(shard) == 4
        assert list(shard) == padded[rank::2][2:]


@pytest.mark.parametrize("num_items", [1, 22, 2880])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("limit", [1.0, 0.25, 4])
def test_batches_per_epoch_is_lightnings_num_training_batches(
    num_items: int, batch_size: int, replicas: int, limit: float
) -> None:
    sampler = ResumableEpochSampler(num_items, num_replicas=replicas)
    length = len(DataLoader(range(num_items), batch_size=batch_size, sampler=sampler))
    if isinstance(limit, float) and int(length * limit) == 0:
        with pytest.raises(MisconfigurationException):  # Lightning refuses less than a batch
            _parse_num_batches(RunningStage.TRAINING, length, limit)
        return
    expected = _parse_num_batches(RunningStage.TRAINING, length, limit)
    assert batches_per_epoch(num_items, batch_size, replicas, limit) == expected


@pytest.mark.parametrize(
    ("done", "per_epoch", "expected"),
    [(0, 6, (0, 0)), (3, 6, (0, 3)), (6, 6, (1, 0)), (10, 6, (1, 4)), (12, 4, (3, 0))],
)
def test_the_resume_position_counts_whole_epochs_then_batches(
    done: int, per_epoch: int, expected: tuple[int, int]
) -> None:
    assert resume_position(done, per_epoch) == expected


def test_the_trainer_position_reads_the_total_batch_count_and_the_limit() -> None:
    def trainer(done: int, limit: Any) -> Any:
        progress = SimpleNamespace(total=SimpleNamespace(processed=done))
        loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
        return SimpleNamespace(fit_loop=loop, limit_train_batches=limit)

    assert trainer_position(None, 22, 4) == (0, 0)
    assert trainer_position(trainer(10, 1.0), 22, 4) == (1, 4)  # 6 batches an epoch
    assert trainer_position(trainer(10, 4), 22, 4) == (2, 2)  # 4 batches an epoch
    assert trainer_position(trainer(10, 1.0), 22, 2, num_replicas=2) == (1, 4)


# ------------------------------------------------------- Lightning runs on a tiny data module


class TinyData(VQADataModuleBase):
    """22 items ``(index, features [3])``, the real training loader and resumable sampler."""

    def __init__(self, batch_size: int = 4, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size, self.eval_batch_size = batch_size, 8
        self.num_workers, self.pin_memory = num_workers, False
        features = torch.linspace(-1, 1, 66, dtype=torch.float64).reshape(22, 3).float()
        self.items = TensorDataset(torch.arange(22), features)

    def setup(self, stage: str | None = None) -> None:
        self._set_batch_sizes()

    def _split_dataset(self, split: str) -> Dataset:
        return self.items

    def _collate_fn(self) -> Any:
        return default_collate


class Recorder(pl.LightningModule):
    """A linear model with dropout (random draws) that records the items of every step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.seen: list[list[int]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        ids, features = batch
        self.seen.append(ids.tolist())
        return nn.functional.dropout(self.layer(features), 0.5).pow(2).mean()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/score", -self.layer(batch[1]).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_rng_state(checkpoint["rng"])


def fit(
    folder: Path, stop: int | None = None, resume: bool = False, **options: Any
) -> tuple[Recorder, pl.Trainer]:
    workers = options.pop("workers", 0)
    pl.seed_everything(0, workers=True)
    callbacks: list[pl.Callback] = [
        ResumableModelCheckpoint(
            dirpath=folder, monitor="val/score", mode="max", save_last=True, every_n_train_steps=2
        )
    ]
    if stop is not None:
        callbacks.append(StopAtStep(stop))
    trainer = pl.Trainer(
        default_root_dir=folder,
        max_epochs=3,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **options,
    )
    model = Recorder()
    last = folder / "last.ckpt"
    with contextlib.suppress(SimulatedKill):
        trainer.fit(
            model, datamodule=TinyData(num_workers=workers), ckpt_path=last if resume else None
        )
    return model, trainer


CASES = {
    "epoch 0 mid": ({}, [3]),
    "epoch end, then epoch 1 mid": ({}, [7, 11]),
    "limit, epochs 0 and 1": ({"limit_train_batches": 4}, [3, 6]),
    "fraction limit": ({"limit_train_batches": 0.5}, [3, 5]),
    "mid-epoch validation": ({"val_check_interval": 3}, [4, 9]),
    "2 workers": ({"workers": 2}, [5, 9]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_runs_killed_at_any_step_resume_exactly(case: str, tmp_path: Path) -> None:
    options, kills = CASES[case]
    whole, whole_trainer = fit(tmp_path / "whole", **options)
    seen: list[list[int]] = []
    folder = tmp_path / "killed"
    for attempt, stop in enumerate([*kills, None]):
        model, trainer = fit(folder, stop=stop, resume=attempt > 0, **options)
        start = len(seen)
        assert model.seen == whole.seen[start : start + len(model.seen)], (case, stop)
        seen += model.seen
        if stop is not None:  # continue from the newest checkpoint, as a restarted job does
            step = torch.load(folder / "last.ckpt", weights_only=True)["global_step"]
            assert 0 < step < stop
            seen = seen[:step]
    assert seen == whole.seen
    assert trainer.global_step == whole_trainer.global_step == len(whole.seen)
    epochs = whole_trainer.max_epochs
    per_epoch = whole_trainer.num_training_batches
    assert len(whole.seen) == epochs * per_epoch
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0)
    assert float(trainer.callback_metrics["val/score"]) == float(
        whole_trainer.callback_metrics["val/score"]
    )
