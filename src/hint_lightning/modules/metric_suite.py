"""The evaluation suite wired into a grounded module: plausibility, faithfulness, FPVG.

Mixed into :class:`~hint_lightning.modules.base.GroundedModule`. ``train`` and ``evaluate``
call :meth:`MetricSuiteMixin.configure_metric_suite` with the ``metrics`` config group
(``metrics=[plausibility,faithfulness,fpvg]``, ``conf/metrics/``); then every evaluation step
of the configured stages judges the importance of ``model.eval_importance`` for each grounding
row (VQA: each question's ground-truth decision; captioning: each visual-word decision under
teacher forcing; classification: each image's label):

- the faithfulness decision is the task's :meth:`~hint_lightning.modules.task.Task.
  suite_score` (VQA and classification: the decision score the importance explains;
  captioning: the visual word's log-probability at its step);
- FPVG answers with the rows' argmax and judges it with the task's
  :meth:`~hint_lightning.modules.task.Task.suite_correct` (VQA: official accuracy 1;
  captioning: the predicted word is the visual word; classification: the label).

Results, at the end of each epoch of a configured stage: logged as
``<stage>/<family>/<metric>`` (``test/plausibility/pointing_game``,
``test/faithfulness/sufficiency_aopc``, ``test/fpvg/fpvg_plus``), and kept in
:attr:`MetricSuiteMixin.suite_results` with the removal curves as lists
(``<split>/removal_curve/fractions``, ``.../most_first``, ``.../least_first``) for
``metrics.json``. The test stage also writes ``per_question.jsonl`` (every process's rows
gathered to rank 0, one file, written atomically): the task's columns (VQA: ``answer``,
``correct``, ``acc``) and ``<family>/<metric>`` per row, so that ``compare`` bootstraps every
metric over questions.

Exact under DDP: the metric states are sums and counts (each question once with the package's
unpadded evaluation sampler), and the per-question rows are gathered, not reduced.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hint_lightning.metrics.per_question import PerQuestionWriter, per_question_path
from hint_lightning.metrics.suite import GroundingMetrics
from hint_lightning.modules.task import GroundingRows, gather_objects
from hint_lightning.utils.cli_errors import ConfigError

__all__ = ["HUMAN_FAMILIES", "MetricSuiteMixin", "curve_entries", "suite_config"]

log = logging.getLogger(__name__)

HUMAN_FAMILIES = ("plausibility", "fpvg")
"""The families that need human importance on the evaluated split."""


def suite_config(metrics: Any, data: Any = None) -> dict[str, Any] | None:
    """The ``metrics`` config group as plain options, interpolations resolved against ``data``.

    The family configs read ``data.human_importance_threshold``; ``evaluate`` passes the data
    config stored in the checkpoint (with the user's overrides), so a run's dataset threshold
    holds at evaluation too.

    Args:
        metrics: the composed ``metrics`` node (family -> options), or None.
        data: the data config the thresholds come from (None: none, the defaults hold).
    """
    from omegaconf import OmegaConf

    if not metrics:
        return None
    root = OmegaConf.create(
        {
            "data": OmegaConf.to_container(OmegaConf.create(data or {}), resolve=False),
            "metrics": OmegaConf.to_container(OmegaConf.create(metrics), resolve=False),
        }
    )
    return OmegaConf.to_container(root.metrics, resolve=True)  # type: ignore[return-value]


def curve_entries(
    prefix: str, fractions: Sequence[float], results: Mapping[str, float]
) -> dict[str, list[float | None]]:
    """The removal curves of a faithfulness result as ``metrics.json`` lists.

    Args:
        prefix: ``"<split>/removal_curve"``.
        fractions: the curve's x values.
        results: the faithfulness means by metric name (``morf_10``, ``lerf_10``, ...).

    Returns:
        ``{prefix/fractions, prefix/most_first, prefix/least_first}`` (an order that was not
        computed is absent; NaN becomes None).
    """
    from hint_lightning.metrics.question_means import fraction_name

    out: dict[str, list[float | None]] = {f"{prefix}/fractions": [float(f) for f in fractions]}
    for order, short in (("most_first", "morf"), ("least_first", "lerf")):
        names = [fraction_name(short, f) for f in fractions]
        if all(name in results for name in names):
            values = [float(results[name]) for name in names]
            out[f"{prefix}/{order}"] = [None if v != v else v for v in values]
    return out


class MetricSuiteMixin:
    """Evaluation with :class:`~hint_lightning.metrics.GroundingMetrics` (module docstring).

    The host is a :class:`~hint_lightning.modules.base.GroundedModule` (``task``, ``net``,
    ``caps``, ``grounding_metrics``, ``log``, ``trainer``).
    """

    task: Any
    net: Any
    caps: Any
    grounding_metrics: bool
    trainer: Any
    log: Callable[..., None]

    suite_stages: tuple[str, ...] = ()
    suite_split: str | None = None
    suite_results: dict[str, Any]

    @property
    def suite(self) -> GroundingMetrics | None:
        """The configured families (a registered submodule: its states follow the device)."""
        return self._modules.get("suite_metrics")  # type: ignore[attr-defined,no-any-return]

    def configure_metric_suite(
        self,
        config: Mapping[str, Any] | None,
        stages: Sequence[str] = ("test",),
        split: str | None = None,
        per_question: bool = True,
        constants: Mapping[str, Any] | None = None,
        strict: bool = True,
    ) -> None:
        """Judge ``model.eval_importance`` with the configured families in ``stages``.

        Args:
            config: the ``metrics`` config (family -> options); empty or None: no suite.
            stages: ``test`` and/or ``val``.
            split: the name results carry for the test stage (``evaluate split=val`` runs the
                test loop on val); None: the stage's name.
            per_question: write ``per_question.jsonl`` at the end of the test stage.
            constants: more fields of every per-question line (e.g. the trained run's seed).
            strict: a split without human importance for plausibility or FPVG is an error
                (``evaluate``); False: a warning and those families are not reported
                (``train``, whose default ``[plausibility]`` must not fail a finished run).

        Raises:
            ConfigError: one line, for an unknown family or option, grounding metrics
                disabled, or ``drop`` replacement on a backbone that ignores the mask.
        """
        self.suite_results = {}
        try:
            suite = GroundingMetrics.from_config(config)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        bad = sorted(set(stages) - {"val", "test"})
        if bad:
            raise ConfigError(f"metrics_stages: unknown stage(s) {bad}; choose val and/or test")
        self._modules.pop("suite_metrics", None)  # type: ignore[attr-defined]
        self.suite_stages = ()
        if not suite.families:
            return
        families = ", ".join(suite.families)
        if not self.grounding_metrics:
            raise ConfigError(
                f"metrics=[{families}] needs the grounding metrics: set "
                "model.grounding_metrics=true, or metrics=[] to evaluate without them"
            )
        backbone = self.caps.name
        for family, metric in suite.families.items():
            if getattr(metric, "replacement", None) == "drop" and not self.caps.mask:
                raise ConfigError(
                    f"metrics.{family}: replacement=drop needs a backbone that honours "
                    f"proposal_mask, and {backbone} does not: set "
                    f"metrics.{family}.replacement=zeros (or mean, shuffle, negative_ones)"
                )
        self.suite_metrics = suite
        self.suite_stages = tuple(stages)
        self.suite_split = split
        self._suite_per_question = per_question
        self._suite_constants = dict(constants or {})
        self._suite_strict = strict
        self._suite_records: list[dict[str, Any]] = []
        self._suite_hinted = 0

    @contextlib.contextmanager
    def suite_labelled(self, split: str) -> Iterator[None]:
        """Test runs inside carry the results name ``split`` and write their per-question
        values to ``per_question.<split>.jsonl`` (the named test splits of
        :func:`hint_lightning.named_tests.run_named_tests`)."""
        saved = (self.suite_split, getattr(self, "_suite_named_file", None))
        self.suite_split, self._suite_named_file = split, split
        try:
            yield
        finally:
            self.suite_split, self._suite_named_file = saved

    # ------------------------------------------------------------------ per batch
    def suite_active(self, stage: str) -> bool:
        """Whether the suite runs in this stage."""
        return self.suite is not None and stage in self.suite_stages

    def suite_needs_all_rows(self, stage: str) -> bool:
        """Whether every row needs importance (faithfulness), not only rows with human
        importance."""
        return self.suite_active(stage) and "faithfulness" in self.suite.families  # type: ignore[union-attr]

    def suite_update(
        self, batch: Mapping[str, Tensor], stage: str, explained: Any
    ) -> dict[str, Tensor]:
        """Every configured metric of the batch's grounding rows; the state is updated.

        Args:
            batch: the batch.
            stage: ``val`` or ``test``.
            explained: the module's :class:`~hint_lightning.modules.base.Explained` batch.

        Returns:
            ``<family>/<metric>`` -> ``[R]`` values (empty when the suite is off).
        """
        if not self.suite_active(stage):
            return {}
        assert self.suite is not None
        rows: GroundingRows = explained.rows
        count = int(rows.has_importance.shape[0])
        if count == 0:
            return {}
        importance = explained.importance
        if importance is None:
            importance = rows.human_importance.new_zeros(rows.human_importance.shape)
        score, predict = self._suite_functions(rows)
        full_scores = predictions = None
        if rows.in_main_pass:
            logits = self.task.decision_logits(explained.outputs)
            full_scores = self.task.suite_score(rows, logits)
            predictions = logits.argmax(dim=1)
        with torch.no_grad():
            values = self.suite.update(
                importance=importance.detach(),
                proposals=rows.proposals.detach(),
                proposal_mask=rows.proposal_mask,
                human_importance=rows.human_importance,
                has_importance=rows.has_importance,
                forward_fn=score,
                full_scores=full_scores,
                predict_fn=predict,
                correct_fn=self.task.suite_correct(batch, rows),
                predictions=predictions,
            )
        self._suite_hinted += int(rows.has_importance.sum())
        named = {
            f"{family}/{name}": values[name]
            for family, metric in self.suite.families.items()
            for name in metric.names
        }
        if stage == "test" and self._suite_per_question:
            self._keep_records(batch, rows, explained.outputs, named)
        return named

    def _suite_functions(
        self, rows: GroundingRows
    ) -> tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]:
        """``forward_fn`` (the decision's score) and ``predict_fn`` (argmax) over the rows'
        passes, for copy-major perturbed batches."""
        passes = rows.passes

        def score(proposals: Tensor, mask: Tensor) -> Tensor:
            return self.task.suite_score(rows, passes(proposals, mask).logits)

        def predict(proposals: Tensor, mask: Tensor) -> Tensor:
            return passes(proposals, mask).logits.argmax(dim=1)

        return score, predict

    def _keep_records(
        self,
        batch: Mapping[str, Tensor],
        rows: GroundingRows,
        outputs: Tensor,
        values: Mapping[str, Tensor],
    ) -> None:
        ids, columns = self.task.suite_columns(batch, rows, outputs)
        if ids is None:
            return
        table = {name: _as_list(column) for name, column in columns.items()}
        table.update({name: _as_list(column) for name, column in values.items()})
        for index, question_id in enumerate(ids):
            record = {"question_id": question_id}
            record.update({name: column[index] for name, column in table.items()})
            self._suite_records.append(record)

    # ------------------------------------------------------------------ per epoch
    def suite_epoch_start(self, stage: str) -> None:
        """Forget the rows and counts of an interrupted epoch."""
        if self.suite_active(stage):
            assert self.suite is not None
            self.suite.reset()
            self._suite_records = []
            self._suite_hinted = 0

    def suite_epoch_end(self, stage: str) -> None:
        """Log the means, keep them (and the curves) in :attr:`suite_results`, write the
        per-question file (test), reset.

        Raises:
            ConfigError: when a family that needs human importance ran on a split where no
                row has any (naming the split and the families).
        """
        if not self.suite_active(stage):
            return
        assert self.suite is not None
        label = (self.suite_split or stage) if stage == "test" else stage
        hinted = sum(gather_objects([self._suite_hinted]))
        needing = [family for family in HUMAN_FAMILIES if family in self.suite.families]
        skipped: set[str] = set()
        if needing and hinted == 0 and self._suite_evaluated():
            message = (
                f"split {label} has no human importance, which metrics.{needing[0]} needs "
                f"({', '.join('metrics.' + f for f in needing)}): evaluate a split with human "
                "importance, or leave these families out (e.g. metrics=[faithfulness])"
            )
            if getattr(self, "_suite_strict", True):
                raise ConfigError(message)
            log.warning("%s; not reported", message)  # train's default families: a warning
            skipped = set(needing)
        results: dict[str, Any] = {}
        for family, metric in self.suite.families.items():
            if family in skipped:
                continue
            means = metric.results()
            for name, value in means.items():
                defined = value == value  # NaN: never defined (null in metrics.json, not logged)
                results[f"{label}/{family}/{name}"] = value if defined else None
                if defined:
                    self.log(f"{stage}/{family}/{name}", value)
            fractions = getattr(metric, "curve_fractions", ())
            if family == "faithfulness" and fractions:
                results.update(curve_entries(f"{label}/removal_curve", fractions, means))
        self.suite_results = {**getattr(self, "suite_results", {}), **results}
        self.suite.reset()
        if stage == "test" and self._suite_per_question:
            self._write_records(label)
        self._suite_hinted = 0

    def _suite_evaluated(self) -> bool:
        assert self.suite is not None
        return any(int(metric.questions) > 0 for metric in self.suite.families.values())

    def _write_records(self, label: str) -> None:
        records = gather_objects(self._suite_records)
        self._suite_records = []
        trainer = getattr(self, "_trainer", None)
        if not records or trainer is None or not trainer.is_global_zero:
            return
        records = _unique_ids(records)
        constants = self.suite_constants(label)
        named = getattr(self, "_suite_named_file", None)
        path = per_question_path(Path(trainer.default_root_dir), split=named)
        with PerQuestionWriter(path, constants=constants) as writer:
            names = [key for key in records[0] if key != "question_id"]
            writer.add(
                [record["question_id"] for record in records],
                **{name: [record.get(name) for record in records] for name in names},
            )
        self.suite_results["per_question"] = str(path)

    def suite_constants(self, split: str) -> dict[str, Any]:
        """Fields written on every per-question line: ``split`` and the run's ``seed``."""
        constants: dict[str, Any] = {"split": split}
        config = getattr(self, "run_config", None) or {}
        if config.get("seed") is not None:
            constants["seed"] = config["seed"]
        return {**constants, **getattr(self, "_suite_constants", {})}


def _as_list(column: Tensor | Sequence[Any]) -> list[Any]:
    if isinstance(column, Tensor):
        return column.detach().cpu().tolist()
    return list(column)


def _unique_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records sorted by question id; ids that repeat (two captions of an image with the same
    visual word at the same step) get ``#1``, ``#2``... in that order."""
    records = sorted(records, key=lambda record: str(record["question_id"]))
    counts: dict[Any, int] = {}
    for record in records:
        counts[record["question_id"]] = counts.get(record["question_id"], 0) + 1
    seen: dict[Any, int] = {}
    for record in records:
        key = record["question_id"]
        if counts[key] > 1:
            seen[key] = seen.get(key, 0) + 1
            record["question_id"] = f"{key}#{seen[key]}"
    return records
