"""``python -m hint_lightning.viz``: the paper's Figure 2 for a base and a HINTed checkpoint.

Example::

    python -m hint_lightning.viz --base logs/demo/seed0/easyvqa_cp_updn/checkpoints/last.ckpt \\
        --hinted logs/demo/seed0/easyvqa_cp_hint/checkpoints/last.ckpt --questions 4 \\
        --output logs/figures

writes ``question_<id>.png`` per question (the image; its proposals shaded by human importance,
by the base model's and by the HINTed model's network importance for the ground-truth answer;
each model's answer in its panel's title) and ``figures.json`` in the output folder. For
captioning checkpoints (the paper's Figure 3) it writes ``caption_<row>_<pos>.png`` for the
first ``--questions`` test captions with a visual word that has human importance (see
:mod:`hint_lightning.viz.captioning`). Rendering
uses matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from hint_lightning.utils.cli_errors import report_user_errors
from hint_lightning.utils.console import quiet_console
from hint_lightning.viz.captioning import (
    choose_caption_items,
    importance_for_caption_words,
    is_caption_checkpoint,
    load_caption_datamodule,
    write_caption_figures,
)
from hint_lightning.viz.figure2 import write_question_figures
from hint_lightning.viz.questions import (
    SPLITS,
    choose_question_ids,
    importance_for_questions,
    load_datamodule,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m hint_lightning.viz",
        description="Draw proposal importance of a base and a HINTed VQA checkpoint "
        "(the HINT paper's Figure 2).",
    )
    parser.add_argument("--base", required=True, help="checkpoint of the base model")
    parser.add_argument("--hinted", required=True, help="checkpoint of the HINTed model")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--questions",
        type=int,
        default=4,
        help="draw this many random questions, or first captions (default 4)",
    )
    which.add_argument("--question-ids", type=int, nargs="+", help="draw these questions")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random questions")
    parser.add_argument("--data-dir", default=None, help="override the stored data.data_dir")
    parser.add_argument("--base-name", default="base", help="title of the base model's panels")
    parser.add_argument("--hinted-name", default="HINT", help="title of the HINTed panels")
    parser.add_argument("--output", type=Path, required=True, help="folder of the PNG files")
    args = parser.parse_args(argv)
    if args.questions is not None and args.questions < 1:
        parser.error("--questions must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Command-line entry point; returns the PNG paths."""
    args = parse_args(argv)
    quiet_console()
    if is_caption_checkpoint(args.base):
        return _caption_main(args)
    datamodule, _, _ = load_datamodule(args.base, args.data_dir)
    if args.question_ids:
        question_ids = args.question_ids
    else:
        question_ids = choose_question_ids(datamodule, args.split, args.questions, args.seed)
    runs = [
        (
            name,
            importance_for_questions(ckpt, question_ids, args.split, datamodule=datamodule),
        )
        for name, ckpt in ((args.base_name, args.base), (args.hinted_name, args.hinted))
    ]
    paths = write_question_figures(runs, args.output)
    Console().print(f"Wrote {len(paths)} figure(s) and figures.json to {args.output}")
    return paths


def _caption_main(args: argparse.Namespace) -> list[Path]:
    """Figure 3 for captioning checkpoints: the first ``--questions`` captions of the split
    with a visual word that has human importance."""
    if args.question_ids:
        raise SystemExit("--question-ids is for VQA checkpoints; use --questions N for captions")
    datamodule, _, _ = load_caption_datamodule(args.base, args.data_dir)
    items = choose_caption_items(datamodule, args.split, args.questions)
    runs = [
        (name, importance_for_caption_words(ckpt, items, args.split, datamodule=datamodule))
        for name, ckpt in ((args.base_name, args.base), (args.hinted_name, args.hinted))
    ]
    paths = write_caption_figures(runs, args.output)
    Console().print(f"Wrote {len(paths)} caption figure(s) and figures.json to {args.output}")
    return paths


if __name__ == "__main__":
    report_user_errors(main)()
