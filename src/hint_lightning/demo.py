"""The embedded demo: the HINT paper's VQA protocol on easy-VQA-CP, as a study.

``python -m hint_lightning.demo [--seeds ...] [--jobs N] [--output-dir DIR] [overrides]``
runs ``python -m hint_lightning.study easyvqa_cp``
(defaults: ``--output-dir logs/demo --jobs 2``):
it runs the study's rows (resuming finished runs), prints its table with 95% intervals and
paired differences from the control row, and writes ``study_results.{md,json,csv}`` to the
output folder. The rows, seeds and columns live in ``conf/study/easyvqa_cp.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hint_lightning.study.wrapper import run_wrapped

__all__ = ["STUDY", "main"]

STUDY = "easyvqa_cp"
"""The study this command runs."""


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the study's table."""
    return run_wrapped(STUDY, __doc__.split("\n\n")[0], "logs/demo", argv)


if __name__ == "__main__":
    main()
