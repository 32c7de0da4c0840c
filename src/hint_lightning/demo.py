"""The embedded demo: the HINT paper's VQA protocol on easy-VQA-CP, in minutes on a laptop.

``python -m hint_lightning.demo`` (or ``make demo``) runs, for each seed:

1. the UpDn baseline (``experiment=easyvqa_cp_updn``), model selected on the validation split;
2. from that checkpoint, fine-tunes on the questions with human importance:
   - with no grounding term (the lambda = 0 control),
   - with HINT (``experiment=easyvqa_cp_hint``),
   - with attention alignment (``experiment=easyvqa_cp_attn_align``),
   - with HINT on fixed random importance (``experiment=easyvqa_cp_hint_random``),
   - with HINT on inverted importance (``experiment=easyvqa_cp_hint_one_minus``);

then prints a table shaped like the paper's Table 1 (CP-test accuracy overall and per answer
type, rank correlation with human importance), mean and standard deviation over the seeds, and
writes it as ``demo_results.json`` and ``demo_results.md`` in the output directory.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class DemoRun:
    """One row of the demo table.

    Attributes:
        name: the row title.
        experiment: the ``experiment=`` config.
        finetune: whether it starts from the seed's baseline checkpoint.
        overrides: extra Hydra overrides.
    """

    name: str
    experiment: str
    finetune: bool
    overrides: tuple[str, ...] = ()


DEMO_RUNS: tuple[DemoRun, ...] = (
    DemoRun("UpDn", "easyvqa_cp_updn", finetune=False),
    DemoRun("+ fine-tune, no grounding (λ=0)", "easyvqa_cp_finetune", finetune=True),
    DemoRun("+ Attn. Align", "easyvqa_cp_attn_align", finetune=True),
    DemoRun("+ HINT", "easyvqa_cp_hint", finetune=True),
    DemoRun("+ HINT, random importance", "easyvqa_cp_hint_random", finetune=True),
    DemoRun("+ HINT, 1 − human importance", "easyvqa_cp_hint_one_minus", finetune=True),
)

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("test/acc", "CP-test overall", 2),
    ("test/acc_yes_no", "Yes/No", 2),
    ("test/acc_number", "Number", 2),
    ("test/acc_other", "Other", 2),
    ("paired/test_acc", "Δ overall vs λ=0 (paired)", 2),
    ("test/rho", "rho (net. imp. vs human)", 3),
    ("test/rho_attention", "rho (attention vs human)", 3),
    ("val/acc", "CP-val overall", 2),
)
"""Metric key, column title and decimals of the demo table."""

CONTROL_EXPERIMENT = "easyvqa_cp_finetune"
"""The row every other row is compared with, seed by seed (same baseline, no grounding term)."""

QUIET = (
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
)


def run_demo(
    seeds: Sequence[int],
    output_dir: Path,
    runs: Sequence[DemoRun] = DEMO_RUNS,
    extra_overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every demo row for every seed and return the per-seed metrics and their summary."""
    console = Console()
    per_run: dict[str, list[dict[str, float]]] = {run.name: [] for run in runs}
    timings: dict[str, list[float]] = {run.name: [] for run in runs}
    for seed in seeds:
        baseline_ckpt = ""
        for run in runs:
            overrides = [f"experiment={run.experiment}", f"seed={seed}", *QUIET, *run.overrides]
            if run.finetune:
                overrides.append(f"init_from={baseline_ckpt}")
            overrides += list(extra_overrides)
            run_dir = output_dir / f"seed{seed}" / run.experiment
            cfg = compose_train_config(overrides, output_dir=run_dir)
            start = time.perf_counter()
            metrics = train(cfg)
            seconds = time.perf_counter() - start
            if not run.finetune:
                baseline_ckpt = metrics["ckpt/best"] or metrics["ckpt/last"]
            per_run[run.name].append({k: v for k, v in metrics.items() if isinstance(v, float)})
            timings[run.name].append(seconds)
            console.print(
                f"[bold]seed {seed}[/] {run.name}: CP-test "
                f"{format_value(metrics.get('test/acc'))}, rho "
                f"{format_value(metrics.get('test/rho'), 3)} ({seconds:.0f} s)"
            )
    control = next((run.name for run in runs if run.experiment == CONTROL_EXPERIMENT), None)
    return {"seeds": list(seeds), "runs": per_run, "seconds": timings, "control": control}


def paired_differences(results: dict[str, Any], key: str = "test/acc") -> dict[str, list[float]]:
    """Per seed, each run's ``key`` minus the control's (runs of one seed share a baseline).

    The baseline's seed-to-seed spread is large on a CP split (whether a yes/no template flips
    depends on the seed); the paired difference removes it. The control itself gets none.
    """
    control = results.get("control")
    if control is None:
        return {}
    reference = results["runs"][control]
    return {
        name: [m[key] - c[key] for m, c in zip(seeds, reference, strict=True)]
        for name, seeds in results["runs"].items()
        if name != control
    }


def results_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary row per demo run: mean and std of every column over the seeds."""
    rows = []
    deltas = paired_differences(results)
    for name, seeds in results["runs"].items():
        seeds = (
            [{**m, "paired/test_acc": d} for m, d in zip(seeds, deltas[name], strict=True)]
            if name in deltas
            else seeds
        )
        keys = [key for key, _, _ in COLUMNS]
        rows.append(summary_row(name, seeds, keys, results["seconds"][name]))
    return rows


def _cells(row: dict[str, Any]) -> list[str]:
    """The mean ± std cells of one summary row, in :data:`COLUMNS` order."""
    return [format_mean_std(row[key], digits) for key, _, digits in COLUMNS]


def markdown_table(rows: list[dict[str, Any]], seeds: Sequence[int]) -> str:
    """The demo table as Markdown (mean ± std over the seeds)."""
    header = ["model", *[title for _, title, _ in COLUMNS], "time / seed (s)"]
    body = [[row["model"], *_cells(row), f"{row['seconds']:.0f}"] for row in rows]
    note = (
        f"\nMean ± std over seeds {', '.join(map(str, seeds))}; accuracy in percent. "
        "Δ: CP-test accuracy minus that of the λ=0 fine-tune of the same seed."
    )
    return "\n".join(markdown_lines(header, body)) + "\n" + note + "\n"


def print_table(rows: list[dict[str, Any]], seeds: Sequence[int]) -> None:
    """Print the demo table to the console."""
    header = ["model", *[title for _, title, _ in COLUMNS]]
    body = [[row["model"], *_cells(row)] for row in rows]
    title = f"easy-VQA-CP demo (seeds {', '.join(map(str, seeds))})"
    Console().print(rich_table(title, header, body))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", type=Path, default=Path("logs/demo"))
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for every run, e.g. trainer.max_epochs=2",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run_demo(args.seeds, args.output_dir, extra_overrides=args.overrides)
    rows = results_rows(results)
    results["summary"] = rows
    results["wall_seconds"] = time.perf_counter() - start
    write_json(args.output_dir / "demo_results.json", results)
    write_text(args.output_dir / "demo_results.md", markdown_table(rows, args.seeds))
    print_table(rows, args.seeds)
    Console().print(
        f"Wrote {args.output_dir / 'demo_results.md'} and demo_results.json "
        f"({results['wall_seconds'] / 60:.1f} min)."
    )
    return results


if __name__ == "__main__":
    main()
