"""HINT beyond VQA: decoy digits (Ross et al. 2017), plain vs HINT vs Right for the Right Reasons.

``python -m hint_lightning.decoy_digits [--seeds 0 1 2 3 4]`` trains, for each seed and from
scratch, the patch classifier (``model=patch_classifier``) on decoy digits
(``data=decoy_digits``): plain (``experiment=decoy_digits_plain``), with HINT
(``experiment=decoy_digits_hint``) and with RRR (``experiment=decoy_digits_rrr``). It prints a
table (mean ± std over the seeds of the decoy-free test accuracy, train and val accuracy, the
share of network importance on the decoy patch and the rank correlation with human importance)
and writes ``decoy_digits_results.{md,json}`` in the output directory.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from hint_lightning.compose import compose_train_config
from hint_lightning.train import train
from hint_lightning.utils.io import write_json, write_text
from hint_lightning.utils.report import (
    format_mean_std,
    format_value,
    markdown_lines,
    rich_table,
    summary_row,
)

RUNS: tuple[tuple[str, str], ...] = (
    ("plain", "decoy_digits_plain"),
    ("HINT", "decoy_digits_hint"),
    ("RRR (Ross et al.)", "decoy_digits_rrr"),
)
"""Row title and ``experiment=`` of each row."""

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("test/acc", "test acc (random decoy)", 2),
    ("val/acc", "val acc (label-coded decoy)", 2),
    ("train/acc", "train acc", 2),
    ("test/decoy_share", "test net. imp. on decoy (%)", 2),
    ("test/rho", "test rho (net. imp. vs human)", 3),
)
"""Metric key, column title and decimals of the table."""

QUIET = (
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks=none",  # fixed budget, the last weights are tested: no checkpoints needed
)


def run_all(
    seeds: Sequence[int],
    output_dir: Path,
    runs: Sequence[tuple[str, str]] = RUNS,
    extra_overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and test every row for every seed; per-seed metrics and timings."""
    console = Console()
    per_run: dict[str, list[dict[str, float]]] = {name: [] for name, _ in runs}
    timings: dict[str, list[float]] = {name: [] for name, _ in runs}
    for seed in seeds:
        for name, experiment in runs:
            overrides = [f"experiment={experiment}", f"seed={seed}", *QUIET, *extra_overrides]
            run_dir = output_dir / f"seed{seed}" / experiment
            cfg = compose_train_config(overrides, output_dir=run_dir)
            start = time.perf_counter()
            metrics = train(cfg)
            seconds = time.perf_counter() - start
            per_run[name].append({k: v for k, v in metrics.items() if isinstance(v, float)})
            timings[name].append(seconds)
            console.print(
                f"[bold]seed {seed}[/] {name}: test acc {format_value(metrics.get('test/acc'))}, "
                f"decoy share {format_value(metrics.get('test/decoy_share'))} ({seconds:.0f} s)"
            )
    return {"seeds": list(seeds), "runs": per_run, "seconds": timings}


def results_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary row per run: mean and std of every column over the seeds."""
    keys = [key for key, _, _ in COLUMNS]
    return [
        summary_row(name, seeds, keys, results["seconds"][name])
        for name, seeds in results["runs"].items()
    ]


def _cells(row: dict[str, Any]) -> list[str]:
    return [format_mean_std(row[key], digits) for key, _, digits in COLUMNS]


def markdown_table(rows: list[dict[str, Any]], seeds: Sequence[int], wall_seconds: float) -> str:
    """The table as Markdown (mean ± std over the seeds)."""
    header = ["model", *[title for _, title, _ in COLUMNS], "time / seed (s)"]
    body = [[row["model"], *_cells(row), f"{row['seconds']:.0f}"] for row in rows]
    note = (
        f"\nMean ± std over seeds {', '.join(map(str, seeds))}; accuracy in percent; "
        f"{wall_seconds / 60:.1f} min wall time."
    )
    return "\n".join(markdown_lines(header, body)) + "\n" + note + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--output-dir", type=Path, default=Path("logs/decoy_digits"))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: the tiny model runs ~10x faster than with contended threads)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for every run, e.g. trainer.max_epochs=2",
    )
    args = parser.parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        results = run_all(args.seeds, args.output_dir, extra_overrides=args.overrides)
    finally:
        torch.set_num_threads(previous_threads)
    rows = results_rows(results)
    results["summary"] = rows
    results["wall_seconds"] = time.perf_counter() - start
    write_json(args.output_dir / "decoy_digits_results.json", results)
    markdown = markdown_table(rows, args.seeds, results["wall_seconds"])
    write_text(args.output_dir / "decoy_digits_results.md", markdown)
    header = ["model", *[title for _, title, _ in COLUMNS]]
    title = f"Decoy digits (seeds {', '.join(map(str, args.seeds))})"
    Console().print(rich_table(title, header, [[r["model"], *_cells(r)] for r in rows]))
    Console().print(
        f"Wrote {args.output_dir / 'decoy_digits_results.md'} and decoy_digits_results.json "
        f"({results['wall_seconds'] / 60:.1f} min)."
    )
    return results


if __name__ == "__main__":
    main()
