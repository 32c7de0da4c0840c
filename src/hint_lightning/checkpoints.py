"""Reading our checkpoints: weights for fine-tuning, the stored config for evaluation."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU.

    Raises:
        FileNotFoundError: with the path, when it does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    # Our checkpoints hold only tensors and plain containers (the run config, RNG states as
    # tensors), so the safe loader suffices.
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Copy the weights of a checkpoint into ``model`` (strict: every key must match).

    Raises:
        RuntimeError: naming the checkpoint, when the architectures differ.
    """
    state = read_checkpoint(path)
    state_dict = state.get("state_dict", state)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise RuntimeError(
            f"the weights in {path} do not fit this model (is it the same architecture and "
            f"dataset?): {error}"
        ) from error
