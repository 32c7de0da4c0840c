"""VQA: the task adapter and the LightningModule (a backbone + grounding objectives + the
official metrics).

It wires the pieces and logs; the pieces live elsewhere: the backbone in ``models/`` (UpDn,
the small transformer, or any :class:`~hint_lightning.models.protocol.Backbone`), the
grounding terms in ``objectives/``, importance methods in ``importance/``, the training step
and evaluation in :class:`~hint_lightning.modules.base.GroundedModule`, the metrics in
``metrics/``.

Logged keys: ``train/loss``, ``train/loss_task``, ``train/loss_grounding``,
``train/loss_<objective>``, ``train/hinted_frac``; ``{val,test}/acc`` (+ ``_yes_no``,
``_number``, ``_other``; official VQA accuracy in percent), ``{val,test}/rho`` (mean Spearman
correlation of network and human importance over the questions with human importance),
``{val,test}/rho_attention`` (the same for attention), ``test/misgrounded`` (percent of correct
answers whose most important proposal is not among the 3 most human-important ones),
``{val,test}/loss`` and ``{val,test}/questions`` (how many questions were evaluated).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from hint_lightning.data import batch as B
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.metrics.vqa_accuracy import VQAAccuracy
from hint_lightning.models.protocol import embed_proposals
from hint_lightning.modules import decoy_metrics
from hint_lightning.modules.base import CHECKPOINT_KEY, GroundedModule
from hint_lightning.modules.decision import get_decision_score
from hint_lightning.modules.task import (
    BackbonePasses,
    GroundingRows,
    Task,
    gather_objects,
    split_output,
)
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import DecisionTargets, PassOutput

__all__ = ["CHECKPOINT_KEY", "VQAModule", "VQATask", "soft_target_bce"]


def soft_target_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """UpDn's task loss: binary cross-entropy on soft scores, times the number of answers.

    Args:
        logits: ``[B, A]``.
        targets: ``[B, A]`` soft targets in [0, 1].

    Returns:
        Scalar loss (mean over samples and answers, times A, as in the reference code).
    """
    return F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]


def soft_target_bce_per_sample(logits: Tensor, targets: Tensor) -> Tensor:
    """``[B]`` each sample's share of :func:`soft_target_bce` (their mean is the batch loss)."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=1)


def _right_answers(targets: Tensor) -> Tensor:
    """``[B, A]`` bool: the answers with a nonzero soft score."""
    return targets > 0


def _slug(answer_type: str) -> str:
    """``"yes/no"`` -> ``"yes_no"``: a metric-name-safe answer type."""
    return answer_type.replace("/", "_").replace(" ", "_")


class VQATask(Task):
    """The VQA adapter: UpDn's soft-target BCE, the official accuracy, results by question.

    Args:
        data_info: the VQA data's sizes and vocabularies.
        decision_score: ``top_answer`` or ``all_answers`` (see ``modules/decision.py``).
    """

    name = "vqa"
    misgrounded = True
    batch_size_key = B.TARGETS

    def __init__(self, data_info: VQADataInfo, decision_score: str = "top_answer") -> None:
        super().__init__(data_info)
        self.decision_score = get_decision_score(decision_score)
        self.test_predictions: dict[int, str] = {}
        self._test_outputs: list[tuple[Tensor, Tensor]] = []

    def build_net(self, factory: Callable[..., nn.Module]) -> nn.Module:
        """``factory(vocab_size=..., num_answers=..., feature_dim=...)``."""
        info = self.data_info
        return factory(
            vocab_size=info.vocab_size, num_answers=info.num_answers, feature_dim=info.feature_dim
        )

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The batch's ``[B, N, D]`` proposal features."""
        return batch[B.FEATURES]

    def main_pass(
        self, net: nn.Module, batch: Mapping[str, Tensor], features: Tensor, shift: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """``(logits [B, A], attention [B, N])``."""
        extra = {} if shift is None else {"proposal_shift": shift}
        output = net(
            features, batch[B.BOXES], batch[B.QUESTION_TOKENS], batch[B.PROPOSAL_MASK], **extra
        )
        return split_output(output)

    def task_loss(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """:func:`soft_target_bce`."""
        return soft_target_bce(outputs, batch[B.TARGETS])

    def grounding_rows(
        self, net: nn.Module, batch: Mapping[str, Tensor], training: bool = True
    ) -> GroundingRows:
        """Every question is a row; the decision is the ground-truth answer."""

        def call(
            proposals: Tensor, mask: Tensor, shift: Tensor | None, inputs: Mapping[str, Tensor]
        ) -> PassOutput:
            extra = {} if shift is None else {"proposal_shift": shift}
            logits, attention = split_output(
                net(proposals, inputs["boxes"], inputs["tokens"], mask, **extra)
            )
            return PassOutput(logits, attention)

        captured = {"boxes": batch[B.BOXES], "tokens": batch[B.QUESTION_TOKENS]}
        return GroundingRows(
            lazy={"proposals": lambda: embed_proposals(net, batch[B.FEATURES])},
            proposal_mask=batch[B.PROPOSAL_MASK],
            human_importance=batch[B.HUMAN_IMPORTANCE],
            has_importance=batch[B.HAS_IMPORTANCE],
            decisions=DecisionTargets(
                batch[B.TARGETS],
                self.decision_score,
                positives=_right_answers,
                sample_loss=soft_target_bce_per_sample,
            ),
            passes=BackbonePasses(call, captured, self.capabilities(net), net),
        )

    # ---------------------------------------------------------------- evaluation
    def has_grounding(self, batch: Mapping[str, Tensor]) -> bool:
        """Importance is taken on batches where some question has human importance."""
        return bool(batch[B.HAS_IMPORTANCE].any())

    def metrics(self) -> dict[str, Metric]:
        """The official VQA accuracy (and the decoy columns, updated on decoy_vqa batches)."""
        return {"acc": VQAAccuracy(), **decoy_metrics.decoy_metrics()}

    def evaluation_step(
        self,
        module: Any,
        batch: Mapping[str, Tensor],
        outputs: Tensor,
        stage: str,
        metrics: Mapping[str, Metric],
    ) -> dict[str, Tensor]:
        """Accuracy, loss; the test keeps its predictions; ``correct`` for ``misgrounded``."""
        predictions = outputs.argmax(dim=1)
        metrics["acc"].update(predictions, batch[B.ANSWER_SCORES], batch[B.ANSWER_TYPE])
        loss = soft_target_bce(outputs, batch[B.TARGETS])
        module.log(f"{stage}/loss", loss, batch_size=outputs.shape[0], sync_dist=True)
        if stage == "test":
            self._test_outputs.append((batch[B.QUESTION_ID].detach(), predictions))
        correct = batch[B.ANSWER_SCORES].gather(1, predictions[:, None]).squeeze(1) > 0
        decoy_metrics.update_answers(batch, correct, metrics)
        return {"correct": correct}

    def update_importance_metrics(
        self, batch: Mapping[str, Tensor], importance: Tensor, metrics: Mapping[str, Metric]
    ) -> None:
        """The decoy share and total |importance| (batches with the decoy keys)."""
        decoy_metrics.update_importance(batch, importance, metrics)

    def log_options(self, name: str) -> dict[str, Any]:
        """The number of questions is summed over processes."""
        return {"reduce_fx": "sum", "sync_dist": True} if name == "questions" else {}

    def epoch_logs(
        self, module: Any, stage: str, metrics: Mapping[str, Metric]
    ) -> dict[str, Tensor | float]:
        """Accuracy per answer type and the number of questions (each exactly once); the test
        gathers every process's predictions into ``test_predictions``."""
        accuracy = metrics["acc"]
        logs: dict[str, Tensor | float] = {}
        for answer_type, value in accuracy.compute().items():
            key = "acc" if answer_type == "overall" else f"acc_{_slug(answer_type)}"
            if not math.isnan(float(value)):
                logs[key] = value
        logs["questions"] = accuracy.counts.sum().float()
        accuracy.reset()
        logs.update(decoy_metrics.decoy_logs(metrics))
        if stage == "test":
            self._gather_predictions()
        return logs

    def _gather_predictions(self) -> None:
        if not self._test_outputs:
            return
        question_ids = torch.cat([ids for ids, _ in self._test_outputs]).tolist()
        predictions = torch.cat([preds for _, preds in self._test_outputs]).tolist()
        pairs = gather_objects(list(zip(question_ids, predictions, strict=True)))
        answers = self.data_info.answers
        self.test_predictions = {int(qid): answers[int(pred)] for qid, pred in pairs}
        self._test_outputs = []

    def on_epoch_start(self, module: Any, stage: str) -> None:
        """A test forgets the predictions of an earlier test run."""
        if stage == "test":
            self._test_outputs = []
            self.test_predictions = {}

    # ---------------------------------------------------------------- the evaluation suite
    def suite_correct(
        self, batch: Mapping[str, Tensor], rows: GroundingRows
    ) -> Callable[[Tensor], Tensor]:
        """FPVG's correctness: the answer's official accuracy is 1 (3 or more annotators)."""
        scores = batch[B.ANSWER_SCORES]

        def correct(predictions: Tensor) -> Tensor:
            return scores.gather(1, predictions.T).T >= 1.0 - 1e-6

        return correct

    def suite_columns(
        self, batch: Mapping[str, Tensor], rows: GroundingRows, outputs: Tensor
    ) -> tuple[list[Any] | None, dict[str, Any]]:
        """``question_id``; ``answer``, ``correct`` (official accuracy > 0) and ``acc`` (the
        official accuracy in percent, the per-question form of ``test/acc``)."""
        predictions = outputs.argmax(dim=1)
        accuracy = batch[B.ANSWER_SCORES].gather(1, predictions[:, None]).squeeze(1)
        answers = self.data_info.answers
        return batch[B.QUESTION_ID].tolist(), {
            "answer": [answers[int(index)] for index in predictions.tolist()],
            "correct": (accuracy > 0).tolist(),
            "acc": (100.0 * accuracy.double()).tolist(),
        }


class VQAModule(GroundedModule):
    """VQA training and evaluation with grounding objectives.

    Args:
        net: a factory (Hydra ``_partial_``) building the backbone from ``vocab_size``,
            ``num_answers`` and ``feature_dim``; or a ready ``nn.Module``.
        data_info: sizes and vocabularies of the prepared dataset.
        optimizer: a factory taking ``params`` (Hydra ``_partial_``).
        scheduler: optional factory taking ``optimizer``.
        objective: the grounding objective(s), or None for plain training.
        decision_score: ``top_answer`` or ``all_answers`` (see ``modules/decision.py``).
        grounding_metrics: compute rank correlations in validation and test (needs gradients:
            ``Trainer(inference_mode=False)``).
        compile: ``torch.compile`` the model (refused with an objective that takes network
            importance: compiled graphs cannot be differentiated twice).
        fast_importance: take gradient importance through the backbone's ``proposal_shift``
            (exact, much cheaper) when it supports it; False forces the gradient with respect
            to the ``[B, N, D]`` features (the reference path).
        objectives: more named objectives (``objectives.<name>`` of the config).
        train_importance: the importance method objectives get (``gradient``: HINT's).
        eval_importance: the importance method of the grounding metrics.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        data_info: VQADataInfo,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        objective: GroundingObjective | Mapping[str, GroundingObjective] | None = None,
        decision_score: str = "top_answer",
        grounding_metrics: bool = True,
        compile: bool = False,
        fast_importance: bool = True,
        objectives: Mapping[str, GroundingObjective] | None = None,
        train_importance: Any = "gradient",
        eval_importance: Any = "gradient",
    ) -> None:
        super().__init__(
            VQATask(data_info, decision_score),
            net,
            optimizer,
            scheduler,
            objective=objective,
            objectives=objectives,
            train_importance=train_importance,
            eval_importance=eval_importance,
            grounding_metrics=grounding_metrics,
            fast_importance=fast_importance,
            compile=compile,
        )
        self.decision_score_name = decision_score
        self.decision_score = self.task.decision_score
        self.save_hyperparameters(
            {"decision_score": decision_score, "grounding_metrics": grounding_metrics},
            logger=False,
        )

    @property
    def test_predictions(self) -> dict[int, str]:
        """Question id -> answer of the last test run (every process's questions)."""
        assert isinstance(self.task, VQATask)
        return self.task.test_predictions

    def answer_with_importance(
        self, batch: dict[str, Tensor], with_importance: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Answer a batch and explain the ground-truth decision (no graph is kept).

        The importance is that of ``decision_score`` (the ground-truth answer) by
        ``model.eval_importance`` (gradient: through the proposal shift when the backbone
        supports it, else with respect to the features). Used by evaluation, the pictures
        (``hint_lightning.viz``) and the W&B image logger.

        Returns:
            Detached logits ``[B, A]``, attention ``[B, N]`` and importance ``[B, N]`` (None
            when ``with_importance`` is False).
        """
        explained = self.explain(batch, with_importance)
        return explained.outputs, explained.attention, explained.importance  # type: ignore[return-value]
