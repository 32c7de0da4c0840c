"""Tables of results: the console table at the end of a run, Markdown and JSON for reports."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

VQA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("acc", "Overall"),
    ("acc_yes_no", "Yes/No"),
    ("acc_number", "Number"),
    ("acc_other", "Other"),
    ("rho", "rho (net. imp.)"),
    ("rho_attention", "rho (attention)"),
)
"""Metric suffixes and column titles of a Table-1-shaped VQA table."""

TASK_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("acc", "Accuracy", 2),  # VQA (titled "Overall" beside the answer types) and classification
    ("acc_yes_no", "Yes/No", 2),
    ("acc_number", "Number", 2),
    ("acc_other", "Other", 2),
    ("Bleu_4", "BLEU-4", 3),  # captioning: coco-caption's corpus scores
    ("METEOR", "METEOR", 3),
    ("ROUGE_L", "ROUGE-L", 3),
    ("CIDEr", "CIDEr", 3),
    ("SPICE", "SPICE", 3),
)
"""``(metric suffix, title, digits)`` of each task's own metrics in the console table."""
GROUNDING_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("rho", "rho (net. imp.)", 3),
    ("rho_attention", "rho (attention)", 3),
    ("misgrounded", "misgrounded (%)", 2),
    ("decoy_share", "net. imp. on decoy (%)", 2),
)
"""``(metric suffix, title, digits)`` of the grounding metrics, after the task's own."""


def format_value(value: float | None, digits: int = 2) -> str:
    """``12.3456 -> '12.35'``; None or NaN -> an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def summarize(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaN for no values.

    Example:
        >>> summarize([1.0, 3.0])
        (2.0, 1.4142135623730951)
        >>> summarize([5.0])
        (5.0, 0.0)
    """
    if not values:
        return float("nan"), float("nan")
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def summary_row(
    name: str, seeds: Sequence[Mapping[str, float]], keys: Sequence[str], seconds: Sequence[float]
) -> dict[str, Any]:
    """One table row over seeds: ``{"model", key: {"mean", "std"} ..., "seconds"}``.

    Args:
        name: the row title.
        seeds: one metrics dict per seed (a key missing in a seed is skipped for that seed).
        keys: the metrics to summarize.
        seconds: wall time per seed (its mean goes to ``seconds``).
    """
    row: dict[str, Any] = {"model": name}
    for key in keys:
        mean, std = summarize([m[key] for m in seeds if key in m])
        row[key] = {"mean": mean, "std": std}
    row["seconds"] = summarize(list(seconds))[0]
    return row


def format_mean_std(stat: Mapping[str, float | None], digits: int = 2) -> str:
    """A ``{"mean", "std"}`` summary as ``'mean ± std'``; an em dash when the mean is missing.

    Example:
        >>> format_mean_std({"mean": 64.0, "std": 12.7279})
        '64.00 ± 12.73'
        >>> format_mean_std({"mean": float("nan"), "std": float("nan")})
        '—'
    """
    mean = format_value(stat["mean"], digits)
    return mean if mean == "—" else f"{mean} ± {format_value(stat['std'], digits)}"


def markdown_lines(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (header, separator, one line per row of cells).

    Example:
        >>> for line in markdown_lines(["model", "acc"], [["UpDn", "39.49"]]):
        ...     print(line)
        | model | acc |
        |---|---|
        | UpDn | 39.49 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def rich_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A rich table: the first column left-aligned (names), the others right-aligned."""
    table = Table(title=title)
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index == 0 else "right")
    for cells in rows:
        table.add_row(*cells)
    return table


def table_columns(
    metrics: Mapping[str, float], stages: Sequence[str] = ("val", "test")
) -> list[tuple[str, str, int]]:
    """The ``(suffix, title, digits)`` columns of :func:`metrics_table` for these metrics.

    The task's own metrics that are present (VQA: accuracy by answer type, including answer
    types beyond yes/no, number and other; captioning: BLEU-4, METEOR, ROUGE-L, CIDEr, SPICE;
    classification: accuracy), then the grounding metrics that are present.

    Example:
        >>> [title for _, title, _ in table_columns({"test/CIDEr": 0.5, "test/rho": 0.1})]
        ['CIDEr', 'rho (net. imp.)']
    """
    suffixes = {key.split("/", 1)[1] for key in metrics if key.split("/", 1)[0] in stages}
    known = {suffix for suffix, _, _ in (*TASK_COLUMNS, *GROUNDING_COLUMNS)}
    extra_types = sorted(s for s in suffixes - known if s.startswith("acc_"))
    present = [column for column in TASK_COLUMNS if column[0] in suffixes]
    accuracy = [c for c in present if c[0].startswith("acc")]
    accuracy += [(s, s[4:].replace("_", " ").capitalize(), 2) for s in extra_types]
    if len(accuracy) > 1 and accuracy[0][0] == "acc":  # overall beside the answer types
        accuracy[0] = ("acc", "Overall", 2)
    others = [c for c in present if not c[0].startswith("acc")]
    return accuracy + others + [c for c in GROUNDING_COLUMNS if c[0] in suffixes]


def metrics_table(
    metrics: Mapping[str, float], stages: Sequence[str] = ("val", "test"), title: str = "Results"
) -> Table:
    """A rich table with one row per stage and the columns of :func:`table_columns`."""
    columns = table_columns(metrics, stages)
    table = Table(title=title)
    table.add_column("split")
    for _, name, _ in columns:
        table.add_column(name, justify="right")
    for stage in stages:
        if not any(f"{stage}/{key}" in metrics for key, _, _ in columns):
            continue
        cells = [format_value(metrics.get(f"{stage}/{key}"), digits) for key, _, digits in columns]
        table.add_row(stage, *cells)
    return table


def print_metrics(metrics: Mapping[str, float], title: str = "Results") -> None:
    """Print :func:`metrics_table` to the console."""
    Console().print(metrics_table(metrics, title=title))
