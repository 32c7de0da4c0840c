"""The captioning smoke demo: HINT at visual words on easy-VQA captions, as a study.

``python -m hint_lightning.caption_demo [--seeds ...] [--jobs N] [--output-dir DIR] [overrides]``
runs ``python -m hint_lightning.study caption_smoke``
(defaults: ``--output-dir logs/caption_demo --jobs 2``):
it runs the study's rows (resuming finished runs), prints its table with 95% intervals and
paired differences from the control row, and writes ``study_results.{md,json,csv}`` to the
output folder. The rows, seeds and columns live in ``conf/study/caption_smoke.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hint_lightning.study.wrapper import run_wrapped

__all__ = ["STUDY", "main"]

STUDY = "caption_smoke"
"""The study this command runs."""


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the study's table."""
    return run_wrapped(STUDY, __doc__.split("\n\n")[0], "logs/caption_demo", argv)


if __name__ == "__main__":
    main()
