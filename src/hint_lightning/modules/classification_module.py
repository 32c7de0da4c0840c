"""Image classification over proposals (patches) with grounding objectives: HINT beyond VQA.

The same :class:`~hint_lightning.modules.base.GroundedModule` as VQA, with a task adapter
whose decision is the image's label. Used by the decoy-digits experiments
(``hint_lightning.decoy_digits``).

Logged keys: ``train/loss``, ``train/loss_task``, ``train/acc`` (running, over the epoch),
``train/loss_grounding``, ``train/loss_<objective>``, ``train/hinted_frac``; ``{val,test}/acc``
(percent), ``{val,test}/rho`` (mean Spearman correlation of network and human importance),
``{val,test}/decoy_share`` (percent of the absolute network importance on the decoy proposal,
when batches carry ``decoy_index``) and ``{val,test}/loss``. Network importance in evaluation is
always that of the ground-truth logit (HINT's definition), whatever the training decision score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy

from hint_lightning.data import decoy_digits as D
from hint_lightning.modules.base import GroundedModule
from hint_lightning.modules.task import BackbonePasses, GroundingRows, Task, split_output
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import DecisionTargets, PassOutput

__all__ = ["DECISION_SCORES", "ClassificationModule", "ClassificationTask", "decision_scores"]

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


def _one_hot(labels: Tensor, classes: int) -> Tensor:
    return F.one_hot(labels, classes).bool()


class ClassificationTask(Task):
    """The classification adapter: cross-entropy, accuracy, the decoy's share of importance.

    Args:
        data_info: ``num_proposals``, ``feature_dim`` and ``num_classes``.
        decision_score: the training decision score, see :func:`decision_scores`.
    """

    name = "classification"
    default_mask = False
    default_attention = False
    batch_size_key = D.LABEL

    def __init__(self, data_info: Any, decision_score: str = "logit") -> None:
        super().__init__(data_info)
        if decision_score not in DECISION_SCORES:
            raise ValueError(f"unknown decision score {decision_score!r}: use {DECISION_SCORES}")
        self.decision_score = decision_score

    def build_net(self, factory: Callable[..., nn.Module]) -> nn.Module:
        """``factory(num_proposals=..., feature_dim=..., num_classes=...)``."""
        info = self.data_info
        return factory(
            num_proposals=info.num_proposals,
            feature_dim=info.feature_dim,
            num_classes=info.num_classes,
        )

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The ``[B, N, D]`` patches."""
        return batch[D.FEATURES]

    def _call(self, net: nn.Module, proposals: Tensor, mask: Tensor | None) -> PassOutput:
        caps = self.capabilities(net)
        output = net(proposals, mask) if caps.mask and mask is not None else net(proposals)
        logits, attention = split_output(output)
        return PassOutput(logits, attention)

    def main_pass(
        self, net: nn.Module, batch: Mapping[str, Tensor], features: Tensor, shift: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """``(logits [B, C], attention or None)``."""
        logits, attention = self._call(net, features, batch.get(D.PROPOSAL_MASK))
        return logits, attention

    def task_loss(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """Cross-entropy."""
        return F.cross_entropy(outputs, batch[D.LABEL])

    def grounding_rows(
        self, net: nn.Module, batch: Mapping[str, Tensor], training: bool = True
    ) -> GroundingRows:
        """Every image is a row; its decision is the label (training: ``decision_score``;
        evaluation: the ground-truth logit)."""
        kind = self.decision_score if training else "logit"

        def ground_truth(logits: Tensor, labels: Tensor) -> Tensor:
            return decision_scores(logits, labels, kind)

        def call(
            proposals: Tensor, mask: Tensor, shift: Tensor | None, inputs: Mapping[str, Tensor]
        ) -> PassOutput:
            return self._call(net, proposals, mask)

        classes = self.data_info.num_classes
        return GroundingRows(
            proposals=batch[D.FEATURES],
            proposal_mask=batch[D.PROPOSAL_MASK],
            human_importance=batch[D.HUMAN_IMPORTANCE],
            has_importance=batch[D.HAS_IMPORTANCE],
            decisions=DecisionTargets(
                batch[D.LABEL],
                ground_truth,
                positives=lambda labels: _one_hot(labels, classes),
                sample_loss=lambda logits, labels: F.cross_entropy(
                    logits, labels, reduction="none"
                ),
            ),
            passes=BackbonePasses(call, {}, self.capabilities(net)),
        )

    def training_logs(
        self, batch: Mapping[str, Tensor], outputs: Tensor, rows: GroundingRows, grounded: bool
    ) -> dict[str, Tensor | float]:
        """The running training accuracy (percent)."""
        correct = (outputs.detach().argmax(dim=1) == batch[D.LABEL]).float().mean()
        return {"acc": 100.0 * correct}

    def log_options(self, name: str) -> dict[str, Any]:
        """``train/acc`` is an epoch mean."""
        return {"on_step": False, "on_epoch": True} if name == "acc" else {}

    # ---------------------------------------------------------------- evaluation
    def metrics(self) -> dict[str, Metric]:
        """Accuracy and the decoy's share of importance."""
        classes = self.data_info.num_classes
        return {
            "acc": MulticlassAccuracy(classes, average="micro"),
            "decoy_share": MeanMetric(),
        }

    def evaluation_step(
        self,
        module: Any,
        batch: Mapping[str, Tensor],
        outputs: Tensor,
        stage: str,
        metrics: Mapping[str, Metric],
    ) -> dict[str, Tensor]:
        """Accuracy and loss."""
        labels = batch[D.LABEL]
        metrics["acc"].update(outputs.argmax(dim=1), labels)
        module.log(f"{stage}/loss", F.cross_entropy(outputs, labels), batch_size=labels.shape[0])
        return {}

    def update_importance_metrics(
        self, batch: Mapping[str, Tensor], importance: Tensor, metrics: Mapping[str, Metric]
    ) -> None:
        """The decoy's share of the absolute importance (batches with ``decoy_index``)."""
        if D.DECOY_INDEX in batch:
            metrics["decoy_share"].update(decoy_share(importance, batch[D.DECOY_INDEX]))

    def epoch_logs(
        self, module: Any, stage: str, metrics: Mapping[str, Metric]
    ) -> dict[str, Tensor | float]:
        """Accuracy and the decoy share, in percent."""
        logs: dict[str, Tensor | float] = {"acc": 100.0 * metrics["acc"].compute()}
        metrics["acc"].reset()
        share = metrics["decoy_share"]
        if share.update_count:
            value = share.compute()
            if not math.isnan(float(value)):
                logs["decoy_share"] = 100.0 * value
        share.reset()
        return logs


class ClassificationModule(GroundedModule):
    """Classification with grounding objectives.

    Args:
        net: a factory (Hydra ``_partial_``) taking ``num_proposals``, ``feature_dim`` and
            ``num_classes``; or a ready ``nn.Module`` mapping ``[B, N, D]`` to ``[B, C]``.
        data_info: the datamodule's sizes (``num_proposals``, ``feature_dim``, ``num_classes``).
        optimizer: a factory taking ``params`` (Hydra ``_partial_``).
        objective: the grounding objective(s), or None for plain training.
        decision_score: the training decision score, see :func:`decision_scores`.
        grounding_metrics: compute ``rho`` and ``decoy_share`` in evaluation (needs gradients).
        objectives: more named objectives.
        train_importance: the importance method objectives get (``gradient``).
        eval_importance: the importance method of the grounding metrics.
        scheduler: optional factory taking ``optimizer``.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        data_info: Any,
        optimizer: Callable[..., torch.optim.Optimizer],
        objective: GroundingObjective | Mapping[str, GroundingObjective] | None = None,
        decision_score: str = "logit",
        grounding_metrics: bool = True,
        objectives: Mapping[str, GroundingObjective] | None = None,
        train_importance: Any = "gradient",
        eval_importance: Any = "gradient",
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(
            ClassificationTask(data_info, decision_score),
            net,
            optimizer,
            scheduler,
            objective=objective,
            objectives=objectives,
            train_importance=train_importance,
            eval_importance=eval_importance,
            grounding_metrics=grounding_metrics,
        )
        self.decision_score = decision_score
        self.save_hyperparameters(
            {"decision_score": decision_score, "grounding_metrics": grounding_metrics},
            logger=False,
        )

    def classify_with_importance(
        self, features: Tensor, labels: Tensor, with_importance: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Detached logits ``[B, C]`` and the ground-truth logit's importance ``[B, N]``."""
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        batch = {
            D.FEATURES: features,
            D.LABEL: labels,
            D.PROPOSAL_MASK: mask,
            D.HUMAN_IMPORTANCE: features.new_zeros(features.shape[:2]),
            D.HAS_IMPORTANCE: mask[:, 0],
        }
        explained = self.explain(batch, with_importance)
        return explained.outputs, explained.importance
