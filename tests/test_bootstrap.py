"""Two-level bootstrap: estimates by hand, pairing, determinism, and the coverage of the
intervals on simulated studies whose true mean is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hint_lightning.stats import SeedQuestionTable, bootstrap_intervals


def test_estimate_is_the_mean_over_seeds_of_per_seed_means_over_defined_questions() -> None:
    table = SeedQuestionTable.from_records(
        [
            (0, "q1", {"acc": 1.0, "rho": 0.5}),
            (0, "q2", {"acc": 0.0, "rho": None}),  # rho undefined for this question
            (0, "q3", {"acc": 1.0, "rho": float("nan")}),
            (1, "q1", {"acc": 0.0, "rho": 0.1}),
            (1, "q2", {"acc": 0.0, "rho": 0.3}),
        ]
    )
    assert table.seeds == (0, 1) and table.questions == ("q1", "q2", "q3")
    estimates = table.estimates()
    assert estimates["acc"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert estimates["rho"] == pytest.approx((0.5 + 0.2) / 2)
    intervals = bootstrap_intervals(table, resamples=200)
    assert intervals["acc"].estimate == pytest.approx(estimates["acc"])
    assert intervals["acc"].seeds == 2 and intervals["acc"].questions == 3
    with pytest.raises(ValueError, match="appears twice"):
        SeedQuestionTable.from_records([(0, 1, {"a": 1.0}), (0, 1, {"a": 2.0})])


def test_one_seed_level_value_has_no_interval_and_resampling_is_deterministic() -> None:
    single = SeedQuestionTable.from_seed_values({0: {"acc": 50.0}})
    interval = bootstrap_intervals(single)["acc"]
    assert interval.estimate == 50.0 and math.isnan(interval.low) and math.isnan(interval.high)
    assert interval.as_dict()["low"] is None
    seeds = SeedQuestionTable.from_seed_values({s: {"acc": 40.0 + 5 * s} for s in range(5)})
    first = bootstrap_intervals(seeds, seed=3)["acc"]
    assert first == bootstrap_intervals(seeds, seed=3)["acc"]
    assert 40.0 <= first.low < first.estimate == 50.0 < first.high <= 60.0


def test_chunking_does_not_change_the_numbers() -> None:
    rng = np.random.default_rng(0)
    table = SeedQuestionTable(tuple(range(4)), tuple(range(30)), {"m": rng.normal(size=(4, 30))})
    whole = bootstrap_intervals(table, resamples=100, max_cells=10_000)
    chunked = bootstrap_intervals(table, resamples=100, max_cells=30 * 7)
    assert whole["m"].low == pytest.approx(chunked["m"].low)
    assert whole["m"].high == pytest.approx(chunked["m"].high)


def test_paired_difference_uses_common_seeds_and_questions() -> None:
    row = SeedQuestionTable.from_records(
        (s, q, {"acc": float(q == 1) + s}) for s in (0, 1, 2) for q in (1, 2, 3)
    )
    control = SeedQuestionTable.from_records(
        (s, q, {"acc": 0.0, "other": 1.0}) for s in (1, 2, 7) for q in (2, 3, 4)
    )
    diff = row.difference(control)
    assert diff.seeds == (1, 2) and diff.questions == (2, 3) and list(diff.values) == ["acc"]
    np.testing.assert_array_equal(diff.values["acc"], [[1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match="no common seed"):
        row.difference(SeedQuestionTable.from_records([(9, 1, {"acc": 0.0})]))


def test_a_question_effect_is_shared_by_the_seeds_not_divided_by_their_number() -> None:
    """Every seed answers the same questions: with no seed effect at all, the interval is that
    of the questions' mean, however many seeds there are."""
    rng = np.random.default_rng(1)
    difficulty = rng.normal(0.0, 1.0, 400)
    table = SeedQuestionTable(
        tuple(range(8)), tuple(range(400)), {"m": np.tile(difficulty, (8, 1))}
    )
    interval = bootstrap_intervals(table, resamples=2000)["m"]
    expected = 2 * 1.96 * difficulty.std(ddof=1) / math.sqrt(400)
    assert interval.high - interval.low == pytest.approx(expected, rel=0.1)


def simulated_study(
    rng: np.random.Generator, seeds: int, questions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Control and treated rows of one study (crossed seeds x questions, true means 0.5, 0.7).

    ``x[s, q] = mean + seed effect + question effect + noise``; the treated row shares the
    questions' effects and adds its own seed and noise terms (a paired design).
    """
    question = rng.normal(0.0, 2.0, questions)[None]
    control = (
        0.5 + rng.normal(0.0, 1.0, (seeds, 1)) + question + rng.normal(0.0, 1.0, (seeds, questions))
    )
    treated = (
        control + 0.2 + rng.normal(0.0, 0.5, (seeds, 1)) + rng.normal(0.0, 0.5, (seeds, questions))
    )
    return control, treated


@pytest.mark.slow
def test_intervals_cover_the_true_mean_and_difference_about_95_percent_of_the_time() -> None:
    """400 simulated studies of 25 seeds x 100 questions: the 95% intervals of the control's
    mean and of the paired difference contain the true value in 95% +- 3 points of them.

    The Monte-Carlo standard error of a coverage near 95% over 400 studies is 1.1 points. Over
    1,000 other studies the coverage was 94.5% (mean) and 92.8% (difference,
    where the seed level dominates: a percentile bootstrap over 25 seeds runs ~1-2 points
    short, as a z interval does against t with 24 degrees of freedom)."""
    rng = np.random.default_rng(2024)
    studies, seeds, questions = 400, 25, 100
    covered_mean = covered_difference = 0
    for study in range(studies):
        control, treated = simulated_study(rng, seeds, questions)
        ids = (tuple(range(seeds)), tuple(range(questions)))
        control_table = SeedQuestionTable(*ids, {"m": control})
        treated_table = SeedQuestionTable(*ids, {"m": treated})
        mean = bootstrap_intervals(control_table, resamples=1000, seed=study)["m"]
        paired = treated_table.difference(control_table)
        difference = bootstrap_intervals(paired, resamples=1000, seed=study)["m"]
        covered_mean += mean.low <= 0.5 <= mean.high
        covered_difference += difference.low <= 0.2 <= difference.high
    assert abs(covered_mean / studies - 0.95) <= 0.03, covered_mean / studies
    assert abs(covered_difference / studies - 0.95) <= 0.03, covered_difference / studies
