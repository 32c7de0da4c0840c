"""Checkpoint writes survive a kill at any point: ``last.ckpt`` is always a complete checkpoint,
and nothing is left in the system temporary directory (which may be another filesystem)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from hint_lightning.callbacks.checkpoint_io import AtomicCheckpointIO, save_atomically
from hint_lightning.compose import compose_train_config

# Saves checkpoint 1, then dies (SIGKILL, no clean-up) at the first call of the named functions
# while saving checkpoint 2, with the trainer's CheckpointIO as our configs build it.
SCRIPT = """
import importlib, os, signal, sys
import torch
from hydra.utils import instantiate
from hint_lightning.compose import compose_train_config

run_dir, kill_at = sys.argv[1], sys.argv[2]
cfg = compose_train_config(["trainer.accelerator=cpu"], output_dir=run_dir)
io = instantiate(cfg.trainer, logger=False, callbacks=[]).strategy.checkpoint_io
target = os.path.join(run_dir, "checkpoints", "last.ckpt")
io.save_checkpoint({"step": 1, "weights": torch.full((50_000,), 1.0)}, target)

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

for name in kill_at.split(","):
    module, attribute = name.rsplit(".", 1)
    setattr(importlib.import_module(module), attribute, die)
io.save_checkpoint({"step": 2, "weights": torch.full((50_000,), 2.0)}, target)
"""

KILL_POINTS = {
    # Lightning's fsspec commit is a copy across filesystems: it truncates last.ckpt first.
    "during a copy": "os.sendfile,shutil.copyfileobj",
    "before the rename": "os.replace,os.rename",
    "while syncing to disk": "os.fsync",
}


@pytest.fixture
def system_tmp(tmp_path: Path) -> Path:
    """An empty system temporary directory, on another filesystem when /dev/shm is one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        folder = shm / f"hint-lightning-test-{uuid.uuid4().hex}"
        folder.mkdir()
        yield folder
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    else:
        folder = tmp_path / "system_tmp"
        folder.mkdir()
        yield folder


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_a_kill_while_saving_keeps_a_complete_last_checkpoint(
    kill_point: str, tmp_path: Path, system_tmp: Path
) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(run_dir), KILL_POINTS[kill_point]],
        env={**os.environ, "TMPDIR": str(system_tmp)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, -9), result.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)  # complete, loadable
    assert checkpoint["step"] in (1, 2)
    torch.testing.assert_close(
        checkpoint["weights"], torch.full((50_000,), 1.0 * checkpoint["step"])
    )
    assert list(system_tmp.iterdir()) == []  # no orphan in the system temporary directory


def test_the_trainer_configs_write_checkpoints_atomically(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    for trainer in ("default", "cpu", "ddp_cpu"):
        cfg = compose_train_config([f"trainer={trainer}"], output_dir=tmp_path)
        built = instantiate(cfg.trainer, logger=False, callbacks=[])
        assert isinstance(built.strategy.checkpoint_io, AtomicCheckpointIO), trainer


def test_a_failed_save_leaves_the_old_checkpoint_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        save_atomically({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.ckpt"]
