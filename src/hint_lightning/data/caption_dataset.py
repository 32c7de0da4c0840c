"""The captions of one split, their visual-word decisions, and a Dataset that batches them.

:class:`CaptionTable` holds a split in compact numpy arrays (no per-caption Python objects,
so forked DataLoader workers share it copy-on-write): the captions, the image row of each, and
its visual-word decisions in CSR form (``decision_offsets[c]:decision_offsets[c + 1]`` are the
decisions of caption ``c``). A decision is stored as its teacher-forcing step and the row of
its human importance in an importance table ``[R, M]`` (proposal order of the image, 0 past
the image's proposals); :meth:`CaptionTable.build` finds them from a per-token importance-row
array, so the DataModules only say which token has which importance.

:class:`CaptionDataset` serves items (:mod:`hint_lightning.data.caption_collate` format) and
whole batches (``__getitems__``, used by the DataLoader) of the contract in
:mod:`hint_lightning.data.caption_batch`, built with a few vectorized index operations; images
come from an :class:`ImageSource`: :class:`TensorImages` (in memory) or the lazily read
:class:`~hint_lightning.data.vqa_datamodule.BatchFeatureStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hint_lightning.data import caption_batch as C
from hint_lightning.data.caption_collate import decision_words, flatten_decisions, teacher_forcing
from hint_lightning.text.tokens import PAD_INDEX

__all__ = [
    "CaptionDataset",
    "CaptionTable",
    "ImageSource",
    "TensorImages",
    "first_of_image",
]


class ImageSource(Protocol):
    """Where a :class:`CaptionDataset` reads proposals from (by image row)."""

    feature_dim: int

    def read_image(self, row: int) -> tuple[Any, Any]:
        """``(features [n, D], boxes [n, 4] normalized)`` of one image row."""
        ...

    def read_batch(self, rows: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """``(features [B, N, D], boxes [B, N, 4], proposal_mask [B, N])`` of image rows."""
        ...


class TensorImages:
    """Images held in memory, every image with the same ``N`` real proposals.

    Args:
        features: ``[I, N, D]`` float32.
        boxes: ``[I, N, 4]`` normalized boxes.
    """

    def __init__(self, features: Tensor, boxes: Tensor) -> None:
        self.features = features
        self.boxes = boxes
        self.feature_dim = int(features.shape[-1])
        self.max_boxes = int(features.shape[1])

    def read_image(self, row: int) -> tuple[Tensor, Tensor]:
        """``(features [N, D], boxes [N, 4])`` of one image."""
        return self.features[row], self.boxes[row]

    def read_batch(self, rows: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Features, boxes and an all-True proposal mask of the image rows."""
        index = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        features = self.features[index]
        return features, self.boxes[index], torch.ones(features.shape[:2], dtype=torch.bool)


def first_of_image(image_row: np.ndarray) -> np.ndarray:
    """``[C]`` bool: whether each caption is the first of its image (in this order).

    Example:
        >>> first_of_image(np.array([4, 4, 2, 4, 2])).tolist()
        [True, False, True, False, False]
    """
    first = np.zeros(len(image_row), dtype=bool)
    first[np.unique(image_row, return_index=True)[1]] = True
    return first


@dataclass(frozen=True)
class CaptionTable:
    """The captions of one split and their visual-word decisions.

    Attributes:
        captions: ``[C, L]`` int64, ``<bos> w_1 .. w_L <eos>`` right-padded with 0.
        image_row: ``[C]`` int64, the caption's image in the :class:`ImageSource`.
        image_id: ``[C]`` int64, the dataset's image id.
        decode: ``[C]`` bool, the first caption of each image (evaluation decodes it).
        decision_offsets: ``[C + 1]`` int64, CSR offsets of the decisions.
        decision_step: ``[K]`` int64, teacher-forcing step of each decision.
        decision_importance_row: ``[K]`` int64, row of its human importance.
    """

    captions: np.ndarray
    image_row: np.ndarray
    image_id: np.ndarray
    decode: np.ndarray
    decision_offsets: np.ndarray
    decision_step: np.ndarray
    decision_importance_row: np.ndarray

    @classmethod
    def build(
        cls,
        captions: np.ndarray,
        image_row: np.ndarray,
        image_id: np.ndarray,
        token_importance_row: np.ndarray,
        max_decisions_per_caption: int | None = None,
    ) -> CaptionTable:
        """A table from captions and the importance row of each of their tokens.

        Args:
            captions: ``[C, L]`` token ids (``<bos>`` first).
            image_row: ``[C]`` image rows.
            image_id: ``[C]`` image ids.
            token_importance_row: ``[C, L]`` int, the importance row of the visual word that
                token ``captions[c, j]`` completes, -1 elsewhere (and where the category has
                no importance in the image). Position 0 (``<bos>``) must be -1.
            max_decisions_per_caption: keep only the first this many decisions of a caption
                (None: all).

        Returns:
            The table; decision ``(c, j)`` has step ``j - 1`` (its word is the target there).

        Raises:
            ValueError: for mismatched shapes, a decision at ``<bos>`` or a negative limit.

        Example:
            >>> rows = np.array([[-1, -1, 7, -1], [-1, 3, -1, 5]])
            >>> table = CaptionTable.build(np.ones((2, 4), int), np.array([0, 0]),
            ...                            np.array([9, 9]), rows)
            >>> table.decision_offsets.tolist(), table.decision_step.tolist()
            ([0, 1, 3], [1, 0, 2])
            >>> table.decision_importance_row.tolist(), table.decode.tolist()
            ([7, 3, 5], [True, False])
        """
        captions = np.asarray(captions, dtype=np.int64)
        token_importance_row = np.asarray(token_importance_row, dtype=np.int64)
        if captions.shape != token_importance_row.shape or captions.ndim != 2:
            raise ValueError(
                f"captions {captions.shape} and token_importance_row "
                f"{token_importance_row.shape} must be the same [C, L] shape"
            )
        if max_decisions_per_caption is not None and max_decisions_per_caption < 0:
            raise ValueError(
                f"max_decisions_per_caption must be >= 0, got {max_decisions_per_caption}"
            )
        caption, position = np.nonzero(token_importance_row >= 0)  # sorted by caption, position
        if caption.size and int(position.min()) == 0:
            raise ValueError("a decision at position 0 (<bos>): no step predicts <bos>")
        counts = np.bincount(caption, minlength=len(captions))
        if max_decisions_per_caption is not None:
            starts = np.cumsum(counts) - counts
            keep = np.arange(caption.size) - starts[caption] < max_decisions_per_caption
            caption, position = caption[keep], position[keep]
            counts = np.bincount(caption, minlength=len(captions))
        image_row = np.asarray(image_row, dtype=np.int64)
        return cls(
            captions=captions,
            image_row=image_row,
            image_id=np.asarray(image_id, dtype=np.int64),
            decode=first_of_image(image_row),
            decision_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            decision_step=(position - 1).astype(np.int64),
            decision_importance_row=token_importance_row[caption, position],
        )

    def __len__(self) -> int:
        """C, the number of captions."""
        return len(self.captions)

    @property
    def decision_counts(self) -> np.ndarray:
        """``[C]`` decisions per caption."""
        return np.diff(self.decision_offsets)

    def decisions_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flattened decisions of caption ``rows``: ``(counts [B], indices [K])``."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.decision_offsets[rows]
        counts = self.decision_offsets[rows + 1] - starts
        total = int(counts.sum())
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        return counts, np.repeat(starts, counts) + within

    def subset(self, rows: np.ndarray) -> CaptionTable:
        """The captions ``rows`` (in that order), with their decisions; ``decode`` is
        recomputed (first caption of each image among the kept ones).

        Example:
            >>> rows = np.array([[-1, 4, -1], [-1, -1, -1], [-1, 2, 6]])
            >>> table = CaptionTable.build(np.ones((3, 3), int), np.array([0, 1, 1]),
            ...                            np.array([5, 6, 6]), rows)
            >>> part = table.subset(np.array([2]))
            >>> part.decision_importance_row.tolist(), part.decode.tolist()
            ([2, 6], [True])
        """
        rows = np.asarray(rows, dtype=np.int64)
        counts, indices = self.decisions_of(rows)
        return CaptionTable(
            captions=self.captions[rows],
            image_row=self.image_row[rows],
            image_id=self.image_id[rows],
            decode=first_of_image(self.image_row[rows]),
            decision_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            decision_step=self.decision_step[indices],
            decision_importance_row=self.decision_importance_row[indices],
        )

    def hinted(self) -> np.ndarray:
        """Rows of the captions with at least one decision."""
        return np.flatnonzero(self.decision_counts > 0)


class CaptionDataset(Dataset):
    """The captions of one split: items, or whole batches with :meth:`__getitems__`.

    ``dataset.__getitems__(indices)`` equals ``collate_captions([dataset[i] for i in
    indices])`` (see :mod:`hint_lightning.data.caption_collate`), built without a loop over
    captions (the image source reads each distinct image once).

    Args:
        table: the split's captions and decisions.
        images: where proposals come from (rows of ``table.image_row``).
        importance: ``[R, M]`` float32 human importance, rows of
            ``table.decision_importance_row``; ``M`` at least every image's proposal count.
    """

    def __init__(self, table: CaptionTable, images: ImageSource, importance: Tensor) -> None:
        self.table = table
        self.images = images
        self.importance = importance

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One caption item (:mod:`hint_lightning.data.caption_collate`)."""
        t = self.table
        features, boxes = self.images.read_image(int(t.image_row[index]))
        _, decisions = t.decisions_of(np.array([index]))
        caption = t.captions[index]
        rows = torch.as_tensor(t.decision_importance_row[decisions])
        return {
            C.FEATURES: features,
            C.BOXES: boxes,
            "caption": caption[caption != PAD_INDEX],
            C.IMAGE_ID: int(t.image_id[index]),
            C.DECODE: bool(t.decode[index]),
            C.DECISION_STEP: t.decision_step[decisions],
            C.DECISION_IMPORTANCE: self.importance[rows, : len(features)],
        }

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The batch of ``indices`` (:mod:`hint_lightning.data.caption_batch`)."""
        t = self.table
        rows = np.asarray(indices, dtype=np.int64)
        features, boxes, mask = self.images.read_batch(t.image_row[rows])
        inputs, targets = teacher_forcing(torch.from_numpy(t.captions[rows]))
        counts, decisions = t.decisions_of(rows)
        row, _ = flatten_decisions(torch.from_numpy(counts))
        step = torch.from_numpy(t.decision_step[decisions])
        importance = self.importance[torch.from_numpy(t.decision_importance_row[decisions])]
        return {
            C.FEATURES: features,
            C.BOXES: boxes,
            C.PROPOSAL_MASK: mask,
            C.CAPTION_INPUTS: inputs,
            C.CAPTION_TARGETS: targets,
            C.IMAGE_ID: torch.from_numpy(t.image_id[rows]),
            C.DECODE: torch.from_numpy(t.decode[rows]),
            C.DECISION_ROW: row,
            C.DECISION_STEP: step,
            C.DECISION_WORD: decision_words(targets, row, step),
            C.DECISION_IMPORTANCE: importance[:, : mask.shape[1]].float(),
        }
