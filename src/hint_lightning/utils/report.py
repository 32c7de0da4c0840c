"""Tables of results: the console table at the end of a run, Markdown and JSON for reports."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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


def format_value(value: float | None, digits: int = 2) -> str:
    """``12.3456 -> '12.35'``; None or NaN -> an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def metrics_table(
    metrics: Mapping[str, float], stages: Sequence[str] = ("val", "test"), title: str = "Results"
) -> Table:
    """A rich table with one row per stage and the VQA columns that are present."""
    columns = [
        (key, name)
        for key, name in VQA_COLUMNS
        if any(f"{stage}/{key}" in metrics for stage in stages)
    ]
    table = Table(title=title)
    table.add_column("split")
    for _, name in columns:
        table.add_column(name, justify="right")
    for stage in stages:
        if not any(f"{stage}/{key}" in metrics for key, _ in columns):
            continue
        cells = []
        for key, _ in columns:
            value = metrics.get(f"{stage}/{key}")
            cells.append(format_value(value, 3 if key.startswith("rho") else 2))
        table.add_row(stage, *cells)
    return table


def print_metrics(metrics: Mapping[str, float], title: str = "Results") -> None:
    """Print :func:`metrics_table` to the console."""
    Console().print(metrics_table(metrics, title=title))
