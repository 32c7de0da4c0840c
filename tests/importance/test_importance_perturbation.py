"""Leave-one-out, keep-one-in, KernelSHAP and attention against their references."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from captum.attr import FeatureAblation
from torch import Tensor
from torch.autograd import gradcheck

from hint_lightning.importance import (
    Attention,
    DecisionFunction,
    KeepOneIn,
    KernelShap,
    LeaveOneOut,
)

REPLACEMENTS = ("drop", "zeros", "mean", "shuffle", "negative_ones")


def _value(model, proposals: Tensor, mask: Tensor, b: int, kept: set[int], replacement: str):
    """Score of sample ``b`` with only the slots in ``kept`` left, built by hand."""
    alone = type(model)(model.weight, model.bias, model.question[b : b + 1], model.readout)
    features, row_mask = proposals[b].clone(), mask[b].clone()
    real = proposals[mask]  # [number of real proposals, D]
    for r in range(proposals.shape[1]):
        if r in kept:
            continue
        if replacement == "drop":
            row_mask[r] = False
        elif replacement == "zeros":
            features[r] = 0.0
        elif replacement == "negative_ones":
            features[r] = -1.0
        elif replacement == "mean":
            features[r] = real.mean(dim=0)
        elif replacement == "shuffle":
            features[r] = proposals[(b + 1) % proposals.shape[0], r]
    return alone.score(features.unsqueeze(0), row_mask.unsqueeze(0))[0]


def test_leave_one_out_with_zeros_equals_captum_feature_ablation(
    tiny, proposals_of, ragged_mask
) -> None:
    model, proposals = tiny(), proposals_of()
    ours = LeaveOneOut(replacement="zeros").attribute(model.score, proposals, ragged_mask)
    groups = torch.arange(4).view(1, 4, 1).expand(1, 4, 5)  # one group per proposal
    captum = FeatureAblation(model.score).attribute(
        proposals, baselines=0.0, feature_mask=groups, additional_forward_args=(ragged_mask,)
    )
    # Captum gives every feature of a group the group's score.
    torch.testing.assert_close(ours, captum[..., 0].masked_fill(~ragged_mask, 0))


@pytest.mark.parametrize("replacement", REPLACEMENTS)
def test_leave_one_out_equals_a_loop(tiny, proposals_of, ragged_mask, replacement) -> None:
    model, proposals = tiny(), proposals_of()
    ours = LeaveOneOut(replacement, max_batch_rows=5).attribute(model.score, proposals, ragged_mask)
    slots = set(range(4))
    reference = torch.tensor(
        [
            [
                _value(model, proposals, ragged_mask, b, slots, replacement)
                - _value(model, proposals, ragged_mask, b, slots - {r}, replacement)
                for r in range(4)
            ]
            for b in range(3)
        ]
    )
    torch.testing.assert_close(ours, reference.masked_fill(~ragged_mask, 0))


@pytest.mark.parametrize("replacement", REPLACEMENTS)
def test_keep_one_in_equals_a_loop(tiny, proposals_of, ragged_mask, replacement) -> None:
    model, proposals = tiny(), proposals_of()
    ours = KeepOneIn(replacement, max_batch_rows=5).attribute(model.score, proposals, ragged_mask)
    reference = torch.tensor(
        [
            [
                _value(model, proposals, ragged_mask, b, {r}, replacement)
                - _value(model, proposals, ragged_mask, b, set(), replacement)
                for r in range(4)
            ]
            for b in range(3)
        ]
    )
    torch.testing.assert_close(ours, reference.masked_fill(~ragged_mask, 0))


def test_keep_one_in_with_drop_compares_with_the_empty_set(tiny, proposals_of) -> None:
    # No proposal left: the tiny model attends to nothing and scores <tanh(q), v>.
    model, proposals = tiny(), proposals_of()
    empty = torch.tanh(model.question) @ model.readout  # [B]
    only = KeepOneIn().attribute(model.score, proposals) + empty.unsqueeze(1)
    for r in range(4):
        torch.testing.assert_close(
            only[:, r], model.score(proposals[:, r : r + 1], torch.ones(3, 1, dtype=torch.bool))
        )


def test_an_empty_set_scored_as_nan_is_a_clear_error(tiny, proposals_of) -> None:
    model = tiny()

    def nan_when_empty(proposals, mask):
        return torch.where(mask.any(dim=1), model.score(proposals, mask), float("nan"))

    with pytest.raises(ValueError, match=r"KeepOneIn.*empty proposal set.*all-False"):
        KeepOneIn().attribute(nan_when_empty, proposals_of())
    LeaveOneOut().attribute(nan_when_empty, proposals_of())  # never empties a 4-proposal sample


def _shapley(model, proposals, mask, replacement) -> Tensor:
    """Exact Shapley values by their definition: a sum over every coalition."""
    batch, slots = mask.shape
    values = torch.zeros(batch, slots, dtype=proposals.dtype)
    for b, r in itertools.product(range(batch), range(slots)):
        others = [s for s in range(slots) if s != r]
        for size in range(slots):
            weight = math.factorial(size) * math.factorial(slots - size - 1) / math.factorial(slots)
            for coalition in itertools.combinations(others, size):
                with_r = _value(model, proposals, mask, b, {*coalition, r}, replacement)
                without = _value(model, proposals, mask, b, set(coalition), replacement)
                values[b, r] += weight * (with_r - without)
    return values.masked_fill(~mask, 0)


@pytest.mark.parametrize("replacement", ["drop", "zeros", "mean"])
def test_kernel_shap_is_exact_when_it_enumerates_every_coalition(
    tiny, proposals_of, ragged_mask, replacement
) -> None:
    model, proposals = tiny(), proposals_of()
    method = KernelShap(n_samples=14, replacement=replacement)  # 2^4 - 2 proper coalitions
    assert method.forward_passes(4) == 16
    ours = method.attribute(model.score, proposals, ragged_mask)
    torch.testing.assert_close(ours, _shapley(model, proposals, ragged_mask, replacement))


def test_sampled_kernel_shap_is_efficient_and_reproducible(tiny, proposals_of) -> None:
    model, proposals = tiny(), proposals_of(slots=8)
    ours = KernelShap(n_samples=30, seed=0).attribute(model.score, proposals)
    again = KernelShap(n_samples=30, seed=0).attribute(model.score, proposals)
    torch.testing.assert_close(ours, again)
    everything = torch.ones(3, 8, dtype=torch.bool)
    gain = model.score(proposals, everything) - model.score(proposals, ~everything)
    torch.testing.assert_close(ours.sum(dim=1), gain)  # efficiency holds exactly


def test_sampled_kernel_shap_solves_the_constrained_regression(tiny, proposals_of) -> None:
    # min_phi sum_z w_z (v(z) - v(none) - z . phi)^2  s.t.  sum(phi) = v(all) - v(none),
    # solved here through its KKT system, on the coalitions the method draws.
    model, proposals = tiny(), proposals_of(slots=8)
    kept, weights = KernelShap(n_samples=40, seed=5).coalitions(8)
    assert kept.shape == (40, 8) and (kept[:20] == ~kept[20:]).all()  # complementary pairs
    ours = KernelShap(n_samples=40, seed=5).attribute(model.score, proposals)
    everything = torch.ones(3, 8, dtype=torch.bool)
    for b in range(3):
        none = _value(model, proposals, everything, b, set(), "drop")
        gains = torch.stack(
            [
                _value(
                    model, proposals, everything, b, set(row.nonzero().flatten().tolist()), "drop"
                )
                - none
                for row in kept
            ]
        )
        z = kept.double()
        kkt = torch.zeros(9, 9, dtype=torch.float64)
        kkt[:8, :8] = 2 * z.T @ (weights.unsqueeze(1) * z)
        kkt[:8, 8] = kkt[8, :8] = 1.0
        total = _value(model, proposals, everything, b, set(range(8)), "drop") - none
        rhs = torch.cat([2 * z.T @ (weights * gains), total.view(1)])
        torch.testing.assert_close(ours[b], torch.linalg.solve(kkt, rhs)[:8])


def test_sampled_kernel_shap_approaches_the_shapley_values(tiny, proposals_of) -> None:
    model, proposals, mask = tiny(), proposals_of(slots=8), torch.ones(3, 8, dtype=torch.bool)
    exact = _shapley(model, proposals, mask, "drop")

    def mean_error(n_samples: int) -> float:
        errors = [
            (KernelShap(n_samples, seed=seed).attribute(model.score, proposals) - exact).abs().max()
            for seed in range(4)
        ]
        return float(sum(errors)) / len(errors)

    assert KernelShap(n_samples=250).forward_passes(8) == 252  # < 2^8 - 2 coalitions: sampled
    assert mean_error(250) < mean_error(16) / 3
    assert mean_error(250) < 0.2 * float(exact.abs().max())


def test_attention_returns_the_models_attention(tiny, proposals_of, ragged_mask) -> None:
    model, proposals = tiny(), proposals_of()
    ours = Attention().attribute(model.decision_function(), proposals, ragged_mask)
    torch.testing.assert_close(ours, model.attention(proposals, ragged_mask))


def test_attention_without_attention_is_a_clear_error(tiny, proposals_of) -> None:
    with pytest.raises(ValueError, match=r"Attention\(\) needs .*attention\(proposals"):
        Attention().attribute(tiny().score, proposals_of())


def test_drop_needs_a_forward_function_that_honours_the_mask(tiny, proposals_of) -> None:
    no_mask = DecisionFunction(tiny().score, supports_mask=False)
    with pytest.raises(ValueError, match=r"LeaveOneOut\(replacement='drop'\) needs .*mask"):
        LeaveOneOut().attribute(no_mask, proposals_of())
    LeaveOneOut(replacement="zeros").attribute(no_mask, proposals_of())


METHODS = {
    "leave_one_out": lambda: LeaveOneOut(replacement="mean"),
    "keep_one_in": lambda: KeepOneIn(),
    "kernel_shap": lambda: KernelShap(n_samples=4, seed=0),
    "attention": lambda: Attention(),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_second_order_gradients_pass_gradcheck(tiny, proposals_of, name) -> None:
    model = tiny(batch=2, dim=3, hidden=2)
    mask = torch.tensor([[True, True, True], [True, False, True]])

    def importance(proposals, weight):
        model.weight = weight
        method = METHODS[name]()
        return method.attribute(model.decision_function(), proposals, mask, create_graph=True)

    proposals = proposals_of(batch=2, slots=3, dim=3).requires_grad_(True)
    assert gradcheck(importance, (proposals, model.weight.clone().requires_grad_(True)))


def test_without_create_graph_no_graph_is_built(tiny, proposals_of) -> None:
    model = tiny()
    model.weight.requires_grad_(True)
    for method in (LeaveOneOut(), KeepOneIn(), KernelShap(n_samples=4), Attention()):
        assert method.attribute(model.decision_function(), proposals_of()).grad_fn is None
