"""One summary table per Hydra sweep: every job's overrides and final metrics.

Registered as a Hydra callback in ``conf/hydra/default.yaml``; at the end of a multirun it reads
each job's ``metrics.json`` and ``.hydra/overrides.yaml`` and writes ``sweep_summary.md`` and
``sweep_summary.json`` into the sweep directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from hint_lightning.utils.io import write_json, write_text
from hint_lightning.utils.report import format_value

log = logging.getLogger(__name__)

SUMMARY_METRICS: tuple[str, ...] = (
    "val/acc",
    "test/acc",
    "test/acc_yes_no",
    "test/acc_number",
    "test/acc_other",
    "test/rho",
    "test/rho_attention",
)
"""The metrics shown in the table (all metrics go to the JSON)."""


def collect_sweep(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per job folder of ``sweep_dir``: its number, overrides and metrics.

    Jobs that wrote no ``metrics.json`` (failed or still running) get ``"status": "missing"``.
    """
    jobs = []
    for job_dir in sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    ):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
        metrics_file = job_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        jobs.append(
            {
                "job": int(job_dir.name),
                "overrides": overrides or [],
                "status": "done" if metrics else "missing",
                "metrics": metrics,
            }
        )
    return jobs


def varying_overrides(jobs: list[dict[str, Any]]) -> list[str]:
    """The override keys whose values differ between jobs (the sweep's axes), in order."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for item in job["overrides"]:
            key, _, value = str(item).partition("=")
            values.setdefault(key, set()).add(value)
    return [key for key, seen in values.items() if len(seen) > 1 or len(jobs) == 1]


def _override_value(job: dict[str, Any], key: str) -> str:
    for item in job["overrides"]:
        name, _, value = str(item).partition("=")
        if name == key:
            return value
    return ""


def summary_markdown(jobs: list[dict[str, Any]]) -> str:
    """The sweep table in Markdown: one row per job, its swept values and its metrics."""
    axes = varying_overrides(jobs)
    metrics = [m for m in SUMMARY_METRICS if any(m in job["metrics"] for job in jobs)]
    header = ["job", *axes, *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for job in jobs:
        cells = [str(job["job"]), *[_override_value(job, a) for a in axes]]
        for name in metrics:
            value = job["metrics"].get(name)
            cells.append(format_value(value, 3 if "rho" in name else 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class SweepSummary(Callback):
    """Hydra callback writing ``sweep_summary.{md,json}`` at the end of every multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Collect the jobs' results and write the summary."""
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        jobs = collect_sweep(sweep_dir)
        if not jobs:
            return
        write_json(sweep_dir / "sweep_summary.json", {"sweep_dir": str(sweep_dir), "jobs": jobs})
        markdown = summary_markdown(jobs)
        write_text(sweep_dir / "sweep_summary.md", markdown)
        table = Table(title=f"sweep {sweep_dir}")
        for column in markdown.splitlines()[0].strip("| ").split(" | "):
            table.add_column(column)
        for line in markdown.splitlines()[2:]:
            table.add_row(*line.strip("| ").split(" | "))
        Console().print(table)
        log.info("Sweep summary: %s", sweep_dir / "sweep_summary.md")
