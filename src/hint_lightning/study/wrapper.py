"""The old driver commands (``demo``, ``caption_demo``, ``decoy_digits``) as thin study wrappers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hint_lightning.study.cli import main as study_main

__all__ = ["run_wrapped"]


def run_wrapped(
    study: str, description: str, default_output: str, argv: Sequence[str] | None
) -> dict[str, Any]:
    """Parse the driver's options and run ``python -m hint_lightning.study <study>`` with them.

    Args:
        study: the study of ``conf/study/``.
        description: the command's help text.
        default_output: the driver's historical output folder.
        argv: the command line (None: ``sys.argv``).

    Returns:
        The study's table (:func:`hint_lightning.study.cli.main`).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="replace the seeds")
    parser.add_argument("--seed", type=int, default=None, help="one seed (older spelling)")
    parser.add_argument("--output-dir", type=Path, default=Path(default_output))
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (processes)")
    parser.add_argument("--readme", type=Path, default=None, help="fill this file's study block")
    parser.add_argument("--table-only", action="store_true", help="train nothing")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_intermixed_args(argv)
    seeds = args.seeds or ([args.seed] if args.seed is not None else None)
    # overrides right after the name: after --seeds they would be read as more seeds
    forwarded = [
        study,
        *args.overrides,
        "--output-dir",
        str(args.output_dir),
        "--jobs",
        str(args.jobs),
    ]
    forwarded += ["--seeds", *map(str, seeds)] if seeds else []
    forwarded += ["--readme", str(args.readme)] if args.readme else []
    forwarded += ["--table-only"] if args.table_only else []
    return study_main(forwarded)
