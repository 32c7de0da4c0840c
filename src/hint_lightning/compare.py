"""Compare finished runs: one row per configuration, means with 95% intervals, paired deltas.

``python -m hint_lightning.compare RUN_DIR... [--output DIR] [--stage test] [--control ROW]``
reads the ``metrics.json`` of every run (a folder holding several runs, e.g. ``logs/demo`` or
``logs/easyvqa_cp_hint``, is searched recursively) and prints, per row, the mean over its runs
(seeds) of the accuracy overall and per answer type, of the rank correlations with human
importance and of the grounding metrics present (pointing game, relevance mass, sufficiency
and comprehensiveness AOPC, area between the removal curves, FPVG+), each with a 95% bootstrap
interval (:mod:`hint_lightning.stats.bootstrap`: seeds, then questions when the runs wrote
``per_question.jsonl``, else seeds only). With ``--control ROW`` it also prints each row's
paired difference from that row (same seeds, same questions) with its interval. With
``--output`` it writes ``compare_results.md``, ``.json`` and ``.csv`` there (atomically).

Rows: a run's experiment and seed come from its config (:mod:`hint_lightning.stats.runs`); the
runs of one experiment whose command-line overrides differ (the jobs of a sweep over
``objective.weight``) are separate rows, named by the differing overrides, e.g.
``easyvqa_cp_hint [objective.weight=3]``. Seeds, ``init_from``, paths, loggers and devices never
split a row (``--ignore-override KEY`` adds keys). Rows come in the order in which their first
run finished (``metrics.json`` modification time; names break ties), which puts a baseline
before the fine-tunes started from it. A per-question column is used for the metric of the
same name (``plausibility/pointing_game`` for ``test/plausibility/pointing_game``, ``acc`` for
``test/acc``), on the same scale.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from hint_lightning.stats.bootstrap import Interval, SeedQuestionTable, bootstrap_intervals
from hint_lightning.stats.runs import (
    IGNORED_OVERRIDES,
    METRICS_FILE,
    RunRecord,
    experiment_name,
    find_run_dirs,
    load_run,
    question_table,
    row_labels,
    seed_labels,
    seed_table,
)
from hint_lightning.utils.io import atomic_path, write_json, write_text
from hint_lightning.utils.report import VQA_COLUMNS, markdown_lines, rich_table, summarize

__all__ = [
    "METRICS_FILE",
    "RunRecord",
    "compare_runs",
    "experiment_name",
    "find_run_dirs",
    "load_run",
    "main",
    "markdown_table",
    "summarize_runs",
    "table_keys",
    "write_results",
]

WIDE_CONSOLE = 160
"""Console width when the output is not a terminal (files, CI logs, notebooks)."""

RESULTS_STEM = "compare_results"
"""``--output`` gets ``compare_results.md``, ``.json`` and ``.csv``."""

GROUNDING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("plausibility/pointing_game", "pointing game"),
    ("plausibility/relevance_mass", "rel. mass"),
    ("faithfulness/sufficiency_aopc", "suff. AOPC"),
    ("faithfulness/comprehensiveness_aopc", "comp. AOPC"),
    ("faithfulness/curve_area", "LeRF-MoRF area"),
    ("fpvg/fpvg_plus", "FPVG+"),
)
"""Grounding columns shown when some run has them (JSON and CSV hold every metric): the
evaluation suite's ``<stage>/<family>/<metric>`` keys (:mod:`hint_lightning.modules.
metric_suite`)."""


def table_keys(stage: str = "test") -> list[tuple[str, str, int]]:
    """Metric key, column title and decimals of each Table-1 column.

    Example:
        >>> table_keys()[0], table_keys()[-1]
        (('test/acc', 'Overall', 2), ('test/rho_attention', 'rho (attention)', 3))
    """
    return [
        (f"{stage}/{suffix}", title, 3 if suffix.startswith("rho") else 2)
        for suffix, title in VQA_COLUMNS
    ]


def display_keys(rows: Sequence[dict[str, Any]], stage: str = "test") -> list[tuple[str, str, int]]:
    """The Table-1 columns, then the grounding columns that some row has a value for."""
    extra = [
        (f"{stage}/{suffix}", title, 3)
        for suffix, title in GROUNDING_COLUMNS
        if any(row.get(f"{stage}/{suffix}", {}).get("n") for row in rows)
    ]
    return table_keys(stage) + extra


def _stat(values: Sequence[float], interval: Interval | None, source: str) -> dict[str, Any]:
    """``{"mean", "std", "n", "low", "high", "interval_from"}``; None where not measured."""
    mean, std = summarize(values)
    low = interval.low if interval is not None else math.nan
    high = interval.high if interval is not None else math.nan
    return {
        "mean": None if math.isnan(mean) else mean,
        "std": None if math.isnan(std) else std,
        "n": len(values),
        "low": None if math.isnan(low) else low,
        "high": None if math.isnan(high) else high,
        "interval_from": source if interval is not None and not math.isnan(low) else None,
    }


def _intervals(
    questions: SeedQuestionTable | None, seeds: SeedQuestionTable, options: dict[str, Any]
) -> dict[str, tuple[Interval, str]]:
    """Metric -> (interval, source): per-question values where present, else seed-level."""
    out = {k: (v, "seeds") for k, v in bootstrap_intervals(seeds, **options).items()}
    if questions is not None:
        for key, interval in bootstrap_intervals(questions, **options).items():
            if key in out:
                out[key] = (interval, "questions")
    return out


@dataclass(frozen=True)
class _RowTables:
    """A row's runs, their seed labels, and their per-question and seed-level values."""

    runs: list[RunRecord]
    labels: list[str]
    questions: SeedQuestionTable | None
    seeds: SeedQuestionTable


def summarize_runs(
    records: Sequence[RunRecord],
    stage: str = "test",
    *,
    control: str | None = None,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    ignore: Sequence[str] = IGNORED_OVERRIDES,
) -> list[dict[str, Any]]:
    """One row per configuration: mean, std and bootstrap interval of every metric of the stage.

    Args:
        records: the runs.
        stage: the metric prefix: ``test`` (CP-test for VQA-CP) or ``val``.
        control: the row to pair every other row with (its label), or None.
        resamples: bootstrap replicates.
        level: the intervals' coverage.
        seed: the resampling seed.
        ignore: override keys that never split a row.

    Returns:
        Rows ``{"experiment", "runs", "run_dirs", "seeds", <metric>: {"mean", "std", "n",
        "low", "high", "interval_from"}, "paired": {<metric>: {...}}}`` in the order in which
        each row's first run finished; ``paired`` (the difference from the control's runs of
        the same seeds, question by question when both have per-question values) only with
        ``control``, on the other rows. A metric no run of the row has has mean None.

    Raises:
        ValueError: when ``control`` names no row.
    """
    groups: dict[str, list[RunRecord]] = {}
    for record, label in zip(records, row_labels(records, ignore), strict=True):
        groups.setdefault(label, []).append(record)
    order = sorted(groups, key=lambda name: (min(r.finished for r in groups[name]), name))
    if control is not None and control not in groups:
        raise ValueError(f"--control {control!r} is not a row; the rows are: {', '.join(order)}")
    options = {"resamples": resamples, "level": level, "seed": seed}
    table = [key for key, _, _ in table_keys(stage)]
    found = sorted({k for r in records for k in r.metrics if k.startswith(f"{stage}/")})
    keys = table + [key for key in found if key not in table]
    tables = {}
    for name in order:
        runs = sorted(groups[name], key=lambda r: (r.finished, str(r.path)))
        labels = seed_labels(runs)
        tables[name] = _RowTables(
            runs, labels, question_table(runs, labels, stage), seed_table(runs, labels, stage)
        )
    rows = []
    for name in order:
        data = tables[name]
        intervals = _intervals(data.questions, data.seeds, options)
        row: dict[str, Any] = {
            "experiment": name,
            "runs": len(data.runs),
            "run_dirs": [str(r.path) for r in data.runs],
            "seeds": data.labels,
        }
        for key in keys:
            interval, source = intervals.get(key, (None, ""))
            values = [r.metrics[key] for r in data.runs if key in r.metrics]
            row[key] = _stat(values, interval, source)
        if control is not None and name != control:
            row["paired"] = _paired(tables[name], tables[control], keys, options)
        rows.append(row)
    return rows


def _paired(
    mine: _RowTables, theirs: _RowTables, keys: Sequence[str], options: dict[str, Any]
) -> dict[str, Any]:
    """Interval of ``row - control`` per metric: question-level where both have the values."""
    found: dict[str, tuple[Interval, str]] = {}
    pairs = (("seeds", mine.seeds, theirs.seeds), ("questions", mine.questions, theirs.questions))
    for source, own, control in pairs:
        if own is None or control is None:
            continue
        try:
            difference = own.difference(control)
        except ValueError:  # no common seed or question
            continue
        found.update(
            {k: (v, source) for k, v in bootstrap_intervals(difference, **options).items()}
        )
    out = {}
    for key in keys:
        if key in found:
            interval, source = found[key]
            stat = interval.as_dict()
            out[key] = {"mean": stat.pop("estimate"), **stat, "interval_from": source}
    return out


def compare_runs(
    run_dirs: Iterable[str | Path], stage: str = "test", **options: Any
) -> list[dict[str, Any]]:
    """Find, read, group and summarize runs (:func:`summarize_runs` for the rows and options)."""
    return summarize_runs([load_run(path) for path in find_run_dirs(run_dirs)], stage, **options)


def _cell(stat: dict[str, Any] | None, digits: int) -> str:
    """``'mean [low, high]'``; the mean alone without an interval; an em dash without a mean."""
    if not stat or stat.get("mean") is None:
        return "—"
    text = f"{stat['mean']:.{digits}f}"
    if stat.get("low") is not None and stat.get("high") is not None:
        text += f" [{stat['low']:.{digits}f}, {stat['high']:.{digits}f}]"
    return text


def _tables(
    rows: Sequence[dict[str, Any]], stage: str
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Header, value rows and paired-difference rows."""
    columns = display_keys(rows, stage)
    header = ["experiment", *[title for _, title, _ in columns], "runs"]
    values = [
        [row["experiment"], *[_cell(row.get(k), d) for k, _, d in columns], str(row["runs"])]
        for row in rows
    ]
    paired = [
        [
            row["experiment"],
            *[_cell(row["paired"].get(k), d) for k, _, d in columns],
            str(row["runs"]),
        ]
        for row in rows
        if "paired" in row
    ]
    return header, values, paired


def markdown_table(
    rows: Sequence[dict[str, Any]], stage: str = "test", control: str | None = None
) -> str:
    """The comparison as Markdown (values, then the paired differences), with a note."""
    header, values, paired = _tables(rows, stage)
    lines = markdown_lines(header, values)
    note = (
        f"\nMean over the runs (seeds) of each row on the {stage} split, [95% bootstrap "
        "interval: seeds, then questions where per-question values exist]; accuracy in percent; "
        "rho: mean Spearman rank correlation with human importance; — : not measured."
    )
    text = "\n".join(lines) + "\n" + note + "\n"
    if paired:
        text += f"\nPaired difference from {control} (same seeds and questions):\n\n"
        text += "\n".join(markdown_lines(header, paired)) + "\n"
    return text


def print_table(
    rows: Sequence[dict[str, Any]], stage: str = "test", control: str | None = None
) -> None:
    """Print the comparison to the console."""
    console = Console()
    if not console.is_terminal:  # logs and notebooks: do not squeeze the table into 80 columns
        console = Console(width=WIDE_CONSOLE)
    header, values, paired = _tables(rows, stage)
    console.print(rich_table(f"Runs compared ({stage}): mean [95% interval]", header, values))
    if paired:
        console.print(rich_table(f"Paired difference from {control}", header, paired))


def _csv_lines(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Long format: one line per row and metric."""
    lines: list[list[Any]] = [
        ["experiment", "metric", "mean", "low", "high", "std", "runs", "interval_from",
         "diff_mean", "diff_low", "diff_high", "diff_interval_from"]
    ]  # fmt: skip
    for row in rows:
        for key, stat in row.items():
            if not isinstance(stat, dict) or "mean" not in stat:
                continue
            diff = row.get("paired", {}).get(key, {})
            lines.append(
                [row["experiment"], key, stat["mean"], stat["low"], stat["high"], stat["std"],
                 stat["n"], stat["interval_from"], diff.get("mean"), diff.get("low"),
                 diff.get("high"), diff.get("interval_from")]
            )  # fmt: skip
    return lines


def write_results(
    rows: Sequence[dict[str, Any]],
    output_dir: str | Path,
    stage: str = "test",
    control: str | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[Path, Path, Path]:
    """Write ``compare_results.md``, ``.json`` and ``.csv`` (atomically).

    Returns:
        The paths of the Markdown, JSON and CSV files.
    """
    output_dir = Path(output_dir)
    markdown = write_text(output_dir / f"{RESULTS_STEM}.md", markdown_table(rows, stage, control))
    payload = {"stage": stage, "control": control, **(options or {}), "rows": list(rows)}
    payload_path = write_json(output_dir / f"{RESULTS_STEM}.json", payload)
    table = output_dir / f"{RESULTS_STEM}.csv"
    with atomic_path(table) as tmp, tmp.open("w", newline="") as handle:
        csv.writer(handle).writerows(_csv_lines(rows))
    return markdown, payload_path, table


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command-line entry point; returns the rows."""
    parser = argparse.ArgumentParser(
        prog="python -m hint_lightning.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, help="run folders or folders holding runs"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="write compare_results.{md,json,csv} here"
    )
    parser.add_argument("--stage", choices=("test", "val"), default="test", help="which split")
    parser.add_argument("--control", default=None, help="the row every other row is paired with")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--level", type=float, default=0.95, help="interval coverage")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="resampling seed")
    parser.add_argument(
        "--ignore-override", action="append", default=[], metavar="KEY",
        help="an override key that does not split a row (repeatable; 'prefix.*' for a group)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    options = {"resamples": args.resamples, "level": args.level, "seed": args.bootstrap_seed}
    try:
        rows = compare_runs(
            args.run_dirs, args.stage, control=args.control,
            ignore=(*IGNORED_OVERRIDES, *args.ignore_override), **options,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print_table(rows, args.stage, args.control)
    if args.output is not None:
        written = write_results(rows, args.output, args.stage, args.control, options)
        Console().print(f"Wrote {', '.join(str(p) for p in written)}.")
    return rows


if __name__ == "__main__":
    main()
