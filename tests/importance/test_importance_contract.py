"""The contract every importance method shares: the call, capabilities, costs, registry, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hint_lightning.importance import (
    METHODS,
    DecisionFunction,
    Gradient,
    ImportanceMethod,
    capabilities,
    get_method,
)
from hint_lightning.train import CONFIG_DIR

IMPORTANCE_CONFIGS = Path(CONFIG_DIR) / "importance"


def test_a_plain_callable_offers_the_mask_only() -> None:
    assert capabilities(lambda p, m: p.sum((1, 2))) == {"mask"}


def test_a_decision_function_offers_what_it_was_given(tiny) -> None:
    model = tiny()
    assert capabilities(model.decision_function()) == {"mask", "with_shift", "attention"}
    assert capabilities(DecisionFunction(model.score, supports_mask=False)) == set()
    proposals, mask = torch.randn(3, 4, 5, dtype=torch.float64), torch.ones(3, 4, dtype=torch.bool)
    torch.testing.assert_close(
        model.decision_function()(proposals, mask), model.score(proposals, mask)
    )


def test_missing_capability_names_the_method_and_the_capability() -> None:
    class NeedsAttention(Gradient):
        @property
        def requires(self) -> frozenset[str]:
            return frozenset({"attention"})

    with pytest.raises(ValueError, match=r"NeedsAttention\(use_shift=True\) needs .*attention"):
        NeedsAttention().attribute(lambda p, m: p.sum((1, 2)), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="backbone Tiny does not offer: attention"):
        NeedsAttention().check_capabilities({"mask"}, where="backbone Tiny")


def test_unknown_method_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown importance method 'saliency'.*gradient"):
        get_method("saliency")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_has_a_config_that_builds_it(name: str) -> None:
    built = instantiate(OmegaConf.load(IMPORTANCE_CONFIGS / f"{name}.yaml"))
    assert isinstance(built, METHODS[name]) and isinstance(built, ImportanceMethod)
    assert type(get_method(name)) is METHODS[name]


def test_every_config_is_a_method() -> None:
    assert {path.stem for path in IMPORTANCE_CONFIGS.glob("*.yaml")} == set(METHODS)


def test_rejects_malformed_proposals_and_masks(tiny) -> None:
    with pytest.raises(ValueError, match=r"proposals must be a \[B, N, D\] tensor"):
        Gradient().attribute(tiny().score, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"proposal_mask must have shape \(3, 4\)"):
        Gradient().attribute(tiny().score, torch.zeros(3, 4, 5), torch.ones(3, 5))
