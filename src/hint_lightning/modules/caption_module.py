"""The captioning LightningModule: UpDn captioner + grounding at visual words + caption metrics.

The task adapter (:class:`~hint_lightning.modules.caption_task.CaptionTask`) says what is
particular to captioning: the teacher-forced cross-entropy, one grounding row per visual-word
decision, decoding and corpus scores. The training step, the grounding terms (HINT by default
through the ``objective=`` group, any number of objectives), evaluation and the grounding
metrics come from :class:`~hint_lightning.modules.base.GroundedModule`.

Evaluation (validation and test; gradients are taken, so ``Trainer(inference_mode=False)``):

* captions: the first caption row of each image is decoded (greedy, or beam search with
  ``beam_size > 1``); at the end of the epoch the ``{"image_id", "caption"}`` results of every
  process are gathered, scored on rank 0 against the datamodule's references
  (``datamodule.references(split)``) and broadcast, and logged as ``{stage}/Bleu_1`` ..
  ``{stage}/Bleu_4``, ``{stage}/METEOR``, ``{stage}/ROUGE_L``, ``{stage}/CIDEr`` (model
  selection: ``val/CIDEr``). ``scorer="coco"`` is the official coco-caption pipeline
  (Java: PTB tokenizer and METEOR); ``scorer="tokenized"`` scores lower-cased alphanumeric
  tokens without Java (no METEOR); ``spice=True`` adds ``test/SPICE`` (opt-in: Stanford
  CoreNLP is downloaded at first use);
* ``{stage}/rho``: mean Spearman correlation between network importance (by
  ``model.eval_importance``, no graph kept) and human importance at the ground-truth captions'
  visual words (teacher forcing), and ``{stage}/rho_attention`` for the attention at those
  steps;
* ``{stage}/loss``: teacher-forced cross-entropy; ``{stage}/images``: images captioned.

After ``trainer.test``, :meth:`CaptionModule.results_entries` returns the results file's
entries ``[{"image_id": int, "caption": str}]`` (``train`` and ``evaluate`` write them to
``test_results.json``). The datamodule must provide ``references(split)`` (image id -> raw
reference captions) for ``val`` and its ``test_split``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.modules.base import GroundedModule
from hint_lightning.modules.caption_scoring import (
    SCORERS,
    UNK_WORD,
    score_results,
    words_to_captions,
)
from hint_lightning.modules.caption_task import CaptionTask, DecisionRows, caption_cross_entropy
from hint_lightning.modules.hint_mixin import GroundingTerm
from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.combination import total

__all__ = [
    "SCORERS",
    "UNK_WORD",
    "CaptionModule",
    "DecisionRows",
    "caption_cross_entropy",
    "score_results",
    "words_to_captions",
]


class CaptionModule(GroundedModule):
    """Captioning training and evaluation with grounding objectives.

    Args:
        net: a factory (Hydra ``_partial_``) building the captioner from ``vocab_size`` and
            ``feature_dim``; or a ready ``nn.Module`` (e.g. ``UpDnCaptioner``).
        data_info: the vocabulary and sizes of the caption data.
        optimizer: a factory taking ``params``.
        scheduler: optional factory taking ``optimizer`` (stepped every epoch).
        objective: the grounding objective(s), or None for plain training.
        grounding_metrics: compute ``rho`` in validation and test (needs gradients).
        fast_importance: gradient importance through the captioner's ``[K, N]``
            ``proposal_shift`` (exact, cheaper) when it supports it; False: the gradient with
            respect to the ``[K, N, D]`` features (the reference path).
        beam_size: 1 decodes greedily; more runs beam search.
        max_caption_length: the most words a decoded caption has, ``<eos>`` included.
        scorer: ``"coco"`` or ``"tokenized"`` (:func:`score_results`).
        spice: also compute SPICE on the test split (opt-in: ``"coco"`` scorer only, needs
            Java 8 and Stanford CoreNLP, which pycocoevalcap downloads at first use).
        objectives: more named objectives.
        train_importance: the importance method objectives get (``gradient``).
        eval_importance: the importance method of the grounding metrics.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        data_info: CaptionDataInfo,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        objective: GroundingObjective | Mapping[str, GroundingObjective] | None = None,
        grounding_metrics: bool = True,
        fast_importance: bool = True,
        beam_size: int = 1,
        max_caption_length: int = 16,
        scorer: str = "coco",
        spice: bool = False,
        objectives: Mapping[str, GroundingObjective] | None = None,
        train_importance: Any = "gradient",
        eval_importance: Any = "gradient",
    ) -> None:
        if scorer not in SCORERS or (spice and scorer != "coco"):
            raise ValueError(
                f"scorer must be one of {SCORERS} (spice only with 'coco'), got {scorer!r}, "
                f"spice={spice}"
            )
        if beam_size < 1 or max_caption_length < 1:
            raise ValueError(
                f"beam_size and max_caption_length must be >= 1, got {beam_size}, "
                f"{max_caption_length}"
            )
        task = CaptionTask(data_info, beam_size, max_caption_length, scorer, spice)
        super().__init__(
            task,
            net,
            optimizer,
            scheduler,
            objective=objective,
            objectives=objectives,
            train_importance=train_importance,
            eval_importance=eval_importance,
            grounding_metrics=grounding_metrics,
            fast_importance=fast_importance,
        )
        self.beam_size = beam_size
        self.max_caption_length = max_caption_length
        self.scorer = scorer
        self.spice = spice
        self.save_hyperparameters(
            {
                "grounding_metrics": grounding_metrics,
                "beam_size": beam_size,
                "max_caption_length": max_caption_length,
                "scorer": scorer,
                "spice": spice,
            },
            logger=False,
        )

    @property
    def caption_task(self) -> CaptionTask:
        """The task adapter (typed)."""
        assert isinstance(self.task, CaptionTask)
        return self.task

    @property
    def test_captions(self) -> dict[int, str]:
        """Image id -> caption of the last test run."""
        return self.caption_task.test_captions

    @property
    def test_scores(self) -> dict[str, float]:
        """Caption scores of the last test run."""
        return self.caption_task.test_scores

    def decode(self, features: Tensor, boxes: Tensor, mask: Tensor) -> Tensor:
        """``[B, L]`` decoded word ids (greedy or beam search, as configured)."""
        return self.caption_task.decode(self.net, features, boxes, mask)

    def grounding(self, batch: Mapping[str, Tensor], attention: Tensor) -> GroundingTerm:
        """The objectives' term on the batch's visual-word decisions (training, with graph).

        Args:
            batch: the caption batch.
            attention: ``[B, T, N]`` attention of the teacher-forced pass (read by objectives
                that need attention only).

        Returns:
            The :class:`GroundingTerm` (a zero when no objective contributes or K = 0).
        """
        rows = self.task.grounding_rows(self.net, batch, training=True)
        zero = attention.new_zeros(())
        needed = self.objectives.needed_for(rows.has_importance) if self.objectives else {}
        if not needed:
            return GroundingTerm(zero, logs={"loss_grounding": 0.0, "hinted_frac": 0.0})
        assert self.objectives is not None
        from hint_lightning.modules.grounding import probe_kind

        kind = None
        if any("importance" in objective.requires for objective in needed.values()):
            kind = probe_kind(self.train_method, self.caps, self.fast_importance)
        ctx = self._context(rows, attention, attention, None, kind, self.train_method, True)
        terms = self.objectives.terms(ctx)
        loss = total(terms, zero)
        return GroundingTerm(
            loss, len(rows.has_importance), logs={"loss_grounding": float(loss.detach())}
        )

    def decision_importance(
        self, batch: Mapping[str, Tensor]
    ) -> tuple[DecisionRows, Tensor, Tensor]:
        """Network importance and attention at the batch's visual-word decisions (no graph).

        Also the entry point for pictures (the paper's Figure 3): the importance of a chosen
        word of a caption is that of a batch holding the caption with one decision.

        Returns:
            ``(decisions, importance [K, N], attention [K, N])``, detached; importance by
            ``model.eval_importance`` (the fast or the reference gradient path: the same
            numbers).
        """
        explained = self.explain(batch)
        assert explained.importance is not None and explained.row_attention is not None
        decisions: DecisionRows = explained.rows.caption_decisions  # type: ignore[attr-defined]
        return decisions, explained.importance, explained.row_attention

    def results_entries(self) -> list[dict[str, Any]]:
        """The results file of the last test run: ``[{"image_id", "caption"}]``, by image id."""
        return [{"image_id": i, "caption": c} for i, c in sorted(self.test_captions.items())]
