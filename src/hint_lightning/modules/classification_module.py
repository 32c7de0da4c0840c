"""Image classification over proposals (patches) with a grounding objective: HINT beyond VQA.

The same :class:`HintMixin` as VQA, on a classifier whose decision is the image's label. Used by
the decoy-digits experiments (``hint_lightning.decoy_digits``).

Logged keys: ``train/loss``, ``train/loss_task``, ``train/acc`` (running, over the epoch),
``train/loss_grounding``, ``train/hinted_frac``; ``{val,test}/acc`` (percent),
``{val,test}/rho`` (mean Spearman correlation of network and human importance),
``{val,test}/decoy_share`` (percent of the absolute network importance on the decoy proposal,
when batches carry ``decoy_index``) and ``{val,test}/loss``. Network importance in evaluation is
always that of the ground-truth logit (HINT's definition), whatever the training decision score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from hint_lightning.data import decoy_digits as D
from hint_lightning.metrics.grounding import GroundingCorrelation
from hint_lightning.modules.base import GroundedModule
from hint_lightning.modules.hint_mixin import evaluation_importance
from hint_lightning.objectives.base import GroundingObjective

DECISION_SCORES = ("logit", "sum_log_prob")


def decision_scores(logits: Tensor, labels: Tensor, kind: str = "logit") -> Tensor:
    """The score whose input gradient is the network importance ``[B]``.

    Args:
        logits: ``[B, C]``.
        labels: ``[B]`` ground-truth classes.
        kind: ``"logit"``: the ground-truth logit (HINT); ``"sum_log_prob"``: the sum of the
            log-probabilities of every class (Ross et al.'s right-for-the-right-reasons score).

    Example:
        >>> decision_scores(torch.tensor([[1.0, 3.0]]), torch.tensor([1]))
        tensor([3.])
    """
    if kind == "logit":
        return logits.gather(1, labels[:, None]).squeeze(1)
    if kind == "sum_log_prob":
        return F.log_softmax(logits, dim=1).sum(dim=1)
    raise ValueError(f"unknown decision score {kind!r}: use one of {DECISION_SCORES}")


def decoy_share(importance: Tensor, decoy_index: Tensor) -> Tensor:
    """Per-sample share of the absolute network importance on the decoy proposal ``[B]``.

    Example:
        >>> decoy_share(torch.tensor([[1.0, -3.0]]), torch.tensor([1]))
        tensor([0.7500])
    """
    magnitude = importance.abs()
    on_decoy = magnitude.gather(1, decoy_index[:, None]).squeeze(1)
    return on_decoy / magnitude.sum(dim=1).clamp(min=1e-12)


class ClassificationModule(GroundedModule):
    """Classification with an optional grounding objective.

    Args:
        net: a factory (Hydra ``_partial_``) taking ``num_proposals``, ``feature_dim`` and
            ``num_classes``; or a ready ``nn.Module`` mapping ``[B, N, D]`` to ``[B, C]``.
        data_info: the datamodule's sizes (``num_proposals``, ``feature_dim``, ``num_classes``).
        optimizer: a factory taking ``params`` (Hydra ``_partial_``).
        objective: the grounding objective, or None for plain training.
        decision_score: the training decision score, see :func:`decision_scores`.
        grounding_metrics: compute ``rho`` and ``decoy_share`` in evaluation (needs gradients).
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        data_info: Any,
        optimizer: Callable[..., torch.optim.Optimizer],
        objective: GroundingObjective | None = None,
        decision_score: str = "logit",
        grounding_metrics: bool = True,
    ) -> None:
        super().__init__()
        if decision_score not in DECISION_SCORES:
            raise ValueError(f"unknown decision score {decision_score!r}: use {DECISION_SCORES}")
        self.net = (
            net
            if isinstance(net, nn.Module)
            else net(
                num_proposals=data_info.num_proposals,
                feature_dim=data_info.feature_dim,
                num_classes=data_info.num_classes,
            )
        )
        self.data_info = data_info
        self.objective = objective
        self.optimizer_factory = optimizer
        self.decision_score = decision_score
        self.grounding_metrics = grounding_metrics
        self.run_config: dict[str, Any] | None = None
        self.save_hyperparameters(
            {"decision_score": decision_score, "grounding_metrics": grounding_metrics},
            logger=False,
        )
        classes = data_info.num_classes
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in ("val", "test")
                for name, metric in (
                    ("acc", MulticlassAccuracy(classes, average="micro")),
                    ("rho", GroundingCorrelation()),
                    ("decoy_share", MeanMetric()),
                )
            }
        )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy plus the grounding term on the images with human importance."""
        has_importance = batch[D.HAS_IMPORTANCE]
        features = self.proposals_for_grounding(batch[D.FEATURES], has_importance)
        logits = self.net(features)
        labels = batch[D.LABEL]
        task_loss = F.cross_entropy(logits, labels)
        term = self.grounding_term(
            decision_scores=decision_scores(logits, labels, self.decision_score),
            proposals=features,
            attention=None,
            human_importance=batch[D.HUMAN_IMPORTANCE],
            has_importance=has_importance,
            proposal_mask=batch[D.PROPOSAL_MASK],
        )
        loss = task_loss + term.loss
        size = labels.shape[0]
        correct = (logits.detach().argmax(dim=1) == labels).float().mean()
        self.log("train/acc", 100.0 * correct, on_step=False, on_epoch=True, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/loss_task", task_loss, batch_size=size)
        if self.objective is not None:
            for name, value in term.logs.items():
                self.log(f"train/{name}", value, batch_size=size)
        return loss

    def classify_with_importance(
        self, features: Tensor, labels: Tensor, with_importance: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Detached logits ``[B, C]`` and the ground-truth logit's importance ``[B, N]``."""
        if not with_importance:
            return self.net(features).detach(), None
        with torch.enable_grad():
            probe = features.detach().requires_grad_(True)
            logits = self.net(probe)
            importance = evaluation_importance(decision_scores(logits, labels), probe)
        return logits.detach(), importance

    def _evaluation_step(self, batch: dict[str, Tensor], stage: str) -> None:
        labels = batch[D.LABEL]
        with_importance = self.grounding_metrics
        if with_importance and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "grounding metrics take gradients in evaluation: set trainer.inference_mode=false"
                " or model.grounding_metrics=false"
            )
        logits, importance = self.classify_with_importance(
            batch[D.FEATURES], labels, with_importance
        )
        self.metrics[f"{stage}_acc"].update(logits.argmax(dim=1), labels)
        if importance is not None:
            self.metrics[f"{stage}_rho"].update(
                importance,
                batch[D.HUMAN_IMPORTANCE],
                batch[D.PROPOSAL_MASK],
                batch[D.HAS_IMPORTANCE],
            )
            if D.DECOY_INDEX in batch:
                share = decoy_share(importance, batch[D.DECOY_INDEX])
                self.metrics[f"{stage}_decoy_share"].update(share)
        loss = F.cross_entropy(logits, labels)
        self.log(f"{stage}/loss", loss, batch_size=labels.shape[0])

    def _log_epoch_metrics(self, stage: str) -> None:
        accuracy = self.metrics[f"{stage}_acc"]
        self.log(f"{stage}/acc", 100.0 * accuracy.compute())
        accuracy.reset()
        for name, scale in (("rho", 1.0), ("decoy_share", 100.0)):
            metric = self.metrics[f"{stage}_{name}"]
            if metric.update_count:
                value = metric.compute()
                if not math.isnan(float(value)):
                    self.log(f"{stage}/{name}", scale * value)
            metric.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate validation metrics."""
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate test metrics."""
        self._evaluation_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics."""
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics."""
        self._log_epoch_metrics("test")
