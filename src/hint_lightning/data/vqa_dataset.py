"""The questions of one VQA split: items, or whole finished batches (``__getitems__``).

A batch is built at once: the feature store reads every distinct image once
(:meth:`~hint_lightning.stores.feature_batches.BatchFeatureStore.read_batch`), the rest are
vectorized gathers of the in-memory per-question arrays. Measurements behind this design:
``docs/data_layers.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hint_lightning.data import batch as B
from hint_lightning.stores.feature_batches import BatchFeatureStore, batch_array
from hint_lightning.stores.vqa_importance import ImportanceRows
from hint_lightning.stores.vqa_questions import QuestionArrays

__all__ = ["VQASplitDataset"]


def _dense(ids: np.ndarray, values: np.ndarray, num_answers: int) -> Tensor:
    """Densifies padded sparse answers.

    Args:
        ids: [B, K] answer ids, -1 where padded.
        values: [B, K] their values.
        num_answers: A.

    Returns:
        [B, A] float32.
    """
    out = batch_array((len(ids), num_answers), torch.float32)
    array = out.numpy()
    array.fill(0.0)
    batch, column = np.nonzero(ids >= 0)
    array[batch, ids[batch, column]] = values[batch, column]
    return out


class VQASplitDataset(Dataset):
    """The questions of one split: items, or whole batches with :meth:`__getitems__`.

    ``dataset[i]`` is one item in the format of :mod:`hint_lightning.data.collate` (sparse
    targets and scores); ``dataset.__getitems__(indices)`` (used by ``DataLoader`` for batched
    fetching) returns the finished batch of :mod:`hint_lightning.data.batch`, equal to
    ``VQACollate(num_answers)([dataset[i] for i in indices])``.

    Args:
        questions: The per-question arrays of the split store.
        rows: [S] int question rows of the split, in dataset order.
        importance: The importance the split carries (human, or a control for train).
        store: The feature store of the questions' images.
        num_answers: A.
    """

    def __init__(
        self,
        questions: QuestionArrays,
        rows: np.ndarray,
        importance: ImportanceRows,
        store: BatchFeatureStore,
        num_answers: int,
    ) -> None:
        self.questions = questions
        self.rows = np.asarray(rows, dtype=np.int64)
        self.importance = importance
        self.store = store
        self.num_answers = num_answers

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def question_ids(self) -> np.ndarray:
        """[S] int64 question ids, in dataset order."""
        return self.questions.question_id[self.rows]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One item (see :mod:`hint_lightning.data.collate`)."""
        q = self.questions
        row = int(self.rows[index])
        features, boxes = self.store.read_image(int(q.image_row[row]))
        importance = self.importance.gather(np.array([row]), self.store.max_boxes)[0]
        targets = q.target_ids[row] >= 0
        scores = q.score_ids[row] >= 0
        return {
            B.FEATURES: features,
            B.BOXES: boxes,
            B.QUESTION_TOKENS: q.tokens[row],
            B.ANSWER_TYPE: int(q.answer_type[row]),
            B.QUESTION_ID: int(q.question_id[row]),
            B.HUMAN_IMPORTANCE: importance[: len(features)],
            B.HAS_IMPORTANCE: bool(self.importance.index[row] >= 0),
            "target_ids": q.target_ids[row][targets],
            "target_values": q.target_scores[row][targets],
            "answer_score_ids": q.score_ids[row][scores],
            "answer_score_values": q.score_values[row][scores],
        }

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The whole batch of ``indices`` at once (see :mod:`hint_lightning.data.batch`)."""
        q = self.questions
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        features, boxes, mask = self.store.read_batch(q.image_row[rows])
        importance = self.importance.gather(rows, features.shape[1])
        return {
            B.FEATURES: features,
            B.BOXES: boxes,
            B.PROPOSAL_MASK: mask,
            B.QUESTION_TOKENS: torch.from_numpy(q.tokens[rows].astype(np.int64)),
            B.TARGETS: _dense(q.target_ids[rows], q.target_scores[rows], self.num_answers),
            B.ANSWER_SCORES: _dense(q.score_ids[rows], q.score_values[rows], self.num_answers),
            B.ANSWER_TYPE: torch.from_numpy(q.answer_type[rows].astype(np.int64)),
            B.HUMAN_IMPORTANCE: torch.from_numpy(importance),
            B.HAS_IMPORTANCE: torch.from_numpy(self.importance.index[rows] >= 0),
            B.QUESTION_ID: torch.from_numpy(q.question_id[rows]),
        }
