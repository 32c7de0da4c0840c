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


def _mean_curve(curves: list[dict[str, list[float | None]]]) -> dict[str, list[float | None]]:
    """Pointwise mean over the seeds' curves (same fractions; None where no seed has a value)."""
    out: dict[str, list[float | None]] = {"fractions": list(curves[0]["fractions"])}
    for order in ("most_first", "least_first"):
        columns = [c[order] for c in curves if order in c and c["fractions"] == out["fractions"]]
        if columns:
            out[order] = [
                (sum(v) / len(v)) if (v := [x for x in point if x is not None]) else None
                for point in zip(*columns, strict=True)
            ]
    return out


def plot_study_curves(table: dict[str, Any], output_dir: Path, split: str) -> Path | None:
    """Plot each row's removal curves (mean over its seeds) to ``removal_curves.png``.

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
    rows: dict[str, Any] = {}
    for row in table["rows"]:
        found = [
            module.curves_from_metrics(Path(p) / "metrics.json", split) for p in row["run_dirs"]
        ]
        found = [c for c in found if c]
        rows[row["experiment"]] = _mean_curve(found) if found else None
    if not any(rows.values()):
        return None
    title = f"{table['title']}: removal curves ({split}, mean over seeds)"
    return Path(module.plot_removal_curves(rows, output_dir / "removal_curves.png", title=title))
