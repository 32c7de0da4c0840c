"""The decoy columns of VQA evaluation, for batches that carry the decoy keys (``decoy_vqa``).

:class:`~hint_lightning.modules.vqa_module.VQATask` adds these metrics to every evaluation
collection; they update only on batches with :data:`~hint_lightning.data.decoy_vqa.
SHAPE_QUESTION` / :data:`~hint_lightning.data.decoy_vqa.DECOY_PROPOSALS` and are logged only when
they were updated, so other datasets see no new columns:

* ``acc_shape``: accuracy (%) on the questions whose answer depends on the shape (the attribute
  the decoy codes);
* ``decoy_share``: mean share (%) of |importance| on the decoy's proposals (questions whose image
  has a decoy);
* ``importance_total``: mean total |importance| per question (collapse detector).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor
from torchmetrics import MeanMetric, Metric

from hint_lightning.data import batch as B
from hint_lightning.data.decoy_vqa import DECOY_PROPOSALS, SHAPE_QUESTION
from hint_lightning.metrics.functional.decoy import decoy_share, importance_total

__all__ = ["DECOY_COLUMNS", "decoy_logs", "decoy_metrics", "update_answers", "update_importance"]

DECOY_COLUMNS = ("acc_shape", "decoy_share", "importance_total")
"""The metric names (logged as ``<stage>/<name>``)."""
_PERCENT = {"acc_shape": 100.0, "decoy_share": 100.0, "importance_total": 1.0}


def decoy_metrics() -> dict[str, Metric]:
    """One running mean per column."""
    return {name: MeanMetric() for name in DECOY_COLUMNS}


def update_answers(batch: Mapping[str, Tensor], correct: Tensor, metrics: Mapping[str, Metric]):
    """``acc_shape`` from ``correct`` ``[B]`` bool, on the batch's shape questions."""
    if SHAPE_QUESTION in batch:
        shape = batch[SHAPE_QUESTION].bool()
        if bool(shape.any()):
            metrics["acc_shape"].update(correct[shape].float())


def update_importance(
    batch: Mapping[str, Tensor], importance: Tensor, metrics: Mapping[str, Metric]
) -> None:
    """``decoy_share`` and ``importance_total`` over the rows with human importance."""
    if DECOY_PROPOSALS not in batch:
        return
    rows = batch[B.HAS_IMPORTANCE].bool()
    importance = importance.detach()[rows]
    total = importance_total(importance, batch[B.PROPOSAL_MASK][rows])
    if total.numel():
        metrics["importance_total"].update(total)
    share = decoy_share(importance, batch[DECOY_PROPOSALS][rows].bool())
    share = share[~torch.isnan(share)]
    if share.numel():
        metrics["decoy_share"].update(share)


def decoy_logs(metrics: Mapping[str, Metric]) -> dict[str, Tensor]:
    """The updated columns (percent where a share), each metric reset."""
    logs: dict[str, Tensor] = {}
    for name in DECOY_COLUMNS:
        if name not in metrics:
            continue
        metric = metrics[name]
        if metric.update_count:
            value = metric.compute()
            if not math.isnan(float(value)):
                logs[name] = _PERCENT[name] * value
        metric.reset()
    return logs
