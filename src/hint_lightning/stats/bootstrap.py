"""Two-level bootstrap: 95% intervals over seeds and questions, and paired differences.

A study evaluates every configuration (a table row) with several training seeds on one test
split, so each metric is a matrix ``X[s, q]``: seed ``s``, question ``q`` (NaN where undefined,
e.g. a plausibility metric on a question without human importance). The row's estimate is the
mean over seeds of each seed's mean over its defined questions.

Each bootstrap replicate resamples the seeds with replacement, then the questions with
replacement, and recomputes the estimate. The question draw is shared by the seeds of a
replicate, because every seed answers the same test questions: how hard a question is does
not depend on the seed, and drawing the questions independently per seed would treat that
shared part as independent noise and understate the interval (the test
``tests/test_bootstrap.py`` checks the coverage on a crossed seed x question model). A
question a seed has no value for counts for the seeds that have one. A paired difference
against a control row (:meth:`SeedQuestionTable.difference`) uses the seeds and questions both
rows have, ``X_row - X_control`` cell by cell, and is bootstrapped the same way.

With only seed-level numbers (no per-question file) the table has one "question" per seed and
only the seeds are resampled. Intervals are percentile intervals of the replicates, from a
fixed resampling seed; everything is vectorized (replicates in chunks, questions as counts).
Few seeds make the seed level coarse (3 seeds: 10 distinct resamples); say so when reporting.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Interval", "SeedQuestionTable", "bootstrap_intervals"]

MAX_CELLS = 4_000_000
"""Replicates are drawn in chunks of at most this many (replicate, question) counts."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval.

    Attributes:
        estimate: mean over seeds of the per-seed mean over defined questions.
        low: lower bound (NaN when nothing varies: one seed and no per-question values).
        high: upper bound.
        level: the interval's nominal coverage.
        seeds: number of seeds with a defined value.
        questions: number of questions (1 for seed-level values).
    """

    estimate: float
    low: float
    high: float
    level: float
    seeds: int
    questions: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None)."""
        return {
            key: (None if isinstance(value, float) and np.isnan(value) else value)
            for key, value in self.__dict__.items()
        }


@dataclass(frozen=True)
class SeedQuestionTable:
    """Metric values per seed and question: ``values[name]`` is ``[S, Q]`` float.

    Attributes:
        seeds: the ``S`` seed labels.
        questions: the ``Q`` question ids (``("*",)`` for seed-level values).
        values: metric name -> ``[S, Q]`` float64, NaN where undefined or missing.
    """

    seeds: tuple[Hashable, ...]
    questions: tuple[Hashable, ...]
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.seeds), len(self.questions))
        for name, matrix in self.values.items():
            if matrix.shape != shape:
                raise ValueError(f"metric {name!r} has shape {matrix.shape}, expected {shape}")

    @classmethod
    def from_records(
        cls, records: Iterable[tuple[Hashable, Hashable, Mapping[str, float | None]]]
    ) -> SeedQuestionTable:
        """Build from ``(seed, question id, {metric: value})`` records (None or NaN: undefined).

        Raises:
            ValueError: when a (seed, question) pair appears twice.
        """
        rows: dict[tuple[Hashable, Hashable], Mapping[str, float | None]] = {}
        seeds: dict[Hashable, None] = {}
        questions: dict[Hashable, None] = {}
        names: dict[str, None] = {}
        for seed, question, metrics in records:
            if (seed, question) in rows:
                raise ValueError(f"question {question!r} appears twice for seed {seed!r}")
            rows[(seed, question)] = metrics
            seeds.setdefault(seed)
            questions.setdefault(question)
            names.update(dict.fromkeys(metrics))
        seed_index = {s: i for i, s in enumerate(seeds)}
        question_index = {q: i for i, q in enumerate(questions)}
        values = {name: np.full((len(seeds), len(questions)), np.nan) for name in names}
        for (seed, question), metrics in rows.items():
            i, j = seed_index[seed], question_index[question]
            for name, value in metrics.items():
                if value is not None:
                    values[name][i, j] = float(value)
        return cls(tuple(seeds), tuple(questions), values)

    @classmethod
    def from_seed_values(
        cls, per_seed: Mapping[Hashable, Mapping[str, float]]
    ) -> SeedQuestionTable:
        """Seed-level values: ``{seed: {metric: value}}`` (one pseudo-question)."""
        return cls.from_records((seed, "*", metrics) for seed, metrics in per_seed.items())

    def estimates(self) -> dict[str, float]:
        """Metric -> mean over seeds of the per-seed mean over defined questions."""
        return {name: _estimate(matrix) for name, matrix in self.values.items()}

    def difference(self, control: SeedQuestionTable) -> SeedQuestionTable:
        """``self - control`` on the seeds, questions and metrics both have (paired).

        Raises:
            ValueError: when the two tables share no seed or no question.
        """
        seeds = [s for s in self.seeds if s in set(control.seeds)]
        questions = [q for q in self.questions if q in set(control.questions)]
        if not seeds or not questions:
            raise ValueError(
                f"no common {'seed' if not seeds else 'question'} with the control: a paired "
                "difference needs the same seeds and questions"
            )
        mine = _index(self, seeds, questions)
        theirs = _index(control, seeds, questions)
        names = [n for n in self.values if n in control.values]
        values = {n: self.values[n][mine] - control.values[n][theirs] for n in names}
        return SeedQuestionTable(tuple(seeds), tuple(questions), values)


def _index(
    table: SeedQuestionTable, seeds: Sequence[Hashable], questions: Sequence[Hashable]
) -> tuple[np.ndarray, np.ndarray]:
    """``np.ix_`` of the given seeds and questions in ``table``."""
    seed_index = {s: i for i, s in enumerate(table.seeds)}
    question_index = {q: i for i, q in enumerate(table.questions)}
    return np.ix_([seed_index[s] for s in seeds], [question_index[q] for q in questions])


def _estimate(matrix: np.ndarray) -> float:
    """Mean over seeds (with a defined value) of each seed's mean over defined questions."""
    defined = ~np.isnan(matrix)
    counts = defined.sum(axis=1)
    sums = np.where(defined, matrix, 0.0).sum(axis=1)
    seeds = counts > 0
    return float(np.mean(sums[seeds] / counts[seeds])) if seeds.any() else float("nan")


def bootstrap_intervals(
    table: SeedQuestionTable,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    max_cells: int = MAX_CELLS,
) -> dict[str, Interval]:
    """Percentile intervals of every metric of the table (module docstring: the scheme).

    Every metric uses the same replicates (the same seeds and questions drawn), so intervals of
    one table are jointly resampled.

    Args:
        table: the values.
        resamples: the number of bootstrap replicates.
        level: the nominal coverage (0.95: the 2.5th and 97.5th percentiles).
        seed: the resampling seed (fixed: the same numbers every time).
        max_cells: memory bound of one chunk of replicates.

    Returns:
        metric name -> :class:`Interval`.

    Example:
        >>> table = SeedQuestionTable.from_records(
        ...     (s, q, {"acc": float((q + s) % 2)}) for s in range(3) for q in range(50))
        >>> interval = bootstrap_intervals(table)["acc"]
        >>> round(interval.estimate, 3), interval.low < interval.estimate < interval.high
        (0.5, True)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    names = list(table.values)
    num_seeds, num_questions = len(table.seeds), len(table.questions)
    if not names or num_seeds == 0:
        return {}
    stacked = np.stack([table.values[n] for n in names])  # [M, S, Q]
    defined = ~np.isnan(stacked)
    filled = np.where(defined, stacked, 0.0).reshape(-1, num_questions).T  # [Q, M * S]
    weights = defined.reshape(-1, num_questions).T.astype(np.float64)
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, num_seeds, size=(resamples, num_seeds))
    replicates = np.empty((resamples, len(names)))
    chunk = max(1, max_cells // max(num_questions, 1))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.integers(0, num_questions, size=(size, num_questions))
        offsets = (np.arange(size)[:, None] * num_questions + draws).ravel()
        counts = np.bincount(offsets, minlength=size * num_questions)
        counts = counts.reshape(size, num_questions).astype(np.float64)
        sums = (counts @ filled).reshape(size, len(names), num_seeds)
        totals = (counts @ weights).reshape(size, len(names), num_seeds)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed = sums / totals  # [size, M, S]; NaN where a seed drew no defined question
        picked = np.take_along_axis(per_seed, seed_draws[start : start + size][:, None, :], axis=2)
        with np.errstate(invalid="ignore"):
            counted = (~np.isnan(picked)).sum(axis=2)
            replicates[start : start + size] = np.where(
                counted > 0, np.nansum(picked, axis=2) / np.maximum(counted, 1), np.nan
            )
    tail = 100.0 * (1.0 - level) / 2.0
    out = {}
    for index, name in enumerate(names):
        seeds_defined = int((defined[index].sum(axis=1) > 0).sum())
        column = replicates[:, index]
        varies = seeds_defined > 1 or num_questions > 1
        if varies and not np.isnan(column).all():
            low, high = np.nanpercentile(column, [tail, 100.0 - tail])
        else:
            low = high = float("nan")
        out[name] = Interval(
            estimate=_estimate(table.values[name]),
            low=float(low),
            high=float(high),
            level=level,
            seeds=seeds_defined,
            questions=num_questions,
        )
    return out
