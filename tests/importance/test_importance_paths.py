"""Input x gradient, integrated gradients and expected gradients against their references."""

from __future__ import annotations

import pytest
import torch
from captum.attr import InputXGradient as CaptumInputXGradient
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from torch.autograd import gradcheck

from hint_lightning.importance import (
    ExpectedGradients,
    InputXGradient,
    IntegratedGradients,
    VisFISExpectedGradients,
)
from hint_lightning.importance.replacement import replacement_values


def test_input_x_gradient_equals_captum_summed(tiny, proposals_of, ragged_mask) -> None:
    model, proposals = tiny(), proposals_of()
    ours = InputXGradient().attribute(model.score, proposals, ragged_mask)
    captum = CaptumInputXGradient(model.score).attribute(
        proposals.clone().requires_grad_(True), additional_forward_args=(ragged_mask,)
    )
    torch.testing.assert_close(ours, captum.sum(dim=-1).masked_fill(~ragged_mask, 0))


@pytest.mark.parametrize(
    "method",
    ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"],
)
@pytest.mark.parametrize("baseline", ["zeros", "mean", -0.5])
def test_integrated_gradients_equals_captum(
    tiny, proposals_of, ragged_mask, method, baseline
) -> None:
    model, proposals = tiny(), proposals_of()
    ours = IntegratedGradients(n_steps=7, baseline=baseline, method=method, max_batch_rows=6)
    importance = ours.attribute(model.score, proposals, ragged_mask)
    if isinstance(baseline, str):
        start = replacement_values(proposals, ragged_mask, baseline)
    else:
        start = torch.full_like(proposals, baseline)
    captum = CaptumIntegratedGradients(model.score).attribute(
        proposals,
        baselines=start,
        additional_forward_args=(ragged_mask,),
        n_steps=7,
        method=method,
    )
    # Captum builds its Riemann points in float32 (torch.linspace(...).tolist()).
    tolerance = {} if method == "gausslegendre" else {"rtol": 1e-6, "atol": 1e-6}
    torch.testing.assert_close(
        importance, captum.sum(dim=-1).masked_fill(~ragged_mask, 0), **tolerance
    )


def test_integrated_gradients_is_complete(tiny, proposals_of, ragged_mask) -> None:
    # Completeness (Sundararajan et al.): sum_r IG_r = score(P) - score(baseline).
    model, proposals = tiny(), proposals_of()
    importance = IntegratedGradients(n_steps=32).attribute(model.score, proposals, ragged_mask)
    expected = model.score(proposals, ragged_mask) - model.score(0 * proposals, ragged_mask)
    torch.testing.assert_close(importance.sum(dim=1), expected)


def _reference_expected_gradients(model, proposals, mask, draws, baseline, multiply):
    """Brute force: a loop over draws and samples, one single-sample gradient at a time."""
    n_samples, batch = draws.alphas.shape
    result = torch.zeros(mask.shape, dtype=proposals.dtype)
    for b in range(batch):
        alone = type(model)(model.weight, model.bias, model.question[b : b + 1], model.readout)
        for k in range(n_samples):
            if draws.partners is None:
                start = replacement_values(proposals, mask, baseline)[b]
            else:
                start = proposals[int(draws.partners[k, b])]
            point = start + float(draws.alphas[k, b]) * (proposals[b] - start)
            point = point.unsqueeze(0).requires_grad_(True)
            (gradient,) = torch.autograd.grad(alone.score(point, mask[b : b + 1]).sum(), point)
            term = (proposals[b] - start) * gradient[0] if multiply else gradient[0]
            result[b] += term.sum(dim=-1) / n_samples
    return result.masked_fill(~mask, 0)


@pytest.mark.parametrize("baseline", ["samples", "negative_ones", "mean"])
@pytest.mark.parametrize("visfis", [False, True])
def test_expected_gradients_equal_a_loop_with_the_same_draws(
    tiny, proposals_of, ragged_mask, baseline, visfis
) -> None:
    model, proposals = tiny(), proposals_of()
    cls = VisFISExpectedGradients if visfis else ExpectedGradients
    method = cls(n_samples=5, baseline=baseline, seed=3, max_batch_rows=7)
    importance = method.attribute(model.decision_function(), proposals, ragged_mask)
    draws = cls(n_samples=5, baseline=baseline, seed=3).draw(3)  # the same seed: the same draws
    reference = _reference_expected_gradients(
        model, proposals, ragged_mask, draws, baseline, multiply=not visfis
    )
    torch.testing.assert_close(importance, reference)


def test_expected_gradients_draw_partners_among_the_other_samples() -> None:
    draws = ExpectedGradients(n_samples=200, seed=0).draw(4)
    assert ((draws.alphas >= 0) & (draws.alphas < 1)).all()
    assert (draws.partners != torch.arange(4)).all()
    assert set(draws.partners.flatten().tolist()) == {0, 1, 2, 3}


def test_expected_gradients_reproducible_by_seed_and_fresh_each_call(tiny, proposals_of) -> None:
    model, proposals = tiny(), proposals_of()
    first, second = ExpectedGradients(seed=1), ExpectedGradients(seed=1)
    once = first.attribute(model.score, proposals)
    torch.testing.assert_close(second.attribute(model.score, proposals), once)
    assert not torch.equal(first.attribute(model.score, proposals), once)
    generator = torch.Generator().manual_seed(1)
    from_generator = ExpectedGradients(generator=generator).attribute(model.score, proposals)
    torch.testing.assert_close(from_generator, once)


def test_visfis_variant_takes_the_shift_path_with_the_same_numbers(tiny, proposals_of) -> None:
    model, proposals = tiny(), proposals_of()
    fast = VisFISExpectedGradients(seed=2).attribute(model.decision_function(), proposals)
    plain = VisFISExpectedGradients(seed=2, use_shift=False).attribute(model.score, proposals)
    torch.testing.assert_close(fast, plain)


def test_samples_baseline_needs_two_samples(tiny) -> None:
    with pytest.raises(ValueError, match="at least 2 samples"):
        ExpectedGradients().attribute(tiny(batch=1).score, torch.randn(1, 3, 5).double())


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of gausslegendre"):
        IntegratedGradients(method="simpson")
    with pytest.raises(ValueError, match="choose a number or one of zeros"):
        IntegratedGradients(baseline="drop")
    with pytest.raises(ValueError, match=r"unknown baseline 'blur'.*other samples of the batch"):
        ExpectedGradients(baseline="blur")
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        ExpectedGradients(n_samples=0)


METHODS = {
    "input_x_gradient": lambda: InputXGradient(),
    "integrated_gradients": lambda: IntegratedGradients(n_steps=3, baseline="mean"),
    "expected_gradients": lambda: ExpectedGradients(n_samples=2, seed=0),
    "visfis_expected_gradients": lambda: VisFISExpectedGradients(n_samples=2, seed=0),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_second_order_gradients_pass_gradcheck(tiny, proposals_of, name) -> None:
    model, mask = (
        tiny(batch=2, dim=3, hidden=2),
        torch.tensor([[True, True, True], [True, False, True]]),
    )

    def importance(proposals, weight):
        model.weight = weight
        method = METHODS[name]()  # fresh, so that every call draws the same points
        return method.attribute(model.decision_function(), proposals, mask, create_graph=True)

    proposals = proposals_of(batch=2, slots=3, dim=3).requires_grad_(True)
    assert gradcheck(importance, (proposals, model.weight.clone().requires_grad_(True)))
