"""The VQA LightningModule: UpDn + a grounding objective + the official metrics.

It wires the pieces and logs; the pieces live elsewhere: the model in ``models/``, the grounding
term in ``objectives/`` (through :class:`HintMixin`), the metrics in ``metrics/``.

Logged keys: ``train/loss``, ``train/loss_task``, ``train/loss_grounding``, ``train/hinted_frac``;
``{val,test}/acc`` (+ ``_yes_no``, ``_number``, ``_other``; official VQA accuracy in percent),
``{val,test}/rho`` (mean Spearman correlation of network and human importance over the
questions with human importance), ``{val,test}/rho_attention`` (the same for attention),
``test/misgrounded`` (percent of correct answers whose most important proposal is not among
the 3 most human-important ones), ``{val,test}/loss`` and ``{val,test}/questions`` (how many
questions were evaluated).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hint_lightning.data import batch as B
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.metrics.grounding import GroundingCorrelation, MisgroundedRate
from hint_lightning.metrics.vqa_accuracy import VQAAccuracy
from hint_lightning.modules.base import CHECKPOINT_KEY, GroundedModule
from hint_lightning.modules.decision import get_decision_score
from hint_lightning.modules.hint_mixin import evaluation_importance
from hint_lightning.objectives.base import GroundingObjective

__all__ = ["CHECKPOINT_KEY", "VQAModule", "soft_target_bce"]


def soft_target_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """UpDn's task loss: binary cross-entropy on soft scores, times the number of answers.

    Args:
        logits: ``[B, A]``.
        targets: ``[B, A]`` soft targets in [0, 1].

    Returns:
        Scalar loss (mean over samples and answers, times A, as in the reference code).
    """
    return F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]


class VQAModule(GroundedModule):
    """VQA training and evaluation with an optional grounding objective.

    Args:
        net: a factory (Hydra ``_partial_``) building the model from ``vocab_size``,
            ``num_answers`` and ``feature_dim``; or a ready ``nn.Module``.
        data_info: sizes and vocabularies of the prepared dataset.
        optimizer: a factory taking ``params`` (Hydra ``_partial_``).
        scheduler: optional factory taking ``optimizer``.
        objective: the grounding objective, or None for plain training.
        decision_score: ``top_answer`` or ``all_answers`` (see ``modules/decision.py``).
        grounding_metrics: compute rank correlations in validation and test (needs gradients:
            ``Trainer(inference_mode=False)``).
        compile: ``torch.compile`` the model (refused with an objective that needs network
            importance: compiled graphs cannot be differentiated twice).
        fast_importance: take network importance through the model's ``proposal_shift``
            (exact, much cheaper) when the model supports it; False forces the plain gradient
            with respect to the ``[B, N, D]`` features (the reference path).
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        data_info: VQADataInfo,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        objective: GroundingObjective | None = None,
        decision_score: str = "top_answer",
        grounding_metrics: bool = True,
        compile: bool = False,
        fast_importance: bool = True,
    ) -> None:
        super().__init__()
        if compile and objective is not None and objective.needs_network_importance:
            raise ValueError(
                "model.compile=true cannot be combined with an objective that takes network "
                "importance (torch.compile does not support double backward): set "
                "model.compile=false"
            )
        self.net = (
            net
            if isinstance(net, nn.Module)
            else net(
                vocab_size=data_info.vocab_size,
                num_answers=data_info.num_answers,
                feature_dim=data_info.feature_dim,
            )
        )
        if compile:
            self.net = torch.compile(self.net)
        self.data_info = data_info
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.decision_score_name = decision_score
        self.decision_score = get_decision_score(decision_score)
        self.grounding_metrics = grounding_metrics
        self.fast_importance = fast_importance and bool(
            getattr(self.net, "supports_proposal_shift", False)
        )
        self.run_config: dict[str, Any] | None = None
        self.save_hyperparameters(
            {"decision_score": decision_score, "grounding_metrics": grounding_metrics},
            logger=False,
        )
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in ("val", "test")
                for name, metric in (
                    ("acc", VQAAccuracy()),
                    ("rho", GroundingCorrelation()),
                    ("rho_attention", GroundingCorrelation()),
                    ("misgrounded", MisgroundedRate()),
                )
            }
        )
        self.test_predictions: dict[int, str] = {}
        self._test_outputs: list[tuple[Tensor, Tensor]] = []

    def initialize_from_data(self, datamodule: Any) -> bool:
        """Initialize the word embeddings from the datamodule's word vectors, if it has some.

        Returns:
            Whether vectors were loaded (``datamodule.word_vectors_path``, e.g. ``glove.npy``).
        """
        path = getattr(datamodule, "word_vectors_path", None)
        encoder = getattr(self.net, "question_encoder", None)
        if not path or encoder is None:
            return False
        encoder.initialize_embeddings(torch.from_numpy(np.load(path)))
        return True

    def _forward(
        self, batch: dict[str, Tensor], features: Tensor, shift: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        extra = {} if shift is None else {"proposal_shift": shift}
        return self.net(
            features, batch[B.BOXES], batch[B.QUESTION_TOKENS], batch[B.PROPOSAL_MASK], **extra
        )

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Task loss plus the grounding term on the questions with human importance."""
        features, has_importance = batch[B.FEATURES], batch[B.HAS_IMPORTANCE]
        shift = None
        if self.fast_importance:
            shift = self.proposal_shift_for_grounding(features, has_importance)
        else:
            features = self.proposals_for_grounding(features, has_importance)
        logits, attention = self._forward(batch, features, shift)
        task_loss = soft_target_bce(logits, batch[B.TARGETS])
        term = self.grounding_term(
            decision_scores=self.decision_score(logits, batch[B.TARGETS]),
            proposals=features,
            attention=attention,
            human_importance=batch[B.HUMAN_IMPORTANCE],
            has_importance=batch[B.HAS_IMPORTANCE],
            proposal_mask=batch[B.PROPOSAL_MASK],
            proposal_shift=shift,
        )
        loss = task_loss + term.loss
        size = batch[B.TARGETS].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/loss_task", task_loss, batch_size=size)
        if self.objective is not None:
            for name, value in term.logs.items():
                self.log(f"train/{name}", value, batch_size=size)
        return loss

    # ---------------------------------------------------------------- evaluation
    def answer_with_importance(
        self, batch: dict[str, Tensor], with_importance: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Answer a batch and explain the ground-truth decision (no graph is kept).

        The importance is that of ``decision_score`` (the ground-truth answer), taken through
        the proposal shift when the model supports it, else with respect to the features.
        Used by evaluation, the pictures (``hint_lightning.viz``) and the W&B image logger.

        Returns:
            Detached logits ``[B, A]``, attention ``[B, N]`` and network importance ``[B, N]``
            (None when ``with_importance`` is False).
        """
        features, probe, shift = batch[B.FEATURES], None, None
        with torch.enable_grad() if with_importance else nullcontext():
            if with_importance and self.fast_importance:
                probe = shift = features.new_zeros(features.shape[:2]).requires_grad_(True)
            elif with_importance:
                probe = features = features.detach().requires_grad_(True)
            logits, attention = self._forward(batch, features, shift)
            importance = (
                evaluation_importance(self.decision_score(logits, batch[B.TARGETS]), probe)
                if probe is not None
                else None
            )
        return logits.detach(), attention.detach(), importance

    def _evaluation_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        has_importance = batch[B.HAS_IMPORTANCE]
        with_importance = self.grounding_metrics and bool(has_importance.any())
        if with_importance and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "grounding metrics take gradients during evaluation, which inference mode "
                "forbids: set trainer.inference_mode=false (the default configs do), or "
                "model.grounding_metrics=false"
            )
        logits, attention, importance = self.answer_with_importance(batch, with_importance)
        predictions = logits.argmax(dim=1)
        self.metrics[f"{stage}_acc"].update(
            predictions, batch[B.ANSWER_SCORES], batch[B.ANSWER_TYPE]
        )
        if importance is not None:
            mask, human = batch[B.PROPOSAL_MASK], batch[B.HUMAN_IMPORTANCE]
            self.metrics[f"{stage}_rho"].update(importance, human, mask, has_importance)
            self.metrics[f"{stage}_rho_attention"].update(attention, human, mask, has_importance)
            correct = batch[B.ANSWER_SCORES].gather(1, predictions[:, None]).squeeze(1) > 0
            self.metrics[f"{stage}_misgrounded"].update(
                importance, human, mask, has_importance, correct
            )
        loss = soft_target_bce(logits, batch[B.TARGETS])
        self.log(f"{stage}/loss", loss, batch_size=logits.shape[0], sync_dist=True)
        return predictions

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate validation metrics."""
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate test metrics and keep the predictions for the results file."""
        predictions = self._evaluation_step(batch, "test")
        self._test_outputs.append((batch[B.QUESTION_ID].detach(), predictions))

    def _log_epoch_metrics(self, stage: str) -> None:
        accuracy = self.metrics[f"{stage}_acc"]
        for answer_type, value in accuracy.compute().items():
            key = "acc" if answer_type == "overall" else f"acc_{_slug(answer_type)}"
            if not math.isnan(float(value)):
                self.log(f"{stage}/{key}", value)
        # The number of questions evaluated (synced across processes): each exactly once.
        self.log(
            f"{stage}/questions", accuracy.counts.sum().float(), reduce_fx="sum", sync_dist=True
        )
        accuracy.reset()
        names = ["rho", "rho_attention"] + (["misgrounded"] if stage == "test" else [])
        for name in names:
            metric = self.metrics[f"{stage}_{name}"]
            if metric.update_count and self.grounding_metrics:
                value = metric.compute()
                if not math.isnan(float(value)):
                    self.log(f"{stage}/{name}", value)
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics."""
        self._log_epoch_metrics("val")

    def on_test_epoch_start(self) -> None:
        """Forget predictions of an earlier test run."""
        self._test_outputs = []
        self.test_predictions = {}

    def on_test_epoch_end(self) -> None:
        """Log the test metrics and collect the predictions (each question exactly once)."""
        self._log_epoch_metrics("test")
        if not self._test_outputs:
            return
        question_ids = torch.cat([ids for ids, _ in self._test_outputs]).tolist()
        predictions = torch.cat([preds for _, preds in self._test_outputs]).tolist()
        pairs = list(zip(question_ids, predictions, strict=True))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Processes may hold different numbers of questions: gather Python objects.
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, pairs)
            pairs = [pair for part in gathered for pair in part]
        answers = self.data_info.answers
        self.test_predictions = {int(qid): answers[int(pred)] for qid, pred in pairs}
        self._test_outputs = []


def _slug(answer_type: str) -> str:
    """``"yes/no"`` -> ``"yes_no"``: a metric-name-safe answer type."""
    return answer_type.replace("/", "_").replace(" ", "_")
