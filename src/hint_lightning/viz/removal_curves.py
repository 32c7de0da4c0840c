"""Removal curves of several runs on one plot (ROAD-style MoRF and LeRF, Rong et al. 2022).

A removal curve is the mean decision score after removing a share of the proposals, most
relevant first (MoRF: falls fast when the importance ranks what the model relies on first) and
least relevant first (LeRF: stays high). ``evaluate`` and ``train`` write them to
``metrics.json`` as ``<split>/removal_curve/{fractions,most_first,least_first}``
(:mod:`hint_lightning.modules.metric_suite`); this module reads them back and draws them::

    from hint_lightning.viz.removal_curves import curves_from_metrics, plot_removal_curves
    curves = {name: curves_from_metrics(f"{run}/metrics.json") for name, run in runs.items()}
    plot_removal_curves(curves, "removal_curves.png")

Each row gets one colour: MoRF solid, LeRF dashed; x is the share of proposals removed, y the
decision's mean score (VQA: the ground-truth answer's logit; captioning: the visual word's
log-probability). Pure matplotlib (Agg), no display needed; the PNG is written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hint_lightning.utils.io import read_json
from hint_lightning.viz.importance import save_figure

__all__ = ["ORDERS", "curves_from_metrics", "plot_removal_curves"]

ORDERS: dict[str, str] = {"most_first": "MoRF (most relevant first)",
                          "least_first": "LeRF (least relevant first)"}  # fmt: skip
"""The curve keys of ``metrics.json`` and their legend labels."""

Curve = Mapping[str, Sequence[float | None]]
"""``{"fractions": [...], "most_first": [...], "least_first": [...]}`` (an order may be
absent; a None value is a fraction where the score was never defined)."""


def curves_from_metrics(
    metrics: Mapping[str, Any] | str | os.PathLike[str], split: str = "test"
) -> dict[str, list[float | None]] | None:
    """A run's removal curves from its ``metrics.json`` (a path or the loaded mapping).

    Args:
        metrics: ``metrics.json`` or its content.
        split: the split prefix (``test``, ``val``).

    Returns:
        ``{"fractions", "most_first", "least_first"}`` (orders present only), or None when the
        run has no removal curve (it was evaluated without ``metrics=[faithfulness]``).

    Example:
        >>> curves_from_metrics({"test/removal_curve/fractions": [0.5],
        ...                      "test/removal_curve/most_first": [0.2]})
        {'fractions': [0.5], 'most_first': [0.2]}
    """
    if not isinstance(metrics, Mapping):
        metrics = read_json(metrics, "metrics file")
        if not isinstance(metrics, Mapping):
            raise ValueError(f"{metrics}: metrics.json must hold a JSON object")
    prefix = f"{split}/removal_curve/"
    fractions = metrics.get(f"{prefix}fractions")
    if not fractions:
        return None
    out: dict[str, list[float | None]] = {"fractions": [float(f) for f in fractions]}
    for order in ORDERS:
        values = metrics.get(f"{prefix}{order}")
        if values is not None:
            out[order] = [None if v is None else float(v) for v in values]
    return out


def _points(fractions: Sequence[float], values: Sequence[float | None]) -> tuple[list, list]:
    pairs = [
        (float(x), float(y))
        for x, y in zip(fractions, values, strict=True)
        if y is not None and math.isfinite(float(y))
    ]
    return [x for x, _ in pairs], [y for _, y in pairs]


def plot_removal_curves(
    curves: Mapping[str, Curve | None],
    path: str | os.PathLike[str],
    title: str = "Removal curves",
) -> Path:
    """Draw every row's removal curves on one plot and write it as a PNG.

    Args:
        curves: row name -> its curves (:func:`curves_from_metrics`); None rows are skipped.
        path: the PNG to write (atomically; parent folders are created).
        title: the plot's title.

    Returns:
        The path.

    Raises:
        ValueError: when no row has a curve, or a row's lists do not match its fractions.
    """
    rows = {name: curve for name, curve in curves.items() if curve}
    if not rows:
        raise ValueError(
            "no removal curves to draw: evaluate with metrics=[faithfulness] (the curves are "
            "<split>/removal_curve/... in metrics.json)"
        )
    figure = Figure(figsize=(7.0, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    colours = [f"C{index % 10}" for index in range(len(rows))]
    for colour, (name, curve) in zip(colours, rows.items(), strict=True):
        fractions = list(curve["fractions"])  # type: ignore[arg-type]
        for order, style in (("most_first", "-"), ("least_first", "--")):
            values = curve.get(order)
            if values is None:
                continue
            if len(values) != len(fractions):
                raise ValueError(
                    f"removal curve of {name!r}: {len(values)} {order} values for "
                    f"{len(fractions)} fractions"
                )
            xs, ys = _points(fractions, values)
            label = f"{name}, {'MoRF' if order == 'most_first' else 'LeRF'}"
            axes.plot(xs, ys, style, color=colour, marker="o", markersize=3, label=label)
    axes.set_xlabel("share of proposals removed")
    axes.set_ylabel("decision score (mean)")
    axes.set_title(f"{title} (solid: most relevant first, dashed: least relevant first)",
                   fontsize=9)  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_figure(figure, path)
