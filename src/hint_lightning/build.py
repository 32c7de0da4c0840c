"""Build the LightningModule from its config and the data's info, refusing a model that does
not fit the data (e.g. ``model=patch_classifier`` on VQA data) with one line naming both
options, instead of an ``AttributeError`` deep inside the model."""

from __future__ import annotations

import functools
import typing
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from hint_lightning.utils.cli_errors import ConfigError

__all__ = ["build_model", "option_name"]


def option_name(group: str, node: Any) -> str:
    """How the user chose a config group: ``model=patch_classifier`` in a Hydra run, else the
    class of its ``_target_`` (e.g. ``model ClassificationModule``)."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return f"{group}={choice}"
    target = str(node.get("_target_", "?")) if isinstance(node, DictConfig | dict) else "?"
    return f"{group} {target.rpartition('.')[2]}"


def _expected_info(cls: Any) -> type | None:
    """The class annotated for the ``data_info`` argument of ``cls``, if any."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: no check from it
        return None
    expected = hints.get("data_info")
    if expected in (Any, object) or not isinstance(expected, type):
        return None
    return expected


def build_model(
    model_cfg: DictConfig, data_info: Any, objective: Any, data_option: str = "data"
) -> pl.LightningModule:
    """``instantiate(model_cfg)(objective=..., data_info=...)``, checking that they fit.

    Args:
        model_cfg: the ``model`` config (already checked when it comes from a checkpoint).
        data_info: the data's info (``VQADataInfo``, ``CaptionDataInfo``, ...).
        objective: the grounding objective, or None.
        data_option: how the data was chosen, for the message (see :func:`option_name`).

    Raises:
        ConfigError: naming the model and data options, when the model is made for another
            kind of data.
    """
    factory = instantiate(model_cfg, _partial_=True)
    cls = factory.func if isinstance(factory, functools.partial) else factory
    model_option = option_name("model", model_cfg)
    info_name = type(data_info).__name__

    def mismatch(detail: str) -> ConfigError:
        return ConfigError(
            f"{model_option} does not fit {data_option}: {detail}; pick a model and data of the "
            "same task (each experiment=... config pairs them)"
        )

    expected = _expected_info(cls)
    if expected is not None and not isinstance(data_info, expected):
        raise mismatch(
            f"{cls.__name__} is made for {expected.__name__}, the data gives {info_name}"
        )
    try:
        return factory(objective=objective, data_info=data_info)
    except AttributeError as error:
        if getattr(error, "obj", None) is data_info:
            raise mismatch(f"it needs {error.name!r}, which {info_name} does not have") from None
        raise
