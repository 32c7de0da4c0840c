"""The captioning LightningModule: UpDn captioner + HINT at visual words + caption metrics.

Training (``training_step``): the task loss is the teacher-forced cross-entropy of every word
(``<eos>`` included, padding ignored), averaged over the words of the batch. The grounding term
comes from the same :class:`~hint_lightning.modules.hint_mixin.HintMixin` and ``objective=``
group as VQA: for the batch's K visual-word decisions (:mod:`hint_lightning.data.caption_batch`)
the caption of each decision is repeated once per decision (``index_select`` of its features,
boxes and input words, cut after the latest decision step: later steps cannot change a
decision), the captioner runs on these K rows with the mixin's probe (the fast path's ``[K, N]``
proposal shift, or features requiring grad on the reference path ``fast_importance=false``),
and the decision score of row k is the logit of its visual word at its step. One row per
decision is what makes one gradient the importance of one decision (see
:mod:`hint_lightning.models.updn_captioner`). ``grounding_term`` then takes network importance
and the ranking loss against the category's human importance, every row counting as hinted.
Objectives that read attention only (``objective=attn_align``) get the attention of the main
pass at each decision step, without the extra pass. Other steps add only the task loss.

Evaluation (validation and test; gradients are taken, so ``Trainer(inference_mode=False)``):

* captions: the first caption row of each image is decoded (greedy, or beam search with
  ``beam_size > 1``); at the end of the epoch the ``{"image_id", "caption"}`` results of every
  process are gathered, scored on rank 0 against the datamodule's references
  (``datamodule.references(split)``) and broadcast, and logged as ``{stage}/Bleu_1`` ..
  ``{stage}/Bleu_4``, ``{stage}/METEOR``, ``{stage}/ROUGE_L``, ``{stage}/CIDEr`` (model
  selection: ``val/CIDEr``). ``scorer="coco"`` is the official coco-caption pipeline
  (:func:`~hint_lightning.metrics.caption.score_captions`, Java: PTB tokenizer and METEOR);
  ``scorer="tokenized"`` scores lower-cased alphanumeric tokens without Java (no METEOR; for
  quick runs on already tokenized references such as the easy-VQA captions); ``spice=True``
  adds ``test/SPICE`` (opt-in: Stanford CoreNLP is downloaded at first use);
* ``{stage}/rho``: mean Spearman correlation between network importance (fast or reference
  path, no graph kept) and human importance at the ground-truth captions' visual words
  (teacher forcing), and ``{stage}/rho_attention`` for the attention at those steps;
* ``{stage}/loss``: teacher-forced cross-entropy; ``{stage}/images``: images captioned.

After ``trainer.test``, :meth:`CaptionModule.results_entries` returns the results file's
entries ``[{"image_id": int, "caption": str}]`` (``train`` and ``evaluate`` write them to
``test_results.json``). The datamodule must provide ``references(split)`` (image id -> raw
reference captions) for ``val`` and its ``test_split``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hint_lightning.data import caption_batch as C
from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.metrics.caption import score_captions, score_tokenized
from hint_lightning.metrics.grounding import GroundingCorrelation
from hint_lightning.models.updn_captioner import BOS_INDEX, EOS_INDEX, PAD_INDEX, UNK_INDEX
from hint_lightning.modules.base import GroundedModule
from hint_lightning.modules.hint_mixin import GroundingTerm, evaluation_importance
from hint_lightning.objectives.base import GroundingObjective

__all__ = [
    "SCORERS",
    "CaptionModule",
    "DecisionRows",
    "caption_cross_entropy",
    "score_results",
    "words_to_captions",
]

SCORERS: Final[tuple[str, ...]] = ("coco", "tokenized")
"""Accepted values of ``scorer``."""
UNK_WORD: Final = "UNK"
"""How a generated ``<unk>`` is written in results (the neuraltalk2 convention)."""


def caption_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Teacher-forced cross-entropy, mean over the words of the batch (padding ignored).

    Args:
        logits: ``[B, T, V]``.
        targets: ``[B, T]`` word ids, 0 (``<pad>``) ignored.

    Returns:
        Scalar loss.

    Example:
        >>> logits = torch.zeros(1, 2, 4)
        >>> round(float(caption_cross_entropy(logits, torch.tensor([[3, 0]]))), 4)  # log 4
        1.3863
    """
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_INDEX)


def words_to_captions(words: Tensor, vocab: Sequence[str]) -> list[str]:
    """Decoded word ids as caption strings: up to ``<eos>``, specials dropped, ``<unk>`` as UNK.

    Args:
        words: ``[B, L]`` ids from a decoder (``<eos>`` included, 0 after it).
        vocab: the caption vocabulary.

    Returns:
        B captions (words joined by single spaces).

    Example:
        >>> vocab = ("<pad>", "<bos>", "<eos>", "<unk>", "a", "dog")
        >>> words_to_captions(torch.tensor([[4, 5, 2, 0], [4, 3, 5, 5]]), vocab)
        ['a dog', 'a UNK dog dog']
    """
    ended = (words == EOS_INDEX).long().cumsum(dim=1) > 0
    words = words.masked_fill(ended, PAD_INDEX)
    names = [UNK_WORD if i == UNK_INDEX else word for i, word in enumerate(vocab)]
    special = {PAD_INDEX, BOS_INDEX, EOS_INDEX}
    return [" ".join(names[i] for i in row if i not in special) for row in words.tolist()]


def _simple_tokens(text: str) -> str:
    """Lower-cased alphanumeric tokens joined by spaces (the Java-free scorer's tokenizer)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def score_results(
    results: Sequence[Mapping[str, Any]],
    references: Mapping[int, Sequence[str]],
    scorer: str = "coco",
    spice: bool = False,
) -> dict[str, float]:
    """Corpus caption scores of ``[{"image_id", "caption"}]`` against references.

    Args:
        results: one caption per image.
        references: image id -> reference captions (raw text).
        scorer: ``"coco"`` (official: PTB tokenizer, BLEU, METEOR, ROUGE-L, CIDEr-D; Java) or
            ``"tokenized"`` (lower-cased alphanumeric tokens, no METEOR, no Java).
        spice: also SPICE (``"coco"`` only; Java 8 and Stanford CoreNLP, downloaded at first
            use: impossible offline, see :func:`~hint_lightning.metrics.caption.score_captions`).

    Returns:
        Metric name -> score.

    Example:
        >>> refs = {1: ["A dog."], 2: ["a cat"]}
        >>> results = [{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": "a cat"}]
        >>> round(score_results(results, refs, "tokenized")["Bleu_1"], 6)
        1.0
    """
    if scorer == "coco":
        return score_captions(results, references, spice=spice)
    if scorer != "tokenized" or spice:
        raise ValueError(
            f"scorer must be one of {SCORERS} (spice only with 'coco'), got {scorer!r}, "
            f"spice={spice}"
        )
    res = {int(r["image_id"]): [_simple_tokens(r["caption"])] for r in results}
    gts = {i: [_simple_tokens(t) for t in references[i]] for i in res if i in references}
    missing = sorted(set(res) - set(gts))
    if missing:
        raise ValueError(f"images {missing[:5]} have results but no references")
    return score_tokenized(gts, res)


class DecisionRows:
    """The K decision rows of a batch: each decision's caption, repeated, cut after its step.

    The repeated tensors are built on first use (a batch whose term is off never copies them).

    Args:
        batch: a caption batch (:mod:`hint_lightning.data.caption_batch`).

    Attributes:
        row: ``[K]`` caption of each decision.
        step: ``[K]`` its step.
        word: ``[K]`` its word.
        human_importance: ``[K, N]``.
    """

    def __init__(self, batch: Mapping[str, Tensor]) -> None:
        self.batch = batch
        self.row = batch[C.DECISION_ROW]
        self.step = batch[C.DECISION_STEP]
        self.word = batch[C.DECISION_WORD]
        self.human_importance = batch[C.DECISION_IMPORTANCE]

    def __len__(self) -> int:
        return int(self.row.numel())

    def _rows(self, key: str) -> Tensor:
        return self.batch[key].index_select(0, self.row)

    @cached_property
    def features(self) -> Tensor:
        """``[K, N, D]`` proposal features of each decision's image."""
        return self._rows(C.FEATURES)

    @cached_property
    def boxes(self) -> Tensor:
        """``[K, N, 4]``."""
        return self._rows(C.BOXES)

    @cached_property
    def mask(self) -> Tensor:
        """``[K, N]`` proposal mask."""
        return self._rows(C.PROPOSAL_MASK)

    @cached_property
    def inputs(self) -> Tensor:
        """``[K, S]`` input words, cut after the latest decision step (``S = step.max() + 1``)."""
        steps = int(self.step.max()) + 1 if len(self) else 1
        return self._rows(C.CAPTION_INPUTS)[:, :steps]

    def at_step(self, values: Tensor) -> Tensor:
        """``values[k, step[k]]`` of per-step outputs ``[K, S, ...]`` -> ``[K, ...]``."""
        return values[torch.arange(len(self), device=values.device), self.step]

    def scores(self, logits: Tensor) -> Tensor:
        """Decision scores ``[K]``: the logit of each visual word at its step (``[K, S, V]``)."""
        return self.at_step(logits).gather(1, self.word[:, None]).squeeze(1)


class CaptionModule(GroundedModule):
    """Captioning training and evaluation with an optional grounding objective.

    Args:
        net: a factory (Hydra ``_partial_``) building the captioner from ``vocab_size`` and
            ``feature_dim``; or a ready ``nn.Module`` (e.g. ``UpDnCaptioner``).
        data_info: the vocabulary and sizes of the caption data.
        optimizer: a factory taking ``params``.
        scheduler: optional factory taking ``optimizer`` (stepped every epoch).
        objective: the grounding objective, or None for plain training.
        grounding_metrics: compute ``rho`` in validation and test (needs gradients).
        fast_importance: network importance through the captioner's ``[K, N]``
            ``proposal_shift`` (exact, cheaper) when it supports it; False: the gradient with
            respect to the ``[K, N, D]`` features (the reference path).
        beam_size: 1 decodes greedily; more runs beam search.
        max_caption_length: the most words a decoded caption has, ``<eos>`` included.
        scorer: ``"coco"`` or ``"tokenized"`` (:func:`score_results`).
        spice: also compute SPICE on the test split (opt-in: ``"coco"`` scorer only, needs
            Java 8 and Stanford CoreNLP, which pycocoevalcap downloads at first use).
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        data_info: CaptionDataInfo,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        objective: GroundingObjective | None = None,
        grounding_metrics: bool = True,
        fast_importance: bool = True,
        beam_size: int = 1,
        max_caption_length: int = 16,
        scorer: str = "coco",
        spice: bool = False,
    ) -> None:
        super().__init__()
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
        self.net = (
            net
            if isinstance(net, nn.Module)
            else net(vocab_size=data_info.vocab_size, feature_dim=data_info.feature_dim)
        )
        self.data_info = data_info
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.grounding_metrics = grounding_metrics
        self.fast_importance = fast_importance and bool(
            getattr(self.net, "supports_proposal_shift", False)
        )
        self.beam_size = beam_size
        self.max_caption_length = max_caption_length
        self.scorer = scorer
        self.spice = spice
        self.run_config: dict[str, Any] | None = None
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
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": GroundingCorrelation()
                for stage in ("val", "test")
                for name in ("rho", "rho_attention")
            }
        )
        self.test_captions: dict[int, str] = {}
        self.test_scores: dict[str, float] = {}
        self._generated: list[tuple[list[int], list[str]]] = []

    # ------------------------------------------------------------------ the grounding term
    def grounding(self, batch: Mapping[str, Tensor], attention: Tensor) -> GroundingTerm:
        """The objective's term on the batch's visual-word decisions (module docstring).

        Args:
            batch: the caption batch.
            attention: ``[B, T, N]`` attention of the teacher-forced pass (read by objectives
                that do not need network importance).

        Returns:
            The :class:`GroundingTerm` (a zero when the term is off or K = 0).
        """
        decisions = DecisionRows(batch)
        hinted = torch.ones(len(decisions), dtype=torch.bool, device=attention.device)
        if not self.grounding_active(hinted):  # no objective, weight 0 or no decision
            return self.grounding_term(
                decision_scores=attention.new_zeros(0),
                proposals=batch[C.FEATURES],
                attention=None,
                human_importance=decisions.human_importance,
                has_importance=hinted,
                proposal_mask=batch[C.PROPOSAL_MASK],
            )
        assert self.objective is not None  # grounding_active checked it
        if not self.objective.needs_network_importance:  # attention objectives: no extra pass
            return self.grounding_term(
                decision_scores=attention.new_zeros(len(decisions)),
                proposals=batch[C.FEATURES],
                attention=decisions.at_step(attention[decisions.row]),
                human_importance=decisions.human_importance,
                has_importance=hinted,
                proposal_mask=decisions.mask,
            )
        features, shift = decisions.features, None
        if self.fast_importance:
            shift = self.proposal_shift_for_grounding(features, hinted)
        else:
            features = self.proposals_for_grounding(features, hinted)
        extra = {} if shift is None else {"proposal_shift": shift}
        logits, row_attention = self.net(
            features, decisions.boxes, decisions.inputs, decisions.mask, **extra
        )
        return self.grounding_term(
            decision_scores=decisions.scores(logits),
            proposals=features,
            attention=decisions.at_step(row_attention),
            human_importance=decisions.human_importance,
            has_importance=hinted,
            proposal_mask=decisions.mask,
            proposal_shift=shift,
        )

    # ------------------------------------------------------------------ training
    def _teacher_forced(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.net(
            batch[C.FEATURES], batch[C.BOXES], batch[C.CAPTION_INPUTS], batch[C.PROPOSAL_MASK]
        )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Task loss plus the grounding term at the visual-word decisions."""
        logits, attention = self._teacher_forced(batch)
        task_loss = caption_cross_entropy(logits, batch[C.CAPTION_TARGETS])
        term = self.grounding(batch, attention)
        loss = task_loss + term.loss
        size = batch[C.CAPTION_TARGETS].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/loss_task", task_loss, batch_size=size)
        if self.objective is not None:
            captions = torch.unique(batch[C.DECISION_ROW]).numel()
            self.log("train/loss_grounding", term.logs["loss_grounding"], batch_size=size)
            self.log("train/hinted_frac", captions / max(size, 1), batch_size=size)
            self.log("train/decisions", float(term.hinted), batch_size=size)
        return loss

    # ---------------------------------------------------------------- evaluation
    def decode(self, features: Tensor, boxes: Tensor, mask: Tensor) -> Tensor:
        """``[B, L]`` decoded word ids (greedy or beam search, as configured)."""
        if self.beam_size > 1:
            return self.net.beam_search(
                features, boxes, mask, beam_size=self.beam_size, max_length=self.max_caption_length
            )
        return self.net.greedy_decode(features, boxes, mask, max_length=self.max_caption_length)

    def decision_importance(
        self, batch: Mapping[str, Tensor]
    ) -> tuple[DecisionRows, Tensor, Tensor]:
        """Network importance and attention at the batch's visual-word decisions (no graph).

        Also the entry point for pictures (the paper's Figure 3): the importance of a chosen
        word of a caption is that of a batch holding the caption with one decision.

        Args:
            batch: a caption batch.

        Returns:
            ``(decisions, importance [K, N], attention [K, N])``, detached; the fast or the
            reference path as configured (the same numbers).
        """
        decisions = DecisionRows(batch)
        features, shift = decisions.features, None
        with torch.enable_grad():
            if self.fast_importance:
                probe = shift = features.new_zeros(features.shape[:2]).requires_grad_(True)
            else:
                probe = features = features.detach().requires_grad_(True)
            extra = {} if shift is None else {"proposal_shift": shift}
            logits, attention = self.net(
                features, decisions.boxes, decisions.inputs, decisions.mask, **extra
            )
            importance = evaluation_importance(decisions.scores(logits), probe)
        return decisions, importance, decisions.at_step(attention).detach()

    def _evaluation_step(self, batch: dict[str, Tensor], stage: str) -> None:
        with_importance = self.grounding_metrics and batch[C.DECISION_ROW].numel() > 0
        if with_importance and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "grounding metrics take gradients during evaluation, which inference mode "
                "forbids: set trainer.inference_mode=false (the default configs do), or "
                "model.grounding_metrics=false"
            )
        decode = batch[C.DECODE]
        if bool(decode.any()):
            rows = decode.nonzero().squeeze(1)
            words = self.decode(
                batch[C.FEATURES][rows], batch[C.BOXES][rows], batch[C.PROPOSAL_MASK][rows]
            )
            self._generated.append(
                (batch[C.IMAGE_ID][rows].tolist(), words_to_captions(words, self.data_info.vocab))
            )
        with torch.no_grad():
            logits, _ = self._teacher_forced(batch)
            loss = caption_cross_entropy(logits, batch[C.CAPTION_TARGETS])
        self.log(f"{stage}/loss", loss, batch_size=logits.shape[0], sync_dist=True)
        if with_importance:
            decisions, importance, attention = self.decision_importance(batch)
            hinted = torch.ones(len(decisions), dtype=torch.bool, device=importance.device)
            human, mask = decisions.human_importance, decisions.mask
            self.metrics[f"{stage}_rho"].update(importance, human, mask, hinted)
            self.metrics[f"{stage}_rho_attention"].update(attention, human, mask, hinted)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Decode, and accumulate the loss and grounding metrics."""
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Decode, and accumulate the loss and grounding metrics."""
        self._evaluation_step(batch, "test")

    def _gathered_captions(self) -> dict[int, str]:
        """Image id -> caption of every process (each image decoded exactly once)."""
        pairs = [pair for ids, texts in self._generated for pair in zip(ids, texts, strict=True)]
        self._generated = []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, pairs)
            pairs = [pair for part in gathered for pair in part]
        return {int(image_id): caption for image_id, caption in pairs}

    def _scores(self, captions: Mapping[int, str], stage: str) -> dict[str, float]:
        """Caption scores, computed on rank 0 and broadcast to every process."""
        scores: dict[str, float] = {}
        if captions and self.trainer.is_global_zero:
            datamodule = self.trainer.datamodule
            split = stage if stage == "val" else getattr(datamodule, "test_split", "test")
            results = [{"image_id": i, "caption": c} for i, c in sorted(captions.items())]
            spice = self.spice and stage == "test"
            scores = score_results(results, datamodule.references(split), self.scorer, spice)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            box = [scores]
            torch.distributed.broadcast_object_list(box, src=0)
            scores = box[0]
        return scores

    def _log_epoch_metrics(self, stage: str) -> dict[int, str]:
        captions = self._gathered_captions()
        scores = self._scores(captions, stage)
        for name, value in scores.items():
            self.log(f"{stage}/{name}", float(value), sync_dist=True)
        self.log(f"{stage}/images", float(len(captions)), sync_dist=True)
        for name in ("rho", "rho_attention"):
            metric = self.metrics[f"{stage}_{name}"]
            if metric.update_count and self.grounding_metrics:
                value = metric.compute()
                if not math.isnan(float(value)):
                    self.log(f"{stage}/{name}", value)
            metric.reset()
        if stage == "test":
            self.test_scores = dict(scores)
        return captions

    def on_validation_epoch_start(self) -> None:
        """Forget captions of an interrupted epoch."""
        self._generated = []

    def on_validation_epoch_end(self) -> None:
        """Score the validation captions and log the metrics."""
        self._log_epoch_metrics("val")

    def on_test_epoch_start(self) -> None:
        """Forget captions of an earlier test run."""
        self._generated = []
        self.test_captions = {}

    def on_test_epoch_end(self) -> None:
        """Score the test captions, log the metrics and keep the captions."""
        self.test_captions = self._log_epoch_metrics("test")

    def results_entries(self) -> list[dict[str, Any]]:
        """The results file of the last test run: ``[{"image_id", "caption"}]``, by image id."""
        return [{"image_id": i, "caption": c} for i, c in sorted(self.test_captions.items())]
