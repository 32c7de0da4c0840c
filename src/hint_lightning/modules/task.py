"""Task adapters: what differs between VQA, captioning and classification.

:class:`~hint_lightning.modules.base.GroundedModule` owns the training step, the grounding
terms, evaluation, metrics and DDP gathering; a :class:`Task` says only what is particular to a
task: how to build and call the backbone, the task loss, the rows grounding is about and their
decisions (:class:`~hint_lightning.objectives.context.DecisionTargets`), the task metrics, and
what to do with predictions at the end of a test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from hint_lightning.importance.replacement import tile_batch
from hint_lightning.models.protocol import BackboneCapabilities, capabilities
from hint_lightning.objectives.context import DecisionTargets, PassOutput

__all__ = [
    "BackbonePasses",
    "GroundingRows",
    "Task",
    "broadcast_object",
    "gather_objects",
    "split_output",
]


def split_output(output: Any) -> tuple[Tensor, Tensor | None]:
    """``(logits, attention)`` of a backbone that returns both, or logits alone."""
    if isinstance(output, Tensor):
        return output, None
    logits, attention = output[0], output[1]
    return logits, attention


Call = Callable[[Tensor, Tensor, "Tensor | None", Mapping[str, Tensor]], PassOutput]
"""``(proposals, mask, shift, captured inputs tiled to the rows) -> PassOutput``."""


class BackbonePasses:
    """Forward passes of a backbone over some rows, other inputs captured and tiled.

    Implements :class:`~hint_lightning.objectives.context.Passes`.

    Args:
        call: runs the backbone on proposals ``[R', N, D]``, a mask ``[R', N]``, an optional
            shift ``[R', N]`` and the captured inputs tiled to ``R'`` rows.
        captured: per-row inputs ``[R, ...]`` (question tokens, boxes, caption prefixes).
        caps: the backbone's capabilities.
        net: the backbone, for :meth:`internals` (a backbone declaring ``returns_internals``).
    """

    def __init__(
        self,
        call: Call,
        captured: Mapping[str, Tensor],
        caps: BackboneCapabilities,
        net: nn.Module | None = None,
    ) -> None:
        self._call = call
        self.net = net
        self.has_internals = caps.internals and net is not None
        self.captured = dict(captured)
        self.caps = caps
        self.supports_shift = caps.shift
        self.supports_mask = caps.mask
        self.has_attention = caps.attention

    def __call__(
        self, proposals: Tensor, proposal_mask: Tensor, proposal_shift: Tensor | None = None
    ) -> PassOutput:
        """The backbone on ``K * R`` rows (copy-major)."""
        rows = proposals.shape[0]
        tiled = {key: tile_batch(value, rows) for key, value in self.captured.items()}
        return self._call(proposals, proposal_mask, proposal_shift, tiled)

    def internals(self, proposals: Tensor, proposal_mask: Tensor) -> tuple[PassOutput, Any]:
        """The pass with the backbone's internals recorded: ``(output, TransformerInternals)``."""
        inner = getattr(self.net, "_orig_mod", self.net)
        with inner.record_internals() as internals:  # type: ignore[union-attr]
            output = self(proposals, proposal_mask)
        return output, internals

    def select(self, rows: Tensor) -> BackbonePasses:
        """The passes of a subset of the rows."""
        captured = {key: value[rows] for key, value in self.captured.items()}
        return BackbonePasses(self._call, captured, self.caps, self.net)


class GroundingRows:
    """The rows grounding is about in one batch.

    Every attribute but ``has_importance`` may be given lazily (``lazy={name: fn}``): it is
    built on first use, so a batch whose objectives are off never builds it.

    Attributes:
        proposals: ``[R, N, D]``.
        proposal_mask: ``[R, N]`` bool.
        human_importance: ``[R, N]``.
        has_importance: ``[R]`` bool.
        decisions: the rows' decision targets.
        passes: forward passes over the rows.
        in_main_pass: the rows are the main pass's rows (VQA, classification): the probe goes
            into the main pass and its outputs are the rows' base pass. Otherwise (captioning:
            one row per visual-word decision) the base pass runs on the rows when needed.
    """

    FIELDS = ("proposals", "proposal_mask", "human_importance", "decisions", "passes")

    proposals: Tensor
    proposal_mask: Tensor
    human_importance: Tensor
    decisions: DecisionTargets
    passes: BackbonePasses

    def __init__(
        self,
        *,
        has_importance: Tensor,
        in_main_pass: bool = True,
        lazy: Mapping[str, Callable[[], Any]] | None = None,
        **values: Any,
    ) -> None:
        unknown = (set(values) | set(lazy or {})) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"GroundingRows got unknown fields {sorted(unknown)}")
        self.has_importance = has_importance
        self.in_main_pass = in_main_pass
        self._lazy = dict(lazy or {})
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        lazy = self.__dict__.get("_lazy", {})
        if name in lazy:
            value = lazy.pop(name)()
            self.__dict__[name] = value
            return value
        raise AttributeError(name)


class Task:
    """Base class of the task adapters (module docstring).

    Args:
        data_info: the datamodule's info (sizes, vocabularies).

    Attributes:
        name: the task's name (in messages).
        default_mask: whether backbones of this task honour ``proposal_mask`` unless declared.
        default_attention: whether backbones of this task return attention unless declared.
        batch_size_key: a batch key whose first dimension is the batch size.
    """

    name: ClassVar[str] = "task"
    default_mask: ClassVar[bool] = True
    default_attention: ClassVar[bool] = True
    batch_size_key: ClassVar[str] = "features"
    misgrounded: ClassVar[bool] = False
    """Whether the test reports ``misgrounded`` (needs ``correct`` from :meth:`evaluation_step`)."""

    def __init__(self, data_info: Any) -> None:
        self.data_info = data_info

    # ------------------------------------------------------------------ the backbone
    def build_net(self, factory: Callable[..., nn.Module]) -> nn.Module:
        """Build the backbone from a factory and the data's sizes."""
        raise NotImplementedError

    def capabilities(self, net: nn.Module) -> BackboneCapabilities:
        """The backbone's capabilities, with this task's defaults."""
        return capabilities(net, mask=self.default_mask, attention=self.default_attention)

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``[B, N, D]`` the batch's proposal features (what the main pass reads)."""
        raise NotImplementedError

    def main_pass(
        self,
        net: nn.Module,
        batch: Mapping[str, Tensor],
        features: Tensor,
        shift: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:
        """The backbone on the whole batch: task outputs and attention (or None)."""
        raise NotImplementedError

    def decision_logits(self, outputs: Tensor) -> Tensor:
        """``[B, C]`` decision-level scores of the main pass (when rows are its rows)."""
        return outputs

    def decision_kinds(self) -> frozenset[str]:
        """The decisions this task offers (``ground_truth``, ``predicted``, ``wrong``)."""
        return frozenset({"ground_truth", "predicted", "wrong"})

    # ------------------------------------------------------------------ training
    def task_loss(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """The task loss (scalar)."""
        raise NotImplementedError

    def grounding_rows(
        self, net: nn.Module, batch: Mapping[str, Tensor], training: bool = True
    ) -> GroundingRows:
        """The batch's grounding rows (cheap: no pass runs here); ``training``: for the
        objectives (else for evaluation, whose decision may differ)."""
        raise NotImplementedError

    def rows_attention(self, rows: GroundingRows, attention: Tensor | None) -> Tensor | None:
        """The rows' attention read from the main pass's (rows not in the main pass)."""
        return None

    def training_logs(
        self, batch: Mapping[str, Tensor], outputs: Tensor, rows: GroundingRows, grounded: bool
    ) -> dict[str, Tensor | float]:
        """Task-specific training scalars (``train/<key>``); ``grounded``: an objective is set."""
        return {}

    def log_options(self, name: str) -> dict[str, Any]:
        """Extra ``self.log`` options of a logged name (e.g. a sum across processes)."""
        return {}

    def batch_size(self, batch: Mapping[str, Tensor]) -> int:
        """The number of samples in a batch."""
        return int(batch[self.batch_size_key].shape[0])

    # ------------------------------------------------------------------ evaluation
    def has_grounding(self, batch: Mapping[str, Tensor]) -> bool:
        """Whether evaluation should take importance on this batch (some row has human
        importance)."""
        return True

    def metrics(self) -> dict[str, Metric]:
        """Fresh task metrics for one stage."""
        return {}

    def evaluation_step(
        self,
        module: Any,
        batch: Mapping[str, Tensor],
        outputs: Tensor,
        stage: str,
        metrics: Mapping[str, Metric],
    ) -> dict[str, Tensor]:
        """Update the task metrics and log the loss; return extra kwargs for the grounding
        metrics (e.g. ``correct``)."""
        raise NotImplementedError

    def update_importance_metrics(
        self,
        batch: Mapping[str, Tensor],
        importance: Tensor,
        metrics: Mapping[str, Metric],
    ) -> None:
        """Task-specific metrics of the rows' importance (e.g. the decoy's share)."""

    def epoch_logs(
        self, module: Any, stage: str, metrics: Mapping[str, Metric]
    ) -> dict[str, Tensor | float]:
        """The task's epoch metrics to log (keys without the stage prefix); resets them."""
        return {}

    def on_epoch_start(self, module: Any, stage: str) -> None:
        """Forget per-epoch outputs (predictions, captions)."""

    # ------------------------------------------------------------------ the evaluation suite
    def suite_score(self, rows: GroundingRows, logits: Tensor) -> Tensor:
        """``[K * R]`` the score faithfulness perturbs, from outputs ``[K * R, C]`` of tiled
        rows: by default the ground-truth decision score the importance explains."""
        targets = tile_batch(rows.decisions.targets, logits.shape[0])
        return rows.decisions.ground_truth(logits, targets)

    def suite_correct(
        self, batch: Mapping[str, Tensor], rows: GroundingRows
    ) -> Callable[[Tensor], Tensor]:
        """FPVG's ``correct_fn``: ``[K, R]`` predicted labels -> ``[K, R]`` bool; by default
        equality with the rows' integer targets."""
        targets = rows.decisions.targets

        def correct(predictions: Tensor) -> Tensor:
            return predictions == targets.to(predictions.device)

        return correct

    def suite_columns(
        self, batch: Mapping[str, Tensor], rows: GroundingRows, outputs: Tensor
    ) -> tuple[list[Any] | None, dict[str, Any]]:
        """The rows' ids and task columns of ``per_question.jsonl`` (None: not written)."""
        return None, {}


def gather_objects(items: list[Any]) -> list[Any]:
    """Every process's ``items`` concatenated (one process: ``items`` itself)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, items)
        return [item for part in gathered for item in part]
    return items


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]
    return value
