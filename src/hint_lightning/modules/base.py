"""One grounded LightningModule for every task; tasks are small adapters.

:class:`GroundedModule` owns what every task shares: building the backbone, the training step
(main pass, task loss, the grounding terms of any number of objectives over a lazy
:class:`~hint_lightning.objectives.context.GroundingContext`), evaluation with importance by
``model.eval_importance``, the grounding metrics (``rho``, ``rho_attention``, ``misgrounded``),
checks at start-up (precision, compile, what the backbone can serve), optimizers, and
checkpoints that carry the run config, the data info and the RNG states. A
:class:`~hint_lightning.modules.task.Task` says the rest (VQA, captioning, classification).

The training step, in order: the task's grounding rows (which rows have human importance); the
objectives that contribute on this batch (none when no row has human importance: then the
step is a plain step, no probe, no double backward); the main pass, carrying the importance
probe when the training method is plain gradient (HINT's single-pass computation, the fast
shift path when the backbone offers it); the task loss; each objective's weighted term on the
context; ``loss = task + sum of terms``. The terms are computed inside ``training_step``, i.e.
inside the DDP-wrapped forward, so the final backward all-reduces their second-order
gradients. The task loss is always in the total (a loss made only of gradient terms leaves
parameters without gradients under DDP).

Logged in training: ``train/loss``, ``train/loss_task``; with objectives
``train/loss_grounding`` (the sum of the weighted terms), ``train/loss_<name>`` per objective,
``train/hinted_frac`` and components an objective records (``train/<name>/<component>``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from hint_lightning.importance.internals import layer_tokens
from hint_lightning.metrics.grounding import GroundingCorrelation, MisgroundedRate
from hint_lightning.models.protocol import embed_proposals
from hint_lightning.modules.grounding import (
    check_grounding,
    probe_kind,
    resolve_importance,
)
from hint_lightning.modules.lifecycle import CHECKPOINT_KEY, ModuleLifecycle
from hint_lightning.modules.metric_suite import MetricSuiteMixin
from hint_lightning.modules.task import GroundingRows, Task
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.combination import ObjectiveSet, total
from hint_lightning.objectives.context import GROUND_TRUTH, GroundingContext, PassOutput

__all__ = ["CHECKPOINT_KEY", "Explained", "GroundedModule"]

ObjectiveArg = GroundingObjective | Mapping[str, GroundingObjective] | ObjectiveSet | None


class Explained:
    """The main pass of a batch and the importance of its grounding rows (no graph kept).

    Attributes:
        outputs: the task outputs of the main pass (detached).
        attention: the main pass's attention (detached, or None).
        rows: the grounding rows.
        importance: ``[R, N]`` importance of each row's ground-truth decision (None if not
            asked).
        row_attention: ``[R, N]`` the rows' attention (None without attention).
    """

    def __init__(
        self,
        outputs: Tensor,
        attention: Tensor | None,
        rows: GroundingRows,
        importance: Tensor | None,
        row_attention: Tensor | None,
    ) -> None:
        self.outputs = outputs
        self.attention = attention
        self.rows = rows
        self.importance = importance
        self.row_attention = row_attention


class GroundedModule(ModuleLifecycle, MetricSuiteMixin, pl.LightningModule):
    """Training and evaluation of a backbone with grounding objectives, for one task.

    Args:
        task: the task adapter.
        net: a factory (Hydra ``_partial_``) of the backbone, or a ready ``nn.Module``.
        optimizer: a factory taking ``params`` (Hydra ``_partial_``).
        scheduler: optional factory taking ``optimizer``.
        objective: one objective, a mapping name -> objective, an :class:`ObjectiveSet`, or
            None for plain training.
        objectives: more named objectives (added to ``objective``).
        train_importance: the importance method objectives get (default ``gradient``).
        eval_importance: the importance method of the grounding metrics (default
            ``gradient``).
        grounding_metrics: compute rank correlations in validation and test (needs gradients:
            ``Trainer(inference_mode=False)``).
        fast_importance: let gradient importance use the backbone's exact proposal shift
            (same numbers, cheaper); False: the gradient with respect to ``[B, N, D]``.
        compile: ``torch.compile`` the backbone (refused with objectives that take
            importance: compiled graphs cannot be differentiated twice).
    """

    def __init__(
        self,
        task: Task,
        net: Callable[..., nn.Module] | nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        objective: ObjectiveArg = None,
        objectives: Mapping[str, GroundingObjective] | None = None,
        train_importance: Any = "gradient",
        eval_importance: Any = "gradient",
        grounding_metrics: bool = True,
        fast_importance: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.task = task
        self.data_info = task.data_info
        self.objectives = ObjectiveSet.build(objective, objectives)
        self.train_method = resolve_importance(train_importance, "model.train_importance")
        self.eval_method = resolve_importance(eval_importance, "model.eval_importance")
        if compile and self.objectives is not None and "importance" in self.objectives.requires:
            raise ValueError(
                "model.compile=true cannot be combined with an objective that takes network "
                "importance (torch.compile does not support double backward): set "
                "model.compile=false"
            )
        self.net = net if isinstance(net, nn.Module) else task.build_net(net)
        self.caps = task.capabilities(self.net)
        if compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.grounding_metrics = grounding_metrics
        self.fast_importance = fast_importance and self.caps.shift
        self.run_config: dict[str, Any] | None = None
        check_grounding(
            self.objectives,
            self.train_method,
            self.eval_method,
            self.caps,
            task.decision_kinds(),
            task.name,
            grounding_metrics,
            fast_importance,
        )
        self.metrics = nn.ModuleDict()
        for stage in ("val", "test"):
            self.metrics[f"{stage}_task"] = MetricCollection(task.metrics(), compute_groups=False)
            importance = {"rho": GroundingCorrelation()}
            if stage == "test" and task.misgrounded:
                importance["misgrounded"] = MisgroundedRate()
            self.metrics[f"{stage}_importance"] = MetricCollection(importance, compute_groups=False)
            self.metrics[f"{stage}_attention"] = MetricCollection(
                {"rho_attention": GroundingCorrelation()}, compute_groups=False
            )

    # ------------------------------------------------------------------ set-up
    @property
    def objective(self) -> ObjectiveSet | None:
        """The grounding objectives (the older name)."""
        return self.objectives

    # ------------------------------------------------------------------ passes and contexts
    def _probed_pass(
        self,
        batch: Mapping[str, Tensor],
        rows: GroundingRows,
        kind: str | None,
        method: Any = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The main pass, carrying the probe ``kind`` (of ``method``) when the rows are its
        rows; ``"layer"``: the tokens the backbone recorded at the input of ``method.layer``."""
        raw, shift, probe = self.task.features(batch), None, None
        features = embed_proposals(self.net, raw)  # a ViT's patch tokens; else the features
        if features is not raw and rows.in_main_pass:
            rows.__dict__["proposals"] = features  # the rows' proposals: the same tokens
        if kind is not None and rows.in_main_pass:
            if kind == "shift":
                probe = shift = features.new_zeros(features.shape[:2]).requires_grad_(True)
            elif not features.requires_grad:
                probe = features = features.detach().requires_grad_(True)
            else:
                probe = features  # embedded tokens: the embedding keeps its gradient
        if kind == "layer" and rows.in_main_pass:
            with self.net.record_internals(attention_maps=False) as internals:
                outputs, attention = self.task.main_pass(self.net, batch, features, shift)
            probe = layer_tokens(internals.layer_tokens, method.layer, repr(method))
            return outputs, attention, probe
        outputs, attention = self.task.main_pass(self.net, batch, features, shift)
        return outputs, attention, probe

    def _context(
        self,
        rows: GroundingRows,
        outputs: Tensor,
        attention: Tensor | None,
        probe: Tensor | None,
        kind: str | None,
        method: Any,
        create_graph: bool,
    ) -> GroundingContext:
        """The grounding context of the rows after the main pass."""
        if rows.in_main_pass:
            base = PassOutput(self.task.decision_logits(outputs), attention)
            return GroundingContext(
                proposals=rows.proposals,
                proposal_mask=rows.proposal_mask,
                human_importance=rows.human_importance,
                has_importance=rows.has_importance,
                decisions=rows.decisions,
                passes=rows.passes,
                method=method,
                base=base,
                probe=probe,
                create_graph=create_graph,
            )
        return GroundingContext(
            proposals=rows.proposals,
            proposal_mask=rows.proposal_mask,
            human_importance=rows.human_importance,
            has_importance=rows.has_importance,
            decisions=rows.decisions,
            passes=rows.passes,
            method=method,
            probe_kind=kind,
            attention=self.task.rows_attention(rows, attention),
            create_graph=create_graph,
        )

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Task loss plus every contributing objective's weighted term (module docstring)."""
        rows = self.task.grounding_rows(self.net, batch, training=True)
        needed = self.objectives.needed_for(rows.has_importance) if self.objectives else {}
        kind = None
        if any("importance" in objective.requires for objective in needed.values()):
            kind = probe_kind(self.train_method, self.caps, self.fast_importance)
        outputs, attention, probe = self._probed_pass(batch, rows, kind, self.train_method)
        task_loss = self.task.task_loss(outputs, batch)
        terms: dict[str, Tensor] = {}
        logs: dict[str, float] = {}
        if needed:
            assert self.objectives is not None
            ctx = self._context(rows, outputs, attention, probe, kind, self.train_method, True)
            terms = self.objectives.terms(ctx)
            logs = ctx.logs
        grounding = total(terms, task_loss)
        loss = task_loss + grounding if terms else task_loss
        self._log_training(batch, outputs, rows, task_loss, loss, terms, logs)
        return loss

    def _log_training(
        self,
        batch: Mapping[str, Tensor],
        outputs: Tensor,
        rows: GroundingRows,
        task_loss: Tensor,
        loss: Tensor,
        terms: Mapping[str, Tensor],
        logs: Mapping[str, float],
    ) -> None:
        size = self.task.batch_size(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/loss_task", task_loss, batch_size=size)
        grounded = self.objectives is not None
        extra = self.task.training_logs(batch, outputs, rows, grounded)
        if grounded:
            assert self.objectives is not None
            value = float(sum(float(t.detach()) for t in terms.values()))
            self.log("train/loss_grounding", value, batch_size=size)
            for name, _ in self.objectives.items():
                term = terms.get(name)
                self.log(
                    f"train/loss_{name}",
                    0.0 if term is None else float(term.detach()),
                    batch_size=size,
                )
            hinted = int(rows.has_importance.sum()) if terms else 0
            extra.setdefault("hinted_frac", hinted / max(size, 1))
            for name, value in logs.items():
                self.log(f"train/{name}", value, batch_size=size)
        for name, value in extra.items():
            self.log(f"train/{name}", value, batch_size=size, **self.task.log_options(name))

    # ---------------------------------------------------------------- evaluation
    def explain(
        self,
        batch: Mapping[str, Tensor],
        with_importance: bool = True,
        method: Any = None,
        only_hinted: bool = False,
    ) -> Explained:
        """Run the batch and explain its grounding rows' ground-truth decisions (no graph).

        Args:
            batch: a batch of the task.
            with_importance: compute the rows' importance (by ``method``).
            method: an importance method (None: ``model.eval_importance``).
            only_hinted: methods that need extra passes explain only the rows with human
                importance (the others get 0): what the grounding metrics read.
        """
        method = self.eval_method if method is None else method
        rows = self.task.grounding_rows(self.net, batch, training=False)
        kind = probe_kind(method, self.caps, self.fast_importance) if with_importance else None
        probed = kind is not None and rows.in_main_pass
        with torch.enable_grad() if probed else torch.no_grad():
            outputs, attention, probe = self._probed_pass(batch, rows, kind, method)
        with torch.enable_grad() if with_importance else nullcontext():
            importance = row_attention = None
            if with_importance and len(rows.has_importance):
                ctx = self._context(rows, outputs, attention, probe, kind, method, False)
                if kind is None and only_hinted and not bool(rows.has_importance.all()):
                    hinted = rows.has_importance.nonzero(as_tuple=True)[0]
                    values = ctx.hinted().importance(GROUND_TRUTH).detach()
                    importance = values.new_zeros(rows.human_importance.shape)
                    importance[hinted] = values
                else:
                    importance = ctx.importance(GROUND_TRUTH).detach()
                row_attention = None if ctx.attention is None else ctx.attention.detach()
        detached = None if attention is None else attention.detach()
        return Explained(outputs.detach(), detached, rows, importance, row_attention)

    def _check_inference_mode(self, with_importance: bool) -> None:
        if with_importance and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "grounding metrics take gradients during evaluation, which inference mode "
                "forbids: set trainer.inference_mode=false (the default configs do), or "
                "model.grounding_metrics=false"
            )

    def _evaluation_step(self, batch: dict[str, Tensor], stage: str) -> Explained:
        all_rows = self.suite_needs_all_rows(stage)  # faithfulness judges every row
        with_importance = all_rows or (self.grounding_metrics and self.task.has_grounding(batch))
        self._check_inference_mode(with_importance)
        explained = self.explain(batch, with_importance, only_hinted=not all_rows)
        extras = self.task.evaluation_step(
            self, batch, explained.outputs, stage, self.metrics[f"{stage}_task"]
        )
        if explained.importance is not None:
            rows = explained.rows
            common = {
                "human_importance": rows.human_importance,
                "proposal_mask": rows.proposal_mask,
                "has_importance": rows.has_importance,
            }
            self.metrics[f"{stage}_importance"].update(
                network_importance=explained.importance, **common, **extras
            )
            if explained.row_attention is not None:
                self.metrics[f"{stage}_attention"].update(
                    network_importance=explained.row_attention, **common
                )
            self.task.update_importance_metrics(
                batch, explained.importance, self.metrics[f"{stage}_task"]
            )
        self.suite_update(batch, stage, explained)
        return explained

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate validation metrics."""
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate test metrics (and the task's predictions)."""
        self._evaluation_step(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        for name, value in self.task.epoch_logs(self, stage, self.metrics[f"{stage}_task"]).items():
            self.log(f"{stage}/{name}", value, **self.task.log_options(name))
        for group in ("importance", "attention"):
            collection = self.metrics[f"{stage}_{group}"]
            for name, metric in collection.items(keep_base=True, copy_state=False):
                if metric.update_count and self.grounding_metrics:
                    value = metric.compute()
                    if not math.isnan(float(value)):
                        self.log(f"{stage}/{name}", value)
                metric.reset()
        self.suite_epoch_end(stage)

    def on_validation_epoch_start(self) -> None:
        """Forget per-epoch outputs of an interrupted epoch."""
        self.task.on_epoch_start(self, "val")
        self.suite_epoch_start("val")

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics."""
        self._log_epoch_metrics("val")

    def on_test_epoch_start(self) -> None:
        """Forget outputs of an earlier test run."""
        self.task.on_epoch_start(self, "test")
        self.suite_epoch_start("test")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics and let the task gather its predictions."""
        self._log_epoch_metrics("test")
