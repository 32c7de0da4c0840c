"""Reading our checkpoints: weights for fine-tuning, the stored config for evaluation.

Every entry point reads a checkpoint through :func:`read_checkpoint`, so that an empty or
truncated file (a run killed while saving) is one line naming the file and saying it is
incomplete, instead of a bare ``EOFError``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hint_lightning.utils.cli_errors import ConfigError

__all__ = ["CheckpointError", "WeightsMismatchError", "load_weights", "read_checkpoint"]


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: incomplete, corrupt, unsafe or foreign."""


class WeightsMismatchError(CheckpointError, RuntimeError):
    """The weights of a checkpoint do not fit the model (another architecture or dataset)."""


def _incomplete(path: str | os.PathLike[str], detail: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is incomplete ({detail}): it was probably cut off while being "
        "written (a run killed during a save); use another checkpoint, e.g. an earlier "
        "epoch_*.ckpt of the same run"
    )


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (tensors and plain containers only).

    Raises:
        FileNotFoundError: with the path, when it does not exist.
        CheckpointError: naming the file, when it is empty, truncated or corrupt, or holds
            objects other than tensors and plain containers.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = os.path.getsize(path)
    if size == 0:
        raise _incomplete(path, "0 bytes")
    # torch.save writes a zip archive whose directory is at its very end: a file cut short
    # has none (checked without reading the file).
    if not zipfile.is_zipfile(path):
        raise _incomplete(path, f"{size:,} bytes, no archive directory at its end")
    try:
        # Our checkpoints hold only tensors and plain containers (the run config, RNG states
        # as tensors), so the safe loader suffices.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain containers and is "
            f"refused (loading them could run code): {first}"
        ) from error
    except (EOFError, OSError, RuntimeError, zipfile.BadZipFile) as error:
        raise _incomplete(path, f"{size:,} bytes; {type(error).__name__}: {error}") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a Lightning checkpoint"
        )
    return checkpoint


def load_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    checkpoint: Mapping[str, Any] | None = None,
) -> None:
    """Copy the weights of a checkpoint into ``model`` (strict: every key must match).

    Args:
        model: the module to fill.
        path: the checkpoint file.
        checkpoint: its content when already read (:func:`read_checkpoint`), else it is read.

    Raises:
        WeightsMismatchError: naming the checkpoint, when the architectures differ (a
            ``RuntimeError`` as well).
        CheckpointError: when the file is incomplete or unsafe (see :func:`read_checkpoint`).
    """
    state = read_checkpoint(path) if checkpoint is None else checkpoint
    state_dict = state.get("state_dict", state)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise WeightsMismatchError(
            f"the weights in {path} do not fit this model (is it the same architecture and "
            f"dataset?): {error}"
        ) from error
