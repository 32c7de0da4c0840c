"""What ``evaluate`` and ``train`` write after the evaluation suite ran: the removal-curve plot
and the W&B tables.

- ``removal_curves.png`` in the run folder, when ``metrics.json`` holds removal curves
  (``metrics=[faithfulness]``): :func:`hint_lightning.viz.removal_curves.plot_removal_curves`.
- For every W&B logger of the trainer: the table ``grounding_metrics`` (split, family, metric,
  value: every ``<split>/<family>/<metric>``), the table ``removal_curves`` (split, fraction,
  most_first, least_first) and the plot as an image (``removal_curves``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hint_lightning.metrics.suite import FAMILIES

__all__ = ["REMOVAL_CURVES_FILE", "suite_rows", "write_suite_outputs"]

log = logging.getLogger(__name__)

REMOVAL_CURVES_FILE = "removal_curves.png"
"""The plot's name in the run folder."""


def suite_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """``[split, family, metric, value]`` of every suite metric in ``metrics`` (sorted)."""
    rows = []
    for key, value in sorted(metrics.items()):
        parts = key.split("/")
        if len(parts) == 3 and parts[1] in FAMILIES and not isinstance(value, list):
            rows.append([parts[0], parts[1], parts[2], value])
    return rows


def write_suite_outputs(
    metrics: Mapping[str, Any], output_dir: str | Path, loggers: Any = (), title: str = ""
) -> dict[str, str]:
    """Plot the removal curves of every split in ``metrics`` and log the W&B tables.

    Call on rank 0 only.

    Args:
        metrics: what goes to ``metrics.json`` (``<split>/removal_curve/...`` lists included).
        output_dir: the run folder.
        loggers: the trainer's loggers (W&B ones get the tables and the image).
        title: the run's name on the plot.

    Returns:
        ``{"removal_curves": path}`` when a plot was written, else empty.
    """
    from pytorch_lightning.loggers import WandbLogger

    from hint_lightning.viz.removal_curves import curves_from_metrics, plot_removal_curves

    splits = sorted({key.split("/")[0] for key in metrics if "/removal_curve/" in key})
    curves = {split: curves_from_metrics(metrics, split) for split in splits}
    curves = {split: curve for split, curve in curves.items() if curve}
    written: dict[str, str] = {}
    if curves:
        path = Path(output_dir) / REMOVAL_CURVES_FILE
        named = {f"{title} ({split})" if title else split: c for split, c in curves.items()}
        plot_removal_curves(named, path, title=f"Removal curves {title}".strip())
        written["removal_curves"] = str(path)
    rows = suite_rows(metrics)
    for logger in loggers or ():
        if not isinstance(logger, WandbLogger):
            continue
        if rows:
            logger.log_table(
                key="grounding_metrics", columns=["split", "family", "metric", "value"], data=rows
            )
        curve_rows = [
            [split, fraction, _at(curve, "most_first", i), _at(curve, "least_first", i)]
            for split, curve in curves.items()
            for i, fraction in enumerate(curve["fractions"])
        ]
        if curve_rows:
            logger.log_table(
                key="removal_curves",
                columns=["split", "fraction", "most_first", "least_first"],
                data=curve_rows,
            )
        if "removal_curves" in written:
            logger.log_image(key="removal_curves_plot", images=[written["removal_curves"]])
    return written


def _at(curve: Mapping[str, Any], order: str, index: int) -> float | None:
    values = curve.get(order)
    return None if values is None else values[index]
