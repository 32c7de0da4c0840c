"""The batch contract shared by the captioning DataModules and the captioning LightningModule.

A caption batch is a plain ``dict[str, Tensor]``, one row per caption (an image with five
captions gives five rows). ``B`` is the number of captions, ``N`` the number of proposals
(padded to the largest image of the batch), ``D`` the feature size, ``T`` the number of
teacher-forcing steps (the longest caption of the batch plus its ``<eos>``) and ``K`` the
number of visual-word decisions of the whole batch.

===========================  ===========  =======  ==============================================
key                          shape        dtype    meaning
===========================  ===========  =======  ==============================================
``features``                 [B, N, D]    float    proposal features (zeros for padded proposals)
``boxes``                    [B, N, 4]    float    boxes x1, y1, x2, y2 normalized to [0, 1]
``proposal_mask``            [B, N]       bool     True for real proposals
``caption_inputs``           [B, T]       long     ``<bos> w_1 .. w_L``, 0 (``<pad>``) after
``caption_targets``          [B, T]       long     ``w_1 .. w_L <eos>``, 0 after: 0 = ignore
``image_id``                 [B]          long     the dataset's image id
``decode``                   [B]          bool     evaluation: decode this row (the first caption
                                                   of its image in the split, so that every image
                                                   is captioned exactly once)
``decision_row``             [K]          long     the caption (batch row) of each decision
``decision_step``            [K]          long     its teacher-forcing step ``t``: the model reads
                                                   ``caption_inputs[row, t]`` and must predict
                                                   the visual word ``caption_targets[row, t]``
``decision_word``            [K]          long     ``caption_targets[row, step]``, the word whose
                                                   logit is the decision score
``decision_importance``      [K, N]       float    human importance of each proposal for the
                                                   visual word's category (0 on padding)
===========================  ===========  =======  ==============================================

A *decision* is a time step whose ground-truth word is a visual word whose category has
human importance in the image (for COCO: the category has instance segmentations in the image;
see :mod:`hint_lightning.text.visual_words` and :mod:`hint_lightning.prepare.coco_masks`).
Decisions are flattened over the batch because a caption may hold several visual words and
network importance is one gradient per decision: the LightningModule repeats caption
``decision_row[k]`` once per decision (see :mod:`hint_lightning.models.updn_captioner`).
Decisions are ordered by row, then by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hint_lightning.data.batch import BOXES, FEATURES, PROPOSAL_MASK

__all__ = [
    "BOXES",
    "CAPTION_BATCH_KEYS",
    "CAPTION_INPUTS",
    "CAPTION_TARGETS",
    "DECISION_IMPORTANCE",
    "DECISION_ROW",
    "DECISION_STEP",
    "DECISION_WORD",
    "DECODE",
    "FEATURES",
    "IMAGE_ID",
    "PROPOSAL_MASK",
    "CaptionDataInfo",
]

CAPTION_INPUTS: Final = "caption_inputs"
CAPTION_TARGETS: Final = "caption_targets"
IMAGE_ID: Final = "image_id"
DECODE: Final = "decode"
DECISION_ROW: Final = "decision_row"
DECISION_STEP: Final = "decision_step"
DECISION_WORD: Final = "decision_word"
DECISION_IMPORTANCE: Final = "decision_importance"

CAPTION_BATCH_KEYS: Final[tuple[str, ...]] = (
    FEATURES,
    BOXES,
    PROPOSAL_MASK,
    CAPTION_INPUTS,
    CAPTION_TARGETS,
    IMAGE_ID,
    DECODE,
    DECISION_ROW,
    DECISION_STEP,
    DECISION_WORD,
    DECISION_IMPORTANCE,
)


@dataclass(frozen=True)
class CaptionDataInfo:
    """What a captioning model needs to know about a prepared caption dataset.

    Every captioning DataModule exposes one as ``datamodule.info`` after ``setup()``; it is
    stored in checkpoints (``dataclasses.asdict``), so ``evaluate`` needs only the file.

    Attributes:
        vocab: the caption vocabulary; word id ``i`` is ``vocab[i]`` (0 ``<pad>``, 1 ``<bos>``,
            2 ``<eos>``, 3 ``<unk>``).
        feature_dim: D, the size of one proposal feature vector.
        max_proposals: the largest N an image can have.
        name: a short dataset name for tables and logs.
    """

    vocab: tuple[str, ...]
    feature_dim: int
    max_proposals: int
    name: str = "captions"

    @property
    def vocab_size(self) -> int:
        """V, the number of words, special tokens included."""
        return len(self.vocab)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> CaptionDataInfo:
        """The inverse of ``dataclasses.asdict`` (as stored in a checkpoint).

        Example:
            >>> from dataclasses import asdict
            >>> info = CaptionDataInfo(("<pad>", "<bos>", "<eos>", "<unk>", "dog"), 8, 36)
            >>> CaptionDataInfo.from_dict(asdict(info)) == info
            True
        """
        return cls(
            vocab=tuple(str(word) for word in payload["vocab"]),
            feature_dim=int(payload["feature_dim"]),
            max_proposals=int(payload["max_proposals"]),
            name=str(payload.get("name", "captions")),
        )
