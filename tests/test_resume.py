"""A run killed mid-epoch (SIGKILL) and resumed from its last checkpoint ends exactly like an
uninterrupted run: same weights, same metrics (CPU, deterministic mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

RUN = (
    "experiment=easyvqa_cp_updn",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "trainer.limit_val_batches=1",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "callbacks.model_checkpoint.monitor=null",
    "callbacks.model_checkpoint.every_n_train_steps=4",  # steps 4, 8 and 12 (the end)
    "test=false",
)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hint_lightning.train", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    data = f"paths.data_dir={easyvqa_data_dir}"
    whole = cli(*RUN, data, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    run_dir = tmp_path / "killed"
    killed = cli(
        *RUN,
        data,
        f"hydra.run.dir={run_dir}",
        "+callbacks.kill._target_=hint_lightning.testing.callbacks.KillAtStep",
        "+callbacks.kill.step=10",  # mid-epoch 2 (6 batches an epoch); last checkpoint: step 8
        cwd=tmp_path,
    )
    assert killed.returncode == -9  # SIGKILL: no clean-up ran
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 8

    resumed = cli(*RUN, data, f"hydra.run.dir={run_dir}", f"ckpt_path={last}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, actual = state(tmp_path / "whole" / "checkpoints" / "last.ckpt"), state(last)
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 12
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=0, msg=key)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "whole", run_dir)]
    assert metrics[0]["val/acc"] == metrics[1]["val/acc"]
