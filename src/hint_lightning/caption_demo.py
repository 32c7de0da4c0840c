"""The captioning smoke demo: HINT at visual words on embedded easy-VQA captions, no download.

``python -m hint_lightning.caption_demo`` runs, for one seed:

1. the captioning baseline (``experiment=easyvqa_caption_updn``), model selected on val CIDEr;
2. from that checkpoint, on the captions of the hinted training images (the HINT protocol):
   - a fine-tune with no grounding term (``experiment=easyvqa_caption_finetune``, λ = 0),
   - HINT at the shape word of every caption (``experiment=easyvqa_caption_hint``);

then prints BLEU-4, CIDEr and the visual-word rank correlations on the test images (network
importance vs the shape mask's human importance, and attention vs it), and writes them to
``caption_demo_results.json`` and ``.md`` in the output directory. It exists to show that the
captioning path (data, decisions, HINT term, decoding, caption metrics, grounding metric) runs
end to end on a fresh machine; the captions are templates, so the caption scores are near their
ceiling and say little. The tiny model runs single-threaded by default (``--threads``): on
busy shared cores, intra-op threads slow its small kernels down many times over.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import torch
from rich.console import Console
from rich.table import Table

from hint_lightning.compose import compose_train_config
from hint_lightning.train import train
from hint_lightning.utils.io import write_json, write_text
from hint_lightning.utils.report import format_value

__all__ = ["CAPTION_DEMO_RUNS", "COLUMNS", "main", "markdown_table", "run_caption_demo"]

CAPTION_DEMO_RUNS: Final[tuple[tuple[str, str, bool], ...]] = (
    ("UpDn captioner", "easyvqa_caption_updn", False),
    ("+ fine-tune, no grounding (λ=0)", "easyvqa_caption_finetune", True),
    ("+ HINT at visual words", "easyvqa_caption_hint", True),
)
"""Row title, experiment, and whether it starts from the baseline checkpoint."""

COLUMNS: Final[tuple[tuple[str, str, int], ...]] = (
    ("test/Bleu_4", "BLEU-4", 3),
    ("test/CIDEr", "CIDEr", 3),
    ("test/rho", "rho (net. imp. vs human)", 3),
    ("test/rho_attention", "rho (attention vs human)", 3),
    ("val/CIDEr", "val CIDEr", 3),
)
"""Metric key, column title and decimals of the demo table."""

QUIET: Final = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")


def run_caption_demo(
    seed: int, output_dir: Path, extra_overrides: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Train the baseline, then each fine-tune from its checkpoint.

    Args:
        seed: the training seed.
        output_dir: runs go to ``output_dir/<experiment>``.
        extra_overrides: Hydra overrides for every run (e.g. ``data.limit_train_images=200``).

    Returns:
        One row per run: ``{"model", "experiment", "seconds", "metrics"}``.
    """
    console = Console()
    rows: list[dict[str, Any]] = []
    baseline = ""
    for name, experiment, finetune in CAPTION_DEMO_RUNS:
        overrides = [f"experiment={experiment}", f"seed={seed}", *QUIET]
        if finetune:
            overrides.append(f"init_from={baseline}")
        overrides += list(extra_overrides)
        cfg = compose_train_config(overrides, output_dir=output_dir / experiment)
        start = time.perf_counter()
        metrics = train(cfg)
        seconds = time.perf_counter() - start
        if not finetune:
            baseline = metrics["ckpt/best"] or metrics["ckpt/last"]
        floats = {k: v for k, v in metrics.items() if isinstance(v, float)}
        rows.append(
            {"model": name, "experiment": experiment, "seconds": seconds, "metrics": floats}
        )
        console.print(
            f"[bold]{name}[/]: BLEU-4 {format_value(floats.get('test/Bleu_4'), 3)}, CIDEr "
            f"{format_value(floats.get('test/CIDEr'), 3)}, rho "
            f"{format_value(floats.get('test/rho'), 3)} ({seconds:.0f} s)"
        )
    return rows


def _cells(row: dict[str, Any]) -> list[str]:
    return [format_value(row["metrics"].get(key), digits) for key, _, digits in COLUMNS]


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The demo table as Markdown."""
    header = ["model", *(title for _, title, _ in COLUMNS), "time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join([row["model"], *_cells(row), f"{row['seconds']:.0f}"]) + " |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _print_table(rows: Sequence[dict[str, Any]], seed: int) -> None:
    table = Table(title=f"easy-VQA captions: HINT at visual words (seed {seed}, test images)")
    table.add_column("model")
    for _, title, _ in COLUMNS:
        table.add_column(title, justify="right")
    for row in rows:
        table.add_row(row["model"], *_cells(row))
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path("logs/caption_demo"))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for every run, e.g. trainer.max_epochs=2",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = run_caption_demo(args.seed, args.output_dir, args.overrides)
    wall = time.perf_counter() - start
    write_json(
        args.output_dir / "caption_demo_results.json",
        {"seed": args.seed, "runs": rows, "wall_seconds": wall},
    )
    write_text(args.output_dir / "caption_demo_results.md", markdown_table(rows))
    _print_table(rows, args.seed)
    Console().print(
        f"Wrote {args.output_dir / 'caption_demo_results.md'} and caption_demo_results.json "
        f"({wall:.0f} s)."
    )
    return rows


if __name__ == "__main__":
    main()
