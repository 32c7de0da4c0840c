"""The study's removal-curve plot, drawn by the evaluation suite's plotter when it exists.

The plot itself belongs to :mod:`hint_lightning.viz.removal_curves` (``plot_removal_curves``,
the evaluation-suite wiring); the study only hands it the run folders of each row. Without
that module (or without curves in the runs) no plot is drawn and None is returned: the study
never draws its own copy.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["plot_study_curves"]


def plot_study_curves(table: dict[str, Any], output_dir: Path, split: str) -> Path | None:
    """Plot the removal curves of every row of ``table`` to ``<output_dir>/removal_curves.png``.

    Args:
        table: :func:`~hint_lightning.study.table.build_table`'s result.
        output_dir: the study's output folder.
        split: the split whose curves are drawn (e.g. ``test``).

    Returns:
        The image's path, or None when nothing was drawn (no plotter, no curves).
    """
    try:
        module = importlib.import_module("hint_lightning.viz.removal_curves")
    except ImportError:
        return None
    plot = getattr(module, "plot_removal_curves", None)
    if plot is None:
        return None
    runs = {row["experiment"]: [Path(p) for p in row["run_dirs"]] for row in table["rows"]}
    target = output_dir / "removal_curves.png"
    try:
        result = plot(runs, target, split=split)
    except (FileNotFoundError, KeyError, ValueError):  # the runs hold no curves
        return None
    return Path(result) if result else (target if target.is_file() else None)
