"""Specification of the grounding metrics: rank correlation with human importance, misgrounding."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from hint_lightning.metrics.grounding import (
    GroundingCorrelation,
    MisgroundedRate,
    rank_with_ties,
    spearman_rank_correlation,
    top_proposal_outside_human_topk,
)

NAN = float("nan")


def _random_rows(
    seed: int, rows: int = 200, n: int = 12, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Values with many ties (small integers), and masks keeping 0 to n entries per row."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 5, (rows, n), generator=generator).to(dtype)
    y = torch.randint(0, 5, (rows, n), generator=generator).to(dtype)
    keep = torch.randint(0, n + 1, (rows, 1), generator=generator)
    order = torch.rand(rows, n, generator=generator).argsort(dim=1)
    mask = order < keep  # a random subset of `keep` entries per row
    return x, y, mask


def _scipy_spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input and returns nan
        return float(stats.spearmanr(x, y).statistic)


# ---------------------------------------------------------------------------------------------
# rank_with_ties: 1-based average ranks among the valid entries; nan on invalid entries.
# ---------------------------------------------------------------------------------------------


def test_ranks_match_scipy_rankdata_with_ties_and_masks() -> None:
    x, _, mask = _random_rows(seed=0)
    ranks = rank_with_ties(x, mask)
    assert ranks.shape == x.shape
    for row in range(x.shape[0]):
        valid = mask[row]
        expected = stats.rankdata(x[row][valid].numpy(), method="average")
        np.testing.assert_array_equal(ranks[row][valid].numpy(), expected)
        assert ranks[row][~valid].isnan().all()


def test_ranks_without_mask_use_every_entry() -> None:
    x = torch.tensor([[3.0, 1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    expected = torch.tensor([[3.5, 1.0, 3.5, 2.0], [2.5, 2.5, 2.5, 2.5]])
    torch.testing.assert_close(rank_with_ties(x), expected)


def test_ranks_ignore_values_of_invalid_entries() -> None:
    x = torch.tensor([[5.0, -100.0, 1.0, 100.0]])
    mask = torch.tensor([[True, False, True, False]])
    torch.testing.assert_close(
        rank_with_ties(x, mask), torch.tensor([[2.0, NAN, 1.0, NAN]]), equal_nan=True
    )


def test_ranks_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        rank_with_ties(torch.zeros(3))
    with pytest.raises(ValueError, match="mask shape"):
        rank_with_ties(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------
# spearman_rank_correlation: Pearson of average ranks; nan where scipy gives nan.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spearman_matches_scipy_on_random_rows(dtype: torch.dtype) -> None:
    x, y, mask = _random_rows(seed=1, dtype=dtype)
    rho = spearman_rank_correlation(x, y, mask)
    assert rho.shape == (x.shape[0],)
    assert rho.dtype == dtype
    expected = torch.tensor(
        [_scipy_spearman(x[r][mask[r]].numpy(), y[r][mask[r]].numpy()) for r in range(len(x))],
        dtype=dtype,
    )
    assert expected.isnan().any() and (~expected.isnan()).sum() > 100  # both kinds are covered
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(rho, expected, atol=atol, rtol=0, equal_nan=True)


def test_spearman_matches_scipy_on_continuous_values() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(50, 100, generator=generator, dtype=torch.float64)
    y = x + 0.5 * torch.rand(50, 100, generator=generator, dtype=torch.float64)
    expected = torch.tensor(
        [_scipy_spearman(a.numpy(), b.numpy()) for a, b in zip(x, y, strict=True)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(spearman_rank_correlation(x, y), expected, atol=1e-12, rtol=0)


def test_spearman_hand_cases() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 2.0]])
    y = torch.tensor([[2.0, 4.0, 9.0], [9.0, 4.0, 2.0], [1.0, 2.0, 3.0]])
    # third row: ranks x = (1, 2.5, 2.5), y = (1, 2, 3): rho = 1.5 / sqrt(1.5 * 2)
    expected = torch.tensor([1.0, -1.0, 1.5 / math.sqrt(3.0)])
    torch.testing.assert_close(spearman_rank_correlation(x, y), expected)


@pytest.mark.parametrize(
    ("x", "y", "mask"),
    [
        ([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], [[True, False, False]]),  # one valid entry
        ([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], [[False, False, False]]),  # none
        ([[4.0, 4.0, 4.0]], [[1.0, 2.0, 3.0]], [[True, True, True]]),  # constant x
        ([[1.0, 2.0, 3.0]], [[0.0, 0.0, 7.0]], [[True, True, False]]),  # constant valid y
    ],
)
def test_spearman_is_nan_where_undefined(
    x: list[list[float]], y: list[list[float]], mask: list[list[bool]]
) -> None:
    rho = spearman_rank_correlation(torch.tensor(x), torch.tensor(y), torch.tensor(mask))
    assert rho.isnan().all()


def test_spearman_two_entries_are_plus_or_minus_one() -> None:
    x = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]])
    y = torch.tensor([[3.0, 5.0, 9.0], [5.0, 3.0, 9.0]])
    mask = torch.tensor([[True, True, False]] * 2)
    torch.testing.assert_close(spearman_rank_correlation(x, y, mask), torch.tensor([1.0, -1.0]))


# ---------------------------------------------------------------------------------------------
# top_proposal_outside_human_topk
# ---------------------------------------------------------------------------------------------


def test_top_proposal_outside_human_top3() -> None:
    human = torch.tensor([[0.9, 0.8, 0.7, 0.1, 0.0]] * 3)
    network = torch.tensor(
        [
            [0.0, 0.0, 1.0, 0.0, 0.0],  # 3rd most human-important: inside
            [0.0, 0.0, 0.0, 1.0, 0.0],  # 4th: outside
            [0.0, 0.0, 0.0, 0.0, 1.0],  # last: outside
        ]
    )
    outside = top_proposal_outside_human_topk(network, human)
    assert outside.dtype == torch.bool
    assert outside.tolist() == [False, True, True]


def test_top_proposal_ties_with_kth_human_value_count_as_inside() -> None:
    human = torch.tensor([[0.9, 0.5, 0.5, 0.5, 0.1]])
    network = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])  # tied with the 3rd largest (0.5)
    assert top_proposal_outside_human_topk(network, human, k=3).tolist() == [False]
    assert top_proposal_outside_human_topk(network, human, k=1).tolist() == [True]


def test_top_proposal_ignores_padded_proposals() -> None:
    human = torch.tensor([[0.0, 0.1, 0.2, 0.3, 5.0, 5.0]])
    network = torch.tensor([[1.0, 0.0, 0.0, 0.0, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True, True, False, False]])
    # padding neither wins the network argmax nor takes human top-3 places: 0 is 4th of 4
    assert top_proposal_outside_human_topk(network, human, mask).tolist() == [True]


def test_top_proposal_with_few_or_no_valid_proposals() -> None:
    human = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])
    network = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [False, False, False, False]])
    # three valid proposals are all in the top-3; no valid proposal gives False
    assert top_proposal_outside_human_topk(network, human, mask).tolist() == [False, False]
    # k larger than N
    assert top_proposal_outside_human_topk(network, human, k=10).tolist() == [False, False]


def test_top_proposal_network_ties_take_the_first_proposal() -> None:
    human = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    network = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0]])  # proposals 0 and 4 tie: 0 is taken
    assert top_proposal_outside_human_topk(network, human).tolist() == [True]


def test_top_proposal_matches_per_row_definition() -> None:
    network, human, mask = _random_rows(seed=3, n=8)
    network = network + torch.rand(network.shape, generator=torch.Generator().manual_seed(4))
    outside = top_proposal_outside_human_topk(network, human, mask, k=3)
    for row in range(len(network)):
        valid = mask[row].nonzero().squeeze(1).tolist()
        if not valid:
            assert not outside[row]
            continue
        top = max(valid, key=lambda j: network[row, j].item())
        human_sorted = sorted((human[row, j].item() for j in valid), reverse=True)
        kth = human_sorted[min(3, len(valid)) - 1]
        assert outside[row].item() == (human[row, top].item() < kth)


def test_top_proposal_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        top_proposal_outside_human_topk(torch.zeros(1, 3), torch.zeros(1, 3), k=0)


# ---------------------------------------------------------------------------------------------
# GroundingCorrelation: mean Spearman rho over questions with human importance and defined rho.
# ---------------------------------------------------------------------------------------------


def test_grounding_correlation_hand_case() -> None:
    network = torch.tensor(
        [
            [1.0, 2.0, 3.0, 0.0],  # rho = 1
            [3.0, 2.0, 1.0, 0.0],  # rho = -1, but no human importance: skipped
            [1.0, 3.0, 2.0, 0.0],  # rho = 0.5
            [1.0, 1.0, 1.0, 0.0],  # constant: undefined
        ]
    )
    human = torch.tensor([[1.0, 2.0, 3.0, 9.0]] * 4)
    mask = torch.tensor([[True, True, True, False]] * 4)
    has_importance = torch.tensor([True, False, True, True])
    metric = GroundingCorrelation()
    metric.update(network, human, mask, has_importance)
    assert metric.compute().item() == pytest.approx(0.75)
    assert metric.num_defined.item() == 2
    assert metric.num_undefined.item() == 1


def test_grounding_correlation_accumulates_over_updates() -> None:
    x, y, mask = _random_rows(seed=5, dtype=torch.float32)
    has_importance = torch.rand(len(x), generator=torch.Generator().manual_seed(6)) < 0.7
    whole = GroundingCorrelation()
    whole.update(x, y, mask, has_importance)
    split = GroundingCorrelation()
    split.update(x[:77], y[:77], mask[:77], has_importance[:77])
    split.update(x[77:], y[77:], mask[77:], has_importance[77:])
    rho = spearman_rank_correlation(x, y, mask)
    counted = has_importance & ~rho.isnan()
    expected = rho[counted].mean()
    torch.testing.assert_close(whole.compute(), expected)
    torch.testing.assert_close(split.compute(), expected)
    assert split.num_undefined.item() == (has_importance & rho.isnan()).sum().item()


def test_grounding_correlation_is_nan_without_defined_questions() -> None:
    metric = GroundingCorrelation()
    ones = torch.ones(2, 3)
    metric.update(ones, ones, torch.ones(2, 3, dtype=torch.bool), torch.tensor([True, False]))
    assert metric.compute().isnan()
    assert metric.num_undefined.item() == 1


def test_grounding_correlation_accepts_tensors_requiring_grad() -> None:
    network = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    metric = GroundingCorrelation()
    metric.update(
        network,
        torch.tensor([[1.0, 2.0, 3.0]]),
        torch.ones(1, 3, dtype=torch.bool),
        torch.tensor([True]),
    )
    assert metric.compute().item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# MisgroundedRate: % of correct questions with human importance whose top proposal is outside
# the human top-3.
# ---------------------------------------------------------------------------------------------


def test_misgrounded_rate_hand_case() -> None:
    human = torch.tensor([[0.9, 0.8, 0.7, 0.1, 0.0]] * 5)
    top_3rd = [0.0, 0.0, 1.0, 0.0, 0.0]  # inside the human top-3
    top_4th = [0.0, 0.0, 0.0, 1.0, 0.0]  # outside
    network = torch.tensor([top_3rd, top_4th, top_4th, top_4th, top_4th])
    mask = torch.ones(5, 5, dtype=torch.bool)
    has_importance = torch.tensor([True, True, True, False, True])
    correct = torch.tensor([True, True, True, True, False])
    metric = MisgroundedRate()
    metric.update(network, human, mask, has_importance, correct)
    # counted: rows 0, 1, 2 (row 3 lacks importance, row 4 is wrong); misgrounded: rows 1, 2
    assert metric.compute().item() == pytest.approx(200.0 / 3.0)


def test_misgrounded_rate_accumulates_and_resets() -> None:
    human = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    yes = torch.tensor([True])
    metric = MisgroundedRate()
    metric.update(torch.tensor([[1.0, 0, 0, 0, 0]]), human, mask, yes, yes)
    metric.update(torch.tensor([[0.0, 0, 0, 0, 1]]), human, mask, yes, yes)
    # with k = 3, ties at the 3rd largest human value (0.0) are inside: nothing is misgrounded
    assert metric.compute().item() == pytest.approx(0.0)
    strict = MisgroundedRate(k=1)
    strict.update(torch.tensor([[1.0, 0, 0, 0, 0]]), human, mask, yes, yes)
    strict.update(torch.tensor([[0.0, 0, 0, 0, 1]]), human, mask, yes, yes)
    assert strict.compute().item() == pytest.approx(50.0)
    strict.reset()
    strict.update(torch.tensor([[0.0, 0, 0, 0, 1]]), human, mask, yes, yes)
    assert strict.compute().item() == pytest.approx(100.0)


def test_misgrounded_rate_is_nan_without_counted_questions() -> None:
    metric = MisgroundedRate()
    x = torch.rand(2, 4)
    mask = torch.ones(2, 4, dtype=torch.bool)
    metric.update(x, x, mask, torch.tensor([True, False]), torch.tensor([False, True]))
    assert metric.compute().isnan()


def test_misgrounded_rate_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        MisgroundedRate(k=0)
