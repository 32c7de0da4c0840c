"""Compare finished runs in a table shaped like the HINT paper's Table 1.

``python -m hint_lightning.compare RUN_DIR... [--output DIR] [--stage test]`` reads the
``metrics.json`` of every run (a folder holding several runs, e.g. ``logs/demo`` or
``logs/easyvqa_cp_hint``, is searched recursively), groups the runs by experiment and prints,
per experiment, the mean ± standard deviation over its runs (seeds) of the accuracy overall and
per answer type and of the rank correlations of network importance and of attention with human
importance, and the number of runs. With ``--output`` it also writes ``compare_results.md`` and
``compare_results.json`` there (atomically).

The experiment of a run is its ``task_name``: from ``.hydra/config.yaml`` when the run was
launched through the Hydra CLI, else from the run config stored in its checkpoint
(``checkpoints/last.ckpt`` first), else the run folder's name (the demo's layout
``logs/demo/seed<k>/<experiment>/``). A run of ``python -m hint_lightning.evaluate`` (its
``metrics.json`` names a ``ckpt_path``) is grouped as ``<task_name of that checkpoint> (eval)``.

Rows come in the order in which their first run finished (``metrics.json`` modification time;
names break ties), which puts a baseline before the fine-tunes started from it.

Runs of one ``task_name`` are averaged whatever else differs (e.g. the jobs of a sweep over
``objective.weight``): give runs that must stay apart their own name (``task_name=hint_w3``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

from hint_lightning.utils.io import write_json, write_text
from hint_lightning.utils.report import (
    VQA_COLUMNS,
    format_mean_std,
    markdown_lines,
    rich_table,
    summarize,
)

METRICS_FILE = "metrics.json"
"""The file every run writes at its end (``train`` and ``evaluate``)."""

WIDE_CONSOLE = 160
"""Console width when the output is not a terminal (files, CI logs, notebooks)."""

RESULTS_STEM = "compare_results"
"""``--output`` gets ``compare_results.md`` and ``compare_results.json``."""


@dataclass(frozen=True)
class RunRecord:
    """One finished run.

    Attributes:
        path: the run folder (the one holding ``metrics.json``).
        experiment: the group it belongs to (see the module docstring).
        metrics: its numeric metrics (``test/acc``, ``test/rho``, ...).
        finished: modification time of its ``metrics.json`` (seconds since the epoch).
    """

    path: Path
    experiment: str
    metrics: dict[str, float]
    finished: float


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run folder at or below ``paths`` (a run folder holds ``metrics.json``).

    Args:
        paths: run folders, folders holding runs at any depth, or ``metrics.json`` files.

    Returns:
        The run folders, deduplicated, sorted within each argument, in argument order.

    Raises:
        FileNotFoundError: naming the path, when a path does not exist or holds no run.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.name == METRICS_FILE:
            runs = [path.parent]
        elif path.is_dir():
            runs = sorted(file.parent for file in path.rglob(METRICS_FILE))
        else:
            raise FileNotFoundError(f"{path}: no such run folder")
        if not runs:
            raise FileNotFoundError(f"{path}: no {METRICS_FILE} at or below it (no finished run)")
        found += [run for run in runs if run not in found]
    return found


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The entries that are numbers (``metrics.json`` also holds paths)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _hydra_task_name(run_dir: Path) -> str | None:
    """``task_name`` of the run's ``.hydra/config.yaml``, or None."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        name = OmegaConf.load(path).get("task_name")
    except Exception:  # an unresolvable or broken file: fall back to the next source
        return None
    return str(name) if name else None


def _checkpoint_task_name(ckpt_path: Path) -> str | None:
    """``task_name`` of the run config stored in one of our checkpoints, or None."""
    from hint_lightning.evaluate import stored_run  # imports Lightning: only when needed

    try:
        config, _ = stored_run(str(ckpt_path))
    except Exception:  # missing, unreadable or foreign checkpoint: fall back to the next source
        return None
    name = config.get("task_name")
    return str(name) if name else None


def _run_checkpoint(run_dir: Path) -> Path | None:
    """The run's ``checkpoints/last.ckpt``, else its first checkpoint by name, else None."""
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"
    if last.is_file():
        return last
    others = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    return others[0] if others else None


def experiment_name(run_dir: str | Path, metrics: dict[str, Any] | None = None) -> str:
    """The experiment a run belongs to (see the module docstring for the order of sources).

    Args:
        run_dir: the run folder.
        metrics: its ``metrics.json`` content (read when None).

    Returns:
        The group name.
    """
    run_dir = Path(run_dir)
    if metrics is None:
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
    evaluated = metrics.get("ckpt_path")
    if isinstance(evaluated, str) and evaluated:
        name = _checkpoint_task_name(Path(evaluated))
        if name is not None:
            return f"{name} (eval)"
    name = _hydra_task_name(run_dir)
    if name is None:
        checkpoint = _run_checkpoint(run_dir)
        name = _checkpoint_task_name(checkpoint) if checkpoint is not None else None
    return name or run_dir.name


def load_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder.

    Raises:
        ValueError: naming the file, when ``metrics.json`` is not a JSON object.
    """
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    metrics = json.loads(path.read_text())
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object of metrics")
    return RunRecord(
        path=run_dir,
        experiment=experiment_name(run_dir, metrics),
        metrics=_numeric(metrics),
        finished=path.stat().st_mtime,
    )


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


def _stat(values: Sequence[float]) -> dict[str, float | int | None]:
    """``{"mean", "std", "n"}`` over the runs that have the metric (None when none has)."""
    mean, std = summarize(values)
    return {
        "mean": None if math.isnan(mean) else mean,
        "std": None if math.isnan(std) else std,
        "n": len(values),
    }


def summarize_runs(records: Sequence[RunRecord], stage: str = "test") -> list[dict[str, Any]]:
    """One row per experiment: mean ± std of every Table-1 column over its runs.

    Args:
        records: the runs.
        stage: the metric prefix: ``test`` (CP-test for VQA-CP) or ``val``.

    Returns:
        Rows ``{"experiment", "runs", "run_dirs", <metric key>: {"mean", "std", "n"}}`` in the
        order in which each experiment's first run finished. A metric no run of the group has
        (e.g. ``test/acc_number`` on easy-VQA) has mean and std None; a metric only some runs
        have is summarized over those (``n`` says how many).
    """
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.experiment, []).append(record)
    order = sorted(groups, key=lambda name: (min(r.finished for r in groups[name]), name))
    rows = []
    for name in order:
        runs = groups[name]
        row: dict[str, Any] = {
            "experiment": name,
            "runs": len(runs),
            "run_dirs": [str(r.path) for r in runs],
        }
        for key, _, _ in table_keys(stage):
            row[key] = _stat([r.metrics[key] for r in runs if key in r.metrics])
        rows.append(row)
    return rows


def compare_runs(run_dirs: Iterable[str | Path], stage: str = "test") -> list[dict[str, Any]]:
    """Find, read, group and summarize runs (see :func:`summarize_runs` for the rows).

    Args:
        run_dirs: run folders or folders holding runs (searched recursively).
        stage: ``test`` or ``val``.
    """
    return summarize_runs([load_run(path) for path in find_run_dirs(run_dirs)], stage)


def _body(rows: Sequence[dict[str, Any]], stage: str) -> list[list[str]]:
    """The table's cells: experiment, one mean ± std per column, number of runs."""
    return [
        [
            row["experiment"],
            *[format_mean_std(row[key], digits) for key, _, digits in table_keys(stage)],
            str(row["runs"]),
        ]
        for row in rows
    ]


def _header(stage: str) -> list[str]:
    return ["experiment", *[title for _, title, _ in table_keys(stage)], "runs"]


def markdown_table(rows: Sequence[dict[str, Any]], stage: str = "test") -> str:
    """The comparison as Markdown, with a note on what the numbers are."""
    note = (
        f"\nMean ± std over the runs (seeds) of each experiment, on the {stage} split; "
        "accuracy in percent; rho: mean Spearman rank correlation with human importance "
        "over the questions that have it; — : not measured."
    )
    return "\n".join(markdown_lines(_header(stage), _body(rows, stage))) + "\n" + note + "\n"


def print_table(rows: Sequence[dict[str, Any]], stage: str = "test") -> None:
    """Print the comparison to the console."""
    console = Console()
    if not console.is_terminal:  # logs and notebooks: do not squeeze the table into 80 columns
        console = Console(width=WIDE_CONSOLE)
    console.print(rich_table(f"Runs compared ({stage})", _header(stage), _body(rows, stage)))


def write_results(
    rows: Sequence[dict[str, Any]], output_dir: str | Path, stage: str = "test"
) -> tuple[Path, Path]:
    """Write ``compare_results.md`` and ``compare_results.json`` (atomically).

    Returns:
        The paths of the Markdown and the JSON file.
    """
    output_dir = Path(output_dir)
    markdown = write_text(output_dir / f"{RESULTS_STEM}.md", markdown_table(rows, stage))
    payload = {"stage": stage, "rows": list(rows)}
    return markdown, write_json(output_dir / f"{RESULTS_STEM}.json", payload)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command-line entry point; returns the rows."""
    parser = argparse.ArgumentParser(
        prog="python -m hint_lightning.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, help="run folders or folders holding runs"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="write compare_results.{md,json} here"
    )
    parser.add_argument(
        "--stage", choices=("test", "val"), default="test", help="which split's metrics"
    )
    args = parser.parse_args(argv)
    try:
        rows = compare_runs(args.run_dirs, args.stage)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print_table(rows, args.stage)
    if args.output is not None:
        markdown, payload = write_results(rows, args.output, args.stage)
        Console().print(f"Wrote {markdown} and {payload.name}.")
    return rows


if __name__ == "__main__":
    main()
