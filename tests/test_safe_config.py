"""The allow-list a stored config's ``_target_`` entries must pass before anything is built."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hint_lightning.train import CONFIG_DIR
from hint_lightning.utils import safe_config
from hint_lightning.utils.safe_config import (
    TargetRule,
    UnsafeConfigError,
    check_stored_config,
    safe_instantiate,
    stored_targets,
)

REBUILT_GROUPS = ("data", "model", "objective", "importance")


def shipped_targets() -> list[str]:
    """Every ``_target_`` of the data, model, objective and importance configs we ship."""
    found = []
    for group in REBUILT_GROUPS:
        for path in sorted((Path(CONFIG_DIR) / group).glob("*.yaml")):
            node = yaml.safe_load(path.read_text()) or {}
            found += [target for _, target in stored_targets(node)]
    return found


@pytest.mark.parametrize("target", sorted(set(shipped_targets())))
def test_every_shipped_model_data_and_objective_target_is_allowed(target: str) -> None:
    check_stored_config({"node": {"_target_": target}}, "run.ckpt")


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("hint_lightning.utils.io.write_text", "outside the allow-list"),
        ("os.system", "outside the allow-list"),
        ("builtins.eval", "outside the allow-list"),
        ("pwn_payload.X", "outside the allow-list"),
        ("pytorch_lightning.Trainer", "outside the allow-list"),
        ("hint_lightning.data.easyvqa.question_template", "not a class"),
        ("hint_lightning.data.batch.VQADataInfo", "not a subclass of LightningDataModule"),
        ("hint_lightning.models.updn_vqa.__builtins__", "private attribute"),
        ("hint_lightning.models.no_such_module.Net", "cannot be imported"),
        ("torch.optim.lr_scheduler.LambdaLR.__init__", "private attribute"),
        ("hint_lightning.models", "not a class"),
        ("hint_lightning.models.updn_vqa.UpDnVQA; import os", "not a dotted class name"),
        (42, "not a dotted class name"),
    ],
)
def test_targets_outside_the_rule_are_refused_naming_file_path_and_target(
    target: Any, why: str
) -> None:
    tree = {"model": {"net": [{"_target_": target}]}}
    with pytest.raises(UnsafeConfigError) as caught:
        check_stored_config(tree, "/runs/x/last.ckpt")
    message = str(caught.value)
    assert message.startswith("/runs/x/last.ckpt: refused target model.net[0]._target_=")
    assert repr(target) in message and why in message
    assert "\n" not in message


def test_a_class_reexported_from_elsewhere_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import hint_lightning.models.layers as layers

    monkeypatch.setattr(layers, "Foreign", torch.nn.Linear, raising=False)
    with pytest.raises(UnsafeConfigError, match=r"not a class defined in hint_lightning\.models"):
        check_stored_config({"_target_": "hint_lightning.models.layers.Foreign"}, "c.ckpt")


def test_every_name_is_checked_before_anything_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imported: list[str] = []
    monkeypatch.setattr(safe_config.importlib, "import_module", imported.append)
    tree = {
        "data": {"_target_": "hint_lightning.data.easyvqa_datamodule.EasyVQACPDataModule"},
        "model": {"_target_": "hint_lightning.modules.vqa_module.VQAModule"},
        "objective": {"extra": [{"_target_": "evil_module_in_cwd.Payload"}]},
    }
    with pytest.raises(UnsafeConfigError, match=r"evil_module_in_cwd\.Payload"):
        check_stored_config(tree, "c.ckpt")
    assert imported == []
    assert "evil_module_in_cwd" not in sys.modules


@pytest.mark.parametrize(
    "value", ["${oc.env:HOME}", "prefix-${paths.data_dir}", "${oc.decode:'1'}"]
)
def test_interpolations_and_resolvers_are_refused(value: str) -> None:
    tree = {"data": {"_target_": "hint_lightning.data.decoy_digits.DecoyDigitsDataModule"}}
    tree["data"]["seed"] = value
    with pytest.raises(UnsafeConfigError, match=r"c.ckpt: refused interpolation data.seed="):
        check_stored_config(tree, "c.ckpt")


def test_a_new_rule_extends_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    node = {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 3}
    with pytest.raises(UnsafeConfigError):
        safe_instantiate(node, "c.ckpt")
    rules = (*safe_config.TARGET_RULES, TargetRule("torch.nn.modules.linear", ("torch.nn.Module",)))
    monkeypatch.setattr(safe_config, "TARGET_RULES", rules)
    node["_target_"] = "torch.nn.modules.linear.Linear"
    assert isinstance(safe_instantiate(node, "c.ckpt"), torch.nn.Linear)


def test_safe_instantiate_builds_allowed_nodes_with_nested_partials() -> None:
    node = {
        "_target_": "hint_lightning.models.patch_classifier.PatchMLP",
        "num_proposals": 4,
        "feature_dim": 3,
        "num_classes": 2,
    }
    model = safe_instantiate(node, "c.ckpt")
    assert model(torch.zeros(5, 4, 3)).shape == (5, 2)
    factory = safe_instantiate({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}, "c")
    assert factory(params=model.parameters()).defaults["lr"] == 0.1
