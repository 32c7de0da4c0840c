"""The captioning task adapter: grounding at visual words, one row per decision.

Training: the task loss is the teacher-forced cross-entropy of every word (``<eos>``
included, padding ignored), averaged over the words of the batch. Grounding is about the
batch's K visual-word decisions (:mod:`hint_lightning.data.caption_batch`): the caption of
each decision is repeated once per decision (``index_select`` of its features, boxes and input
words, cut after the latest decision step: later steps cannot change a decision), the
captioner runs on these K rows (with the probe of gradient importance: the fast path's
``[K, N]`` proposal shift, or features requiring grad on the reference path), and the decision
score of row k is the logit of its visual word at its step. One row per decision is what makes
one gradient the importance of one decision (see :mod:`hint_lightning.models.updn_captioner`).
Objectives that read attention only get the attention of the main pass at each decision step,
without the extra pass.

Evaluation: captions are decoded (greedy or beam search), gathered from every process, scored
on rank 0 and broadcast (``{stage}/Bleu_1`` .. ``CIDEr``, ``METEOR``, ``ROUGE_L``,
``{stage}/images``); importance of the ground-truth words is taken as in training (no graph).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from hint_lightning.data import caption_batch as C
from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.importance.replacement import tile_batch
from hint_lightning.models.updn_captioner import PAD_INDEX
from hint_lightning.modules.caption_scoring import score_results, words_to_captions
from hint_lightning.modules.task import (
    BackbonePasses,
    GroundingRows,
    Task,
    broadcast_object,
    gather_objects,
    split_output,
)
from hint_lightning.objectives.context import DecisionTargets, PassOutput

__all__ = ["CaptionTask", "DecisionRows", "caption_cross_entropy"]


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


def _word_logit(logits: Tensor, words: Tensor) -> Tensor:
    """``[R]`` the logit of each row's word (``[R, V]`` logits at the decision step)."""
    return logits.gather(1, words[:, None]).squeeze(1)


def _word_loss(logits: Tensor, words: Tensor) -> Tensor:
    """``[R]`` cross-entropy of each row's word."""
    return F.cross_entropy(logits, words, reduction="none")


class CaptionTask(Task):
    """The captioning adapter (module docstring).

    Args:
        data_info: the caption vocabulary and sizes.
        beam_size: 1 decodes greedily; more runs beam search.
        max_caption_length: the most words of a decoded caption, ``<eos>`` included.
        scorer: ``"coco"`` or ``"tokenized"`` (see ``score_results``).
        spice: also SPICE on the test split (``"coco"`` only).
    """

    name = "captioning"
    batch_size_key = C.CAPTION_TARGETS

    def __init__(
        self,
        data_info: CaptionDataInfo,
        beam_size: int = 1,
        max_caption_length: int = 16,
        scorer: str = "coco",
        spice: bool = False,
    ) -> None:
        super().__init__(data_info)
        self.beam_size = beam_size
        self.max_caption_length = max_caption_length
        self.scorer = scorer
        self.spice = spice
        self.test_captions: dict[int, str] = {}
        self.test_scores: dict[str, float] = {}
        self._generated: list[tuple[list[int], list[str]]] = []

    def build_net(self, factory: Callable[..., nn.Module]) -> nn.Module:
        """``factory(vocab_size=..., feature_dim=...)``."""
        return factory(vocab_size=self.data_info.vocab_size, feature_dim=self.data_info.feature_dim)

    def decision_kinds(self) -> frozenset[str]:
        """Only the ground-truth word: a caption has no wrong answers to compare with."""
        return frozenset({"ground_truth"})

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The ``[B, N, D]`` proposal features of each caption's image."""
        return batch[C.FEATURES]

    def main_pass(
        self, net: nn.Module, batch: Mapping[str, Tensor], features: Tensor, shift: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: ``(logits [B, T, V], attention [B, T, N])``."""
        output = net(features, batch[C.BOXES], batch[C.CAPTION_INPUTS], batch[C.PROPOSAL_MASK])
        return split_output(output)

    def task_loss(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """:func:`caption_cross_entropy`."""
        return caption_cross_entropy(outputs, batch[C.CAPTION_TARGETS])

    def grounding_rows(
        self, net: nn.Module, batch: Mapping[str, Tensor], training: bool = True
    ) -> GroundingRows:
        """One row per visual-word decision, built on first use."""
        decisions = DecisionRows(batch)
        caps = self.capabilities(net)

        def call(
            proposals: Tensor, mask: Tensor, shift: Tensor | None, inputs: Mapping[str, Tensor]
        ) -> PassOutput:
            extra = {} if shift is None else {"proposal_shift": shift}
            logits, attention = split_output(
                net(proposals, inputs["boxes"], inputs["words"], mask, **extra)
            )
            rows = torch.arange(proposals.shape[0], device=proposals.device)
            step = inputs["step"]
            return PassOutput(
                logits[rows, step], None if attention is None else attention[rows, step]
            )

        def passes() -> BackbonePasses:
            captured = {"boxes": decisions.boxes, "words": decisions.inputs, "step": decisions.step}
            return BackbonePasses(call, captured, caps)

        hinted = torch.ones(len(decisions), dtype=torch.bool, device=decisions.row.device)
        rows = GroundingRows(
            has_importance=hinted,
            in_main_pass=False,
            human_importance=decisions.human_importance,
            decisions=DecisionTargets(decisions.word, _word_logit, sample_loss=_word_loss),
            lazy={
                "proposals": lambda: decisions.features,
                "proposal_mask": lambda: decisions.mask,
                "passes": passes,
            },
        )
        rows.caption_decisions = decisions  # type: ignore[attr-defined]
        return rows

    def rows_attention(self, rows: GroundingRows, attention: Tensor | None) -> Tensor | None:
        """The teacher-forced pass's attention at each decision step ``[K, N]``."""
        if attention is None:
            return None
        decisions: DecisionRows = rows.caption_decisions  # type: ignore[attr-defined]
        return decisions.at_step(attention[decisions.row])

    def training_logs(
        self, batch: Mapping[str, Tensor], outputs: Tensor, rows: GroundingRows, grounded: bool
    ) -> dict[str, Tensor | float]:
        """With objectives: the share of captions with a decision and the decision count."""
        if not grounded:
            return {}
        size = self.batch_size(batch)
        captions = torch.unique(batch[C.DECISION_ROW]).numel()
        return {
            "hinted_frac": captions / max(size, 1),
            "decisions": float(len(rows.has_importance)),
        }

    # ---------------------------------------------------------------- the evaluation suite
    def suite_score(self, rows: GroundingRows, logits: Tensor) -> Tensor:
        """``[K * R]`` the visual word's log-probability at its step (tiled rows' ``[K * R, V]``
        step logits): the decision faithfulness perturbs for captioning."""
        words = tile_batch(rows.decisions.targets, logits.shape[0])
        return logits.float().log_softmax(dim=1).gather(1, words[:, None]).squeeze(1)

    def suite_columns(
        self, batch: Mapping[str, Tensor], rows: GroundingRows, outputs: Tensor
    ) -> tuple[list[Any] | None, dict[str, Any]]:
        """One line per visual-word decision, id ``<image_id>/<step>/<word>``: the ``word``,
        ``correct`` (the teacher-forced argmax at the step is the word) and ``log_prob``."""
        decisions: DecisionRows = rows.caption_decisions  # type: ignore[attr-defined]
        if not len(decisions):
            return [], {}
        step_logits = decisions.at_step(outputs[decisions.row]).float()
        words = decisions.word
        image_ids = batch[C.IMAGE_ID][decisions.row].tolist()
        vocab = self.data_info.vocab
        ids = [
            f"{image}/{step}/{vocab[word]}"
            for image, step, word in zip(
                image_ids, decisions.step.tolist(), words.tolist(), strict=True
            )
        ]
        log_prob = step_logits.log_softmax(dim=1).gather(1, words[:, None]).squeeze(1)
        return ids, {
            "word": [vocab[word] for word in words.tolist()],
            "correct": (step_logits.argmax(dim=1) == words).tolist(),
            "log_prob": log_prob.tolist(),
        }

    # ---------------------------------------------------------------- evaluation
    def has_grounding(self, batch: Mapping[str, Tensor]) -> bool:
        """Importance is taken on batches with a visual-word decision."""
        return batch[C.DECISION_ROW].numel() > 0

    def decode(self, net: Any, features: Tensor, boxes: Tensor, mask: Tensor) -> Tensor:
        """``[B, L]`` decoded word ids (greedy or beam search, as configured)."""
        if self.beam_size > 1:
            return net.beam_search(
                features, boxes, mask, beam_size=self.beam_size, max_length=self.max_caption_length
            )
        return net.greedy_decode(features, boxes, mask, max_length=self.max_caption_length)

    def evaluation_step(
        self,
        module: Any,
        batch: Mapping[str, Tensor],
        outputs: Tensor,
        stage: str,
        metrics: Mapping[str, Metric],
    ) -> dict[str, Tensor]:
        """Decode the first caption of each image; log the teacher-forced loss."""
        decode = batch[C.DECODE]
        if bool(decode.any()):
            rows = decode.nonzero().squeeze(1)
            words = self.decode(
                module.net,
                batch[C.FEATURES][rows],
                batch[C.BOXES][rows],
                batch[C.PROPOSAL_MASK][rows],
            )
            captions = words_to_captions(words, self.data_info.vocab)
            self._generated.append((batch[C.IMAGE_ID][rows].tolist(), captions))
        loss = caption_cross_entropy(outputs, batch[C.CAPTION_TARGETS])
        module.log(f"{stage}/loss", loss, batch_size=outputs.shape[0], sync_dist=True)
        return {}

    def _gathered_captions(self) -> dict[int, str]:
        """Image id -> caption of every process (each image decoded exactly once)."""
        pairs = [pair for ids, texts in self._generated for pair in zip(ids, texts, strict=True)]
        self._generated = []
        return {int(image_id): caption for image_id, caption in gather_objects(pairs)}

    def _scores(self, module: Any, captions: Mapping[int, str], stage: str) -> dict[str, float]:
        """Caption scores, computed on rank 0 and broadcast to every process."""
        scores: dict[str, float] = {}
        if captions and module.trainer.is_global_zero:
            datamodule = module.trainer.datamodule
            split = stage if stage == "val" else getattr(datamodule, "test_split", "test")
            results = [{"image_id": i, "caption": c} for i, c in sorted(captions.items())]
            spice = self.spice and stage == "test"
            scores = score_results(results, datamodule.references(split), self.scorer, spice)
        return broadcast_object(scores)

    def log_options(self, name: str) -> dict[str, Any]:
        """Epoch scores are the same on every process."""
        return {} if name in ("hinted_frac", "decisions") else {"sync_dist": True}

    def epoch_logs(
        self, module: Any, stage: str, metrics: Mapping[str, Metric]
    ) -> dict[str, Tensor | float]:
        """Caption scores and the number of images captioned."""
        captions = self._gathered_captions()
        scores = self._scores(module, captions, stage)
        logs: dict[str, Tensor | float] = {name: float(value) for name, value in scores.items()}
        logs["images"] = float(len(captions))
        if stage == "test":
            self.test_scores = dict(scores)
            self.test_captions = captions
        return logs

    def on_epoch_start(self, module: Any, stage: str) -> None:
        """Forget captions of an interrupted epoch or an earlier test run."""
        self._generated = []
        if stage == "test":
            self.test_captions = {}
