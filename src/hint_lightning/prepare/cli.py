"""``python -m hint_lightning.prepare <command> --data-dir DIR [options]``.

Commands:

* ``vqacp_v2`` / ``vqa_v2``: everything an experiment on that dataset needs
  (:func:`~hint_lightning.prepare.pipeline.prepare_vqa`), skipping up-to-date steps;
* ``features``: bottom-up TSVs -> HDF5 feature store only;
* ``questions --dataset D``: answer and token vocabularies, GloVe and split stores;
* ``hat --dataset D``: importance stores and the VQA-HAT coverage report;
* ``coco``: everything a captioning experiment needs (Karpathy and robust splits:
  vocabularies, caption stores, references, visual-word importance;
  :func:`~hint_lightning.prepare.coco.prepare_coco`), skipping up-to-date steps;
* ``fixture``: a tiny raw tree in the real formats
  (:func:`~hint_lightning.prepare.fixture.tree.write_fixture_tree`).

The heavy modules (torch, h5py) are imported only by the commands that need them, so
``--help`` and ``fixture`` start fast. Exit status: 0 on success, 2 when raw or prepared inputs
are missing (the message lists them and where each raw file is distributed), 1 for malformed
inputs.

Example:
    >>> parser = build_parser()
    >>> args = parser.parse_args(["vqacp_v2", "--data-dir", "/data", "--float16"])
    >>> args.command, args.features, args.float16, args.min_answer_count
    ('vqacp_v2', 'trainval_36', True, 9)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hint_lightning.prepare.layout import (
    DATASETS,
    FEATURE_VARIANTS,
    MissingPreparedFilesError,
    MissingRawFilesError,
    raw_layout_help,
)

__all__ = ["build_parser", "main"]

_DEFAULT_MIN_ANSWER_COUNT = 9  # pipeline.DEFAULT_MIN_ANSWER_COUNT, without importing torch
_DEFAULT_WORD_COUNT_THRESHOLD = 5  # coco_captions.WORD_COUNT_THRESHOLD, likewise
_DATASET_HELP = {
    "vqacp_v2": "VQA-CP v2 (splits train, test): features, vocabularies, split stores, "
    "human importance",
    "vqa_v2": "VQA v2 (train = train2014, val = val2014): features, vocabularies, split "
    "stores, human importance",
}


def _add_common(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--force``, ``--no-progress``."""
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="data folder holding raw/ (writes prepared/)"
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild every output, even if up to date"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_features(parser: argparse.ArgumentParser, conversion: bool) -> None:
    """``--features`` and, for commands that convert, ``--float16`` and ``--feature-dim``."""
    variants = ", ".join(f"{name}: {text}" for name, text in FEATURE_VARIANTS.items())
    parser.add_argument(
        "--features",
        choices=list(FEATURE_VARIANTS),
        default="trainval_36",
        help=f"feature variant under raw/features/ ({variants}; default trainval_36)",
    )
    if conversion:
        parser.add_argument(
            "--float16", action="store_true", help="store features as float16 (half the size)"
        )
        parser.add_argument(
            "--feature-dim", type=int, default=2048, help="floats per proposal (default 2048)"
        )


def _add_min_answer_count(parser: argparse.ArgumentParser) -> None:
    """``--min-answer-count``."""
    parser.add_argument(
        "--min-answer-count",
        type=int,
        default=_DEFAULT_MIN_ANSWER_COUNT,
        help="keep answers that are the multiple-choice answer of at least this many questions "
        "(default 9: the 3,129 answers of VQA v2 train+val; use 2 on a fixture tree)",
    )


def _add_dataset(parser: argparse.ArgumentParser) -> None:
    """``--dataset``."""
    parser.add_argument("--dataset", choices=list(DATASETS), required=True)


def _subparser(
    commands: Any, name: str, help_text: str, epilog: bool = True
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with the raw layout."""
    return commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=raw_layout_help() if epilog else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m hint_lightning.prepare``."""
    parser = argparse.ArgumentParser(
        prog="python -m hint_lightning.prepare",
        description="Raw downloads -> the prepared stores that the VQA and captioning "
        "experiments read.",
        epilog=raw_layout_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for dataset in DATASETS:
        sub = _subparser(commands, dataset, _DATASET_HELP[dataset])
        _add_common(sub)
        _add_features(sub, conversion=True)
        _add_min_answer_count(sub)
    sub = _subparser(commands, "features", "bottom-up TSVs -> prepared/features/<name>.h5 only")
    _add_common(sub)
    _add_features(sub, conversion=True)
    sub = _subparser(
        commands, "questions", "answer/token vocabularies, GloVe and split stores of a dataset"
    )
    _add_common(sub)
    _add_dataset(sub)
    _add_features(sub, conversion=False)
    _add_min_answer_count(sub)
    sub = _subparser(commands, "hat", "VQA-HAT importance stores and coverage report of a dataset")
    _add_common(sub)
    _add_dataset(sub)
    _add_features(sub, conversion=False)
    sub = _subparser(
        commands,
        "coco",
        "COCO captioning (Karpathy and robust splits): features, vocabularies, caption stores, "
        "references, visual-word importance",
    )
    _add_common(sub)
    _add_features(sub, conversion=True)
    sub.add_argument(
        "--word-count-threshold",
        type=int,
        default=_DEFAULT_WORD_COUNT_THRESHOLD,
        help="keep caption tokens seen more than this many times in the training captions "
        "(default 5)",
    )
    sub.add_argument(
        "--visual-word-duplicates",
        choices=["last", "exclude"],
        default="last",
        help="visual words listed under two categories: the last one wins (NBT, default) or "
        "they are left out",
    )
    sub = _subparser(
        commands, "fixture", "write a tiny synthetic raw tree in the real formats", epilog=False
    )
    sub.add_argument("--data-dir", type=Path, required=True, help="where to write raw/")
    sub.add_argument("--images", type=int, default=12, help="images (default 12)")
    sub.add_argument(
        "--questions-per-image", type=int, default=4, help="questions per image (default 4)"
    )
    sub.add_argument("--adaptive", action="store_true", help="also write the adaptive TSVs")
    sub.add_argument("--feature-dim", type=int, default=2048, help="D (default 2048)")
    sub.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    sub.add_argument("--overwrite", action="store_true", help="write over an existing raw/")
    sub.add_argument(
        "--no-coco", action="store_true", help="leave out the COCO captioning files (raw/coco/)"
    )
    return parser


def _run_fixture(args: argparse.Namespace) -> None:
    """``fixture``: write the tree and say how to prepare it."""
    from hint_lightning.prepare.fixture.tree import FIXTURE_MIN_ANSWER_COUNT, write_fixture_tree

    files = write_fixture_tree(
        args.data_dir,
        num_images=args.images,
        questions_per_image=args.questions_per_image,
        adaptive=args.adaptive,
        feature_dim=args.feature_dim,
        seed=args.seed,
        overwrite=args.overwrite,
        coco=not args.no_coco,
    )
    for name, path in files.items():
        print(f"wrote {name} ({path.stat().st_size:,} bytes)")
    dim = "" if args.feature_dim == 2048 else f" --feature-dim {args.feature_dim}"
    print(
        f"next: python -m hint_lightning.prepare vqacp_v2 --data-dir {args.data_dir} "
        f"--min-answer-count {FIXTURE_MIN_ANSWER_COUNT}{dim}   (see {files['README.txt']})"
    )


def _run(args: argparse.Namespace) -> None:
    """Dispatches a prepare command (imports the pipeline only now)."""
    from hint_lightning.prepare import pipeline

    common = {
        "features": args.features,
        "force": args.force,
        "progress": not args.no_progress,
    }
    if args.command in DATASETS:
        pipeline.prepare_vqa(
            args.command,
            args.data_dir,
            float16=args.float16,
            feature_dim=args.feature_dim,
            min_answer_count=args.min_answer_count,
            **common,
        )
    elif args.command == "coco":
        from hint_lightning.prepare.coco import prepare_coco

        prepare_coco(
            args.data_dir,
            float16=args.float16,
            feature_dim=args.feature_dim,
            word_count_threshold=args.word_count_threshold,
            duplicates=args.visual_word_duplicates,
            **common,
        )
    elif args.command == "features":
        pipeline.prepare_features(
            args.data_dir, float16=args.float16, feature_dim=args.feature_dim, **common
        )
    elif args.command == "questions":
        pipeline.prepare_questions(
            args.dataset, args.data_dir, min_answer_count=args.min_answer_count, **common
        )
    else:
        pipeline.prepare_hat(args.dataset, args.data_dir, **common)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fixture":
            _run_fixture(args)
        else:
            _run(args)
    except (MissingRawFilesError, MissingPreparedFilesError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
