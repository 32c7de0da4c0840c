"""HINT beyond VQA: decoy digits (Ross et al. 2017), as a study.

``python -m hint_lightning.decoy_digits [--seeds ...] [--jobs N] [--output-dir DIR] [overrides]``
runs ``python -m hint_lightning.study decoy_digits``
(defaults: ``--output-dir logs/decoy_digits --jobs 2``):
it runs the study's rows (resuming finished runs), prints its table with 95% intervals and
paired differences from the control row, and writes ``study_results.{md,json,csv}`` to the
output folder. The rows, seeds and columns live in ``conf/study/decoy_digits.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hint_lightning.study.wrapper import run_wrapped

__all__ = ["STUDY", "main"]

STUDY = "decoy_digits"
"""The study this command runs."""


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the study's table."""
    return run_wrapped(STUDY, __doc__.split("\n\n")[0], "logs/decoy_digits", argv)


if __name__ == "__main__":
    main()
