"""A HINT run on easy-VQA-CP killed at any step and resumed from its ``last.ckpt`` ends exactly
like the uninterrupted run: same global step, bit-identical weights, same metrics.

Without ``trainer.limit_train_batches`` (the normal case; the limit hid issue 10, item 2), with
it, with 0 and 2 loader workers, on 1 and 2 (DDP CPU) processes, killed in the first epoch, at
an epoch's end and in a later epoch. Each chain kills the same run several times (resuming after
each kill, as a restarted job does), so few runs cover many kill points. In-process kills raise
at the step (:class:`~hint_lightning.testing.callbacks.StopAtStep`); one run is killed for real
with SIGKILL. Epochs are kept short without limits: HINT fine-tuning on the hinted questions
(2,880) in batches of 512 gives 6 batches an epoch (the last one partial).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from hint_lightning.compose import compose_train_config
from hint_lightning.testing.callbacks import SimulatedKill
from hint_lightning.train import train

pytestmark = pytest.mark.slow

STEPS_PER_EPOCH = 6
RUN = (
    "experiment=easyvqa_cp_hint",
    "finetune=false",  # HINT from scratch: no baseline checkpoint needed
    "data.batch_size=512",
    "data.eval_batch_size=2048",
    "trainer.max_epochs=2",
    "trainer.limit_val_batches=1",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
    "logger=csv",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "test=false",
)


def run_in_process(data_dir: Path, out: Path, *overrides: str) -> dict[str, Any] | None:
    cfg = compose_train_config([*RUN, f"paths.data_dir={data_dir}", *overrides], output_dir=out)
    try:
        return train(cfg)
    except SimulatedKill:
        return None


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hint_lightning.train", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def last_checkpoint(run_dir: Path) -> dict[str, Any]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_same_end(run_dir: Path, whole_dir: Path) -> None:
    """Same final step, bit-identical weights, the same validation metrics."""
    actual, expected = last_checkpoint(run_dir), last_checkpoint(whole_dir)
    assert actual["global_step"] == expected["global_step"]
    assert expected["global_step"] == 2 * STEPS_PER_EPOCH
    for key, value in expected["state_dict"].items():
        torch.testing.assert_close(actual["state_dict"][key], value, rtol=0, atol=0, msg=key)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run_dir, whole_dir)]
    scores = [{k: v for k, v in m.items() if k.startswith(("val/", "train/"))} for m in metrics]
    assert scores[0] == scores[1]
    assert "val/acc" in scores[0]


def kill_chain(data_dir: Path, run_dir: Path, kills: list[int], *overrides: str) -> None:
    """Kill at each step of ``kills`` in turn (resuming from ``last.ckpt``), then finish."""
    resume: tuple[str, ...] = ()
    for step in kills:
        stop = (
            "+callbacks.kill._target_=hint_lightning.testing.callbacks.StopAtStep",
            f"+callbacks.kill.step={step}",
        )
        assert run_in_process(data_dir, run_dir, *overrides, *resume, *stop) is None
        assert last_checkpoint(run_dir)["global_step"] < step
        resume = (f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",)
    result = run_in_process(data_dir, run_dir, *overrides, *resume)
    assert result is not None and result["ckpt/last"].endswith("last.ckpt")


@pytest.fixture(scope="module")
def whole(easyvqa_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run (no limit, no workers)."""
    out = tmp_path_factory.mktemp("whole")
    assert run_in_process(easyvqa_data_dir, out) is not None
    return out


@pytest.mark.parametrize(
    ("kills", "overrides"),
    [
        # first epoch (checkpoint at step 2), then a later epoch (checkpoint at step 8)
        ([3, 9], ()),
        # the end of the first epoch (checkpoint after its validation), then a later epoch;
        # loader workers must not change a single batch
        ([7, 11], ("data.num_workers=2",)),
    ],
    ids=["epochs 0 and 1", "epoch end, 2 workers"],
)
def test_a_run_killed_at_any_step_resumes_exactly(
    kills: list[int],
    overrides: tuple[str, ...],
    whole: Path,
    easyvqa_data_dir: Path,
    tmp_path: Path,
) -> None:
    kill_chain(easyvqa_data_dir, tmp_path, kills, *overrides)
    assert_same_end(tmp_path, whole)


def test_a_run_with_a_batch_limit_resumes_exactly(easyvqa_data_dir: Path, tmp_path: Path) -> None:
    limit = ("trainer.limit_train_batches=3", "trainer.max_epochs=4")  # 12 steps as well
    assert run_in_process(easyvqa_data_dir, tmp_path / "whole", *limit) is not None
    kill_chain(easyvqa_data_dir, tmp_path / "killed", [3, 8], *limit)
    assert_same_end(tmp_path / "killed", tmp_path / "whole")


def test_two_processes_killed_twice_resume_exactly(easyvqa_data_dir: Path, tmp_path: Path) -> None:
    common = (*RUN, f"paths.data_dir={easyvqa_data_dir}", "trainer=ddp_cpu", "data.num_workers=2")
    whole = cli(*common, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    run_dir = tmp_path / "killed"
    resume: tuple[str, ...] = ()
    for step in (5, 9):  # checkpoints at step 4 (epoch 0) and step 8 (epoch 1)
        killed = cli(
            *common,
            *resume,
            f"hydra.run.dir={run_dir}",
            "+callbacks.kill._target_=hint_lightning.testing.callbacks.StopAtStep",
            f"+callbacks.kill.step={step}",
            cwd=tmp_path,
        )
        assert killed.returncode != 0 and "SimulatedKill" in killed.stderr, killed.stderr[-3000:]
        assert last_checkpoint(run_dir)["global_step"] == step - 1
        resume = (f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",)
    resumed = cli(*common, *resume, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_end(run_dir, tmp_path / "whole")


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    whole: Path, easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    common = (*RUN, f"paths.data_dir={easyvqa_data_dir}", f"hydra.run.dir={tmp_path}")
    killed = cli(
        *common,
        "+callbacks.kill._target_=hint_lightning.testing.callbacks.KillAtStep",
        "+callbacks.kill.step=5",  # mid first epoch; last checkpoint: step 4
        cwd=tmp_path,
    )
    assert killed.returncode == -9  # SIGKILL: no clean-up ran
    assert last_checkpoint(tmp_path)["global_step"] == 4
    last = tmp_path / "checkpoints" / "last.ckpt"
    resumed = cli(*common, f"ckpt_path={last}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_end(tmp_path, whole)
