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
from hint_lightning.importance.replacement import tile_batch
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


SMALL = {  # every method, with settings small enough for a test
    "gradient": {},
    "input_x_gradient": {},
    "integrated_gradients": {"n_steps": 5},
    "expected_gradients": {"n_samples": 3, "seed": 0},
    "visfis_expected_gradients": {"n_samples": 3, "seed": 0},
    "leave_one_out": {},
    "keep_one_in": {},
    "kernel_shap": {"n_samples": 6, "seed": 0},
    "attention": {},
    "token_gradient": {},
    "token_input_x_gradient": {},
}
NEEDS_INTERNALS = {"attention_gradcam", "attention_rollout", "chefer_relevance"}
"""Exercised on a transformer in tests/test_transformer_importance.py (the tiny model here has
no attention maps)."""


def test_every_method_is_exercised_here() -> None:
    assert set(SMALL) | NEEDS_INTERNALS == set(METHODS)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_uses_gradients_says_which_methods_need_autograd(tiny, proposals_of, name) -> None:
    method = get_method(name, **SMALL[name])
    with torch.inference_mode():
        proposals = proposals_of()
        if method.uses_gradients:
            with pytest.raises(ValueError, match="inference_mode"):
                method.attribute(tiny().decision_function(), proposals)
        else:
            method.attribute(tiny().decision_function(), proposals)


class CountingForward:
    """The tiny model's forward function, recording the rows of every call."""

    def __init__(self, model) -> None:
        self.model, self.rows = model, []

    def __call__(self, proposals, mask):
        self.rows.append(proposals.shape[0])
        return self.model.score(proposals, mask)

    def with_shift(self, proposals, mask, shift):
        self.rows.append(proposals.shape[0])
        return self.model.score_with_shift(proposals, mask, shift)

    def attention(self, proposals, mask):
        self.rows.append(proposals.shape[0])
        return self.model.attention(proposals, mask)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_passes_counts_the_rows_evaluated(tiny, proposals_of, name) -> None:
    method = get_method(name, **SMALL[name])
    forward = CountingForward(tiny())
    method.attribute(forward, proposals_of())
    assert sum(forward.rows) == method.forward_passes(4) * 3


@pytest.mark.parametrize(
    "name", sorted(name for name in SMALL if get_method(name).forward_passes(4) > 1)
)
def test_chunking_bounds_the_rows_and_keeps_the_numbers(tiny, proposals_of, name) -> None:
    model, proposals = tiny(), proposals_of()
    forward = CountingForward(model)
    chunked = get_method(name, **SMALL[name], max_batch_rows=7).attribute(forward, proposals)
    assert max(forward.rows) == 6  # two copies of the batch of 3
    whole = get_method(name, **SMALL[name], max_batch_rows=None).attribute(model.score, proposals)
    torch.testing.assert_close(chunked, whole)


def test_rows_are_copy_major(proposals_of) -> None:
    # A forward function that tiles a per-sample offset: row k * B + b must be sample b.
    offsets = torch.tensor([0.0, 10.0, 20.0], dtype=torch.float64)

    def score(proposals, mask):
        return (proposals.sum(dim=(1, 2)) + tile_batch(offsets, proposals.shape[0])) ** 2

    proposals = proposals_of()
    loo = get_method("leave_one_out", replacement="zeros").attribute(score, proposals)
    total = proposals.sum(dim=(1, 2)) + offsets
    without = total.unsqueeze(1) - proposals.sum(dim=2)
    torch.testing.assert_close(loo, total.unsqueeze(1) ** 2 - without**2)
