"""``python -m hint_lightning.study NAME``: run a study and write its table.

Runs every (row, seed, candidate) of ``conf/study/NAME.yaml`` that has not finished before
(``--jobs N`` at once, with a progress bar), chooses each ``select:`` value on validation,
prints the table (95% intervals, paired differences from the control row), writes
``study_results.{md,json,csv}`` (and the removal-curve plot when the runs hold curves) to
``--output-dir`` (default ``logs/study/NAME``), and with ``--readme FILE`` puts the table
between ``<!-- study:NAME -->`` and ``<!-- /study:NAME -->`` in that file. ``--table-only``
rebuilds the table from the finished runs without training anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.study.config import StudyConfig, StudyConfigError, load_study
from hint_lightning.study.curves import plot_study_curves
from hint_lightning.study.runner import RunSpec, plan_runs, run_study
from hint_lightning.study.table import RESULTS_STEM, build_table, markdown_table, write_table
from hint_lightning.utils.io import write_text

__all__ = ["fill_readme", "main", "parse_args"]


def fill_readme(readme: Path, name: str, text: str) -> None:
    """Replace the block between ``<!-- study:NAME -->`` and ``<!-- /study:NAME -->``.

    Raises:
        ValueError: naming the file, when it lacks the two markers.
    """
    start, end = f"<!-- study:{name} -->", f"<!-- /study:{name} -->"
    content = readme.read_text()
    if start not in content or end not in content or content.index(start) > content.index(end):
        raise ValueError(f"{readme}: no '{start}' ... '{end}' block to fill")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    write_text(readme, f"{head}{start}\n{text.strip()}\n{end}{tail}")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m hint_lightning.study", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("name", help="a study of conf/study/ (or a path to a study YAML)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None,
        help="replace the seeds (put Hydra overrides before it, or they are read as seeds)",
    )  # fmt: skip
    parser.add_argument("--output-dir", type=Path, default=None, help="default logs/study/NAME")
    parser.add_argument("--readme", type=Path, default=None, help="fill this file's study block")
    parser.add_argument("--table-only", action="store_true", help="train nothing")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    return parser.parse_intermixed_args(argv)


def _progress_reporter(progress: Progress, task: Any, console: Console) -> Any:
    def report(spec: RunSpec, status: str, seconds: float) -> None:
        progress.advance(task)
        if status == "skipped":
            return
        label = f"{spec.row} seed {spec.seed}" + (
            f" [{spec.value}]" if spec.value is not None else ""
        )
        note = f"{seconds:.0f} s" if status == "finished" else f"see {spec.run_dir}/study_log.txt"
        console.print(f"{status:>8}: {label} ({note})")

    return report


def _run(study: StudyConfig, output: Path, args: argparse.Namespace, console: Console) -> dict:
    total = len(plan_runs(study, output, args.overrides))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"study {study.name}", total=total)
        reporter = _progress_reporter(progress, task, console)
        return run_study(study, output, args.jobs, args.overrides, on_done=reporter)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the table (``build_table``'s dict)."""
    args = parse_args(argv)
    console = Console()
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops the workers too
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        study = load_study(args.name)
    except StudyConfigError as error:
        console.print(f"[red]error:[/] {error}")
        raise SystemExit(2) from None
    if args.seeds:
        study = dataclasses.replace(study, seeds=tuple(args.seeds))
    output = args.output_dir or Path("logs") / "study" / study.name
    results_json = output / f"{RESULTS_STEM}.json"
    previous = json.loads(results_json.read_text()) if results_json.is_file() else {}
    command = "python -m hint_lightning.study " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:]
    )
    outcome: dict[str, Any] = {}
    wall = previous.get("wall_seconds")
    if args.table_only:
        command = previous.get("command") or f"python -m hint_lightning.study {args.name}"
    else:
        start = time.perf_counter()
        try:
            outcome = _run(study, output, args, console)
        except KeyboardInterrupt:
            console.print("[red]interrupted[/]: finished runs are kept; run again to resume")
            raise SystemExit(130) from None
        if outcome["ran"] or wall is None:
            wall = time.perf_counter() - start
    table = build_table(study, output, resamples=args.resamples)
    markdown = markdown_table(study, table, command, wall)
    if study.description:
        markdown = f"{markdown}\n{study.description}\n"
    plot = plot_study_curves(table, output, study.curves) if study.curves else None
    extra = {"command": command, "wall_seconds": wall, "plot": str(plot) if plot else None}
    written = write_table(output, table, markdown, extra)
    console.print(f"\n[bold]{study.title}[/]\n")
    print(markdown)
    if args.readme is not None:
        try:
            fill_readme(args.readme, study.name, markdown)
        except (OSError, ValueError) as error:
            console.print(f"[red]error:[/] {error}")
            raise SystemExit(2) from None
    console.print(f"Wrote {', '.join(str(p) for p in written)}" + (f" and {plot}" if plot else ""))
    if outcome.get("failed"):
        console.print(f"[red]{len(outcome['failed'])} run(s) failed[/]: {outcome['failed'][0]} ...")
        raise SystemExit(1)
    return {**table, **extra}
