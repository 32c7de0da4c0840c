"""The easy-VQA-CP datasets: the val and hinted carve-outs, and batches by tensor indexing.

The whole store is held as torch tensors (:class:`EasyVQACPTensors`); a dataset builds each
batch with a few index operations (:meth:`EasyVQACPDataset.__getitems__`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hint_lightning.data import batch as B
from hint_lightning.stores.easyvqa import EasyVQACPArrays

__all__ = ["EasyVQACPDataset", "EasyVQACPTensors", "carve_val_and_hinted"]


def _round_half_up(value: float) -> int:
    """``floor(value + 0.5)``."""
    return math.floor(value + 0.5)


def carve_val_and_hinted(
    cp_train: np.ndarray, val_fraction: float, hinted_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits CP-train into train and val, and picks the hinted subset of train.

    Draws, from ``numpy.random.default_rng(seed)``: a permutation of CP-train, whose first
    ``round(val_fraction * len(cp_train))`` entries are val; then a permutation of the rest
    (train), whose first ``round(hinted_fraction * len(train))`` entries are hinted (halves
    round up).

    Args:
        cp_train: Int64 array of shape [M], CP-train question rows.
        val_fraction: Share of CP-train held out for validation, in [0, 1).
        hinted_fraction: Share of train with human importance, in [0, 1].
        seed: Seed of the generator.

    Returns:
        ``(train, val, hinted)``: sorted int64 row arrays; train and val partition
        ``cp_train``; hinted is a subset of train.

    Raises:
        ValueError: If a fraction is out of range.

    Example:
        >>> train, val, hinted = carve_val_and_hinted(np.arange(20), 0.1, 0.5, seed=0)
        >>> len(train), len(val), len(hinted), set(hinted) <= set(train)
        (18, 2, 9, True)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 <= hinted_fraction <= 1.0:
        raise ValueError(f"hinted_fraction must be in [0, 1], got {hinted_fraction}")
    cp_train = np.asarray(cp_train, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cp_train))
    num_val = _round_half_up(val_fraction * len(cp_train))
    val = np.sort(cp_train[order[:num_val]])
    train = np.sort(cp_train[order[num_val:]])
    num_hinted = _round_half_up(hinted_fraction * len(train))
    hinted = np.sort(train[rng.permutation(len(train))[:num_hinted]])
    return train, val, hinted


@dataclass(frozen=True)
class EasyVQACPTensors:
    """A loaded store as torch tensors, shared by the datasets of all splits.

    Attributes:
        features: [I, N, D] float32.
        boxes: [I, N, 4] float32.
        human_importance: [I, N] float32.
        image_index: [Q] int64, the image row of each question.
        tokens: [Q, T] int64.
        answer: [Q] int64.
        answer_type: [Q] int64.
        question_id: [Q] int64.
        num_answers: A.
    """

    features: Tensor
    boxes: Tensor
    human_importance: Tensor
    image_index: Tensor
    tokens: Tensor
    answer: Tensor
    answer_type: Tensor
    question_id: Tensor
    num_answers: int

    @classmethod
    def from_arrays(cls, arrays: EasyVQACPArrays) -> EasyVQACPTensors:
        """Wraps the numpy arrays of a loaded store (no copy)."""
        return cls(
            features=torch.from_numpy(arrays.features),
            boxes=torch.from_numpy(arrays.boxes),
            human_importance=torch.from_numpy(arrays.human_importance),
            image_index=torch.from_numpy(arrays.image_index),
            tokens=torch.from_numpy(arrays.tokens),
            answer=torch.from_numpy(arrays.answer),
            answer_type=torch.from_numpy(arrays.answer_type),
            question_id=torch.from_numpy(arrays.question_id),
            num_answers=len(arrays.answers),
        )


class EasyVQACPDataset(Dataset):
    """The questions of one split; items and whole batches by tensor indexing.

    ``dataset[i]`` is one item in the format of :mod:`hint_lightning.data.collate` (answers as
    sparse ``target_ids``/``answer_score_ids``); ``dataset.__getitems__(indices)`` (used by
    ``DataLoader`` for batched fetching) returns the finished batch of
    :mod:`hint_lightning.data.batch`, equal to ``collate_vqa([dataset[i] for i in indices])``.

    easy-VQA has exactly one answer per question, so both ``targets`` and ``answer_scores``
    are one-hot: the official VQA accuracy of predicting the single human answer (as if
    repeated 10 times) is 1 and of anything else 0, so there is no need to call
    :func:`hint_lightning.metrics.vqa_accuracy.official_answer_scores` here.

    Args:
        tensors: The loaded store.
        rows: Int array of shape [M], the split's question rows.
        has_importance: Bool array of shape [M].
        importance: Float tensor of shape [K, N], the table the importance comes from.
        importance_index: Int array of shape [M], each question's row in ``importance``.
    """

    def __init__(
        self,
        tensors: EasyVQACPTensors,
        rows: np.ndarray,
        has_importance: np.ndarray,
        importance: Tensor,
        importance_index: np.ndarray,
    ) -> None:
        if not len(rows) == len(has_importance) == len(importance_index):
            raise ValueError("rows, has_importance and importance_index must have one length")
        self.tensors = tensors
        self.rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        self.has_importance = torch.as_tensor(np.asarray(has_importance, dtype=bool))
        self.importance = importance
        self.importance_index = torch.as_tensor(np.asarray(importance_index, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One item (see :mod:`hint_lightning.data.collate`)."""
        t = self.tensors
        row = int(self.rows[index])
        image = int(t.image_index[row])
        has = bool(self.has_importance[index])
        importance = self.importance[int(self.importance_index[index])]
        answer = t.answer[row : row + 1]
        one = torch.ones(1)
        return {
            B.FEATURES: t.features[image],
            B.BOXES: t.boxes[image],
            B.QUESTION_TOKENS: t.tokens[row],
            B.ANSWER_TYPE: int(t.answer_type[row]),
            B.QUESTION_ID: int(t.question_id[row]),
            B.HUMAN_IMPORTANCE: importance if has else torch.zeros_like(importance),
            B.HAS_IMPORTANCE: has,
            "target_ids": answer,
            "target_values": one,
            "answer_score_ids": answer,
            "answer_score_values": one,
        }

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The whole batch of ``indices`` at once (see :mod:`hint_lightning.data.batch`)."""
        t = self.tensors
        index = torch.as_tensor(indices, dtype=torch.int64)
        rows = self.rows[index]
        images = t.image_index[rows]
        has = self.has_importance[index]
        importance = self.importance[self.importance_index[index]] * has[:, None]
        features = t.features[images]
        one_hot = torch.nn.functional.one_hot(t.answer[rows], t.num_answers).float()
        return {
            B.FEATURES: features,
            B.BOXES: t.boxes[images],
            B.PROPOSAL_MASK: torch.ones(features.shape[:2], dtype=torch.bool),
            B.QUESTION_TOKENS: t.tokens[rows],
            B.TARGETS: one_hot,
            B.ANSWER_SCORES: one_hot.clone(),
            B.ANSWER_TYPE: t.answer_type[rows],
            B.HUMAN_IMPORTANCE: importance,
            B.HAS_IMPORTANCE: has,
            B.QUESTION_ID: t.question_id[rows],
        }
