"""Collation of per-question VQA items into the batch of :mod:`hint_lightning.data.batch`.

An *item* is a plain dict for one question. Its arrays may be torch tensors or numpy arrays,
its scalars Python numbers, numpy scalars or 0-d tensors:

=========================  =========  ==========================================================
key                        shape      meaning
=========================  =========  ==========================================================
``features``               [N_i, D]   proposal features of the question's image (required)
``boxes``                  [N_i, 4]   boxes x1, y1, x2, y2 normalized to [0, 1] (required)
``question_tokens``        [T_i]      token ids, 0 is padding (required)
``answer_type``            scalar     index into ``ANSWER_TYPES`` (required)
``question_id``            scalar     the dataset's question id (required)
``human_importance``       [N_i]      optional; zeros when missing
``has_importance``         scalar     optional bool; False when missing
``targets``                [A]        dense soft targets, **or** the sparse pair below
``target_ids``             [K_i]      answer indices with a nonzero target
``target_values``          [K_i]      their targets
``answer_scores``          [A]        dense official accuracies, **or** the sparse pair below
``answer_score_ids``       [K_i]      answer indices with a nonzero accuracy
``answer_score_values``    [K_i]      their accuracies
=========================  =========  ==========================================================

Sparse targets and scores (a question has a handful of nonzero answers among thousands of
candidates) are densified to [B, A] here, with one scatter for the whole batch; the number of
answers ``A`` is then needed: bind it with ``functools.partial(collate_vqa, num_answers=A)`` or
use :class:`VQACollate` (both pickle, so they work with DataLoader worker processes).

Proposals are padded to the largest ``N_i`` of the batch: ``features``, ``boxes`` and
``human_importance`` with zeros, ``proposal_mask`` False. Questions are right-padded with 0 to
the longest ``T_i``. All float outputs are float32, ids are int64.

Datasets that gather a whole batch at once (a ``__getitems__`` that indexes in-memory tensors)
may return the finished batch dict instead of a list of items; :func:`collate_vqa` returns such
a dict unchanged, so one ``collate_fn`` serves both paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from hint_lightning.data import batch as B

__all__ = ["VQACollate", "collate_vqa"]

Item = Mapping[str, Any]


def _tensor(value: Any, dtype: torch.dtype) -> Tensor:
    """A tensor of ``dtype`` from a tensor, numpy array or number (no copy when possible)."""
    return torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value).to(dtype)


def _scalars(items: Sequence[Item], key: str, dtype: torch.dtype, default: Any = None) -> Tensor:
    """Stacks one scalar per item into a [B] tensor.

    Args:
        items: B items.
        key: The scalar's key.
        dtype: Output dtype.
        default: Value for items without the key; None makes the key required.

    Returns:
        Tensor of shape [B].
    """
    if default is None:
        values = [item[key] for item in items]
    else:
        values = [item.get(key, default) for item in items]
    return torch.tensor(
        [v.item() if isinstance(v, (Tensor, np.generic)) else v for v in values]
    ).to(dtype)


def _dense_answers(
    items: Sequence[Item], dense_key: str, ids_key: str, values_key: str, num_answers: int | None
) -> Tensor:
    """Builds the [B, A] target or score matrix from dense or sparse item entries.

    Args:
        items: B items; each has ``dense_key`` ([A]) or both ``ids_key`` and ``values_key``.
        dense_key: Key of the dense vector.
        ids_key: Key of the sparse answer indices ([K_i]).
        values_key: Key of the sparse values ([K_i]).
        num_answers: A; required when an item is sparse.

    Returns:
        Float32 tensor of shape [B, A].

    Raises:
        ValueError: If sparse items come without ``num_answers``, or an item has neither form.
    """
    if all(dense_key in item for item in items):
        return torch.stack([_tensor(item[dense_key], torch.float32) for item in items])
    if num_answers is None:
        raise ValueError(
            f"items carry sparse {ids_key!r}/{values_key!r}: pass num_answers "
            "(functools.partial(collate_vqa, num_answers=A) or VQACollate(A))"
        )
    out = torch.zeros(len(items), num_answers, dtype=torch.float32)
    try:
        ids = [_tensor(item[ids_key], torch.int64).reshape(-1) for item in items]
        values = [_tensor(item[values_key], torch.float32).reshape(-1) for item in items]
    except KeyError as error:
        raise ValueError(
            f"every item needs {dense_key!r} or both {ids_key!r} and {values_key!r}"
        ) from error
    counts = torch.tensor([len(i) for i in ids])
    rows = torch.repeat_interleave(torch.arange(len(items)), counts)
    out[rows, torch.cat(ids)] = torch.cat(values)
    return out


def collate_vqa(
    items: Sequence[Item] | Mapping[str, Tensor], num_answers: int | None = None
) -> dict[str, Tensor]:
    """Collates VQA items into one batch (see the module docstring for the item format).

    Args:
        items: B item dicts, or an already collated batch dict (returned unchanged).
        num_answers: A, needed when items carry sparse targets or answer scores.

    Returns:
        The batch: exactly the keys of :data:`hint_lightning.data.batch.VQA_BATCH_KEYS`, with
        ``features`` [B, N, D], ``boxes`` [B, N, 4], ``proposal_mask`` [B, N],
        ``question_tokens`` [B, T], ``targets`` and ``answer_scores`` [B, A], ``answer_type``,
        ``has_importance`` and ``question_id`` [B], ``human_importance`` [B, N]; N = max N_i,
        T = max T_i.

    Raises:
        ValueError: On an empty list, or sparse answers without ``num_answers``.

    Example:
        >>> items = [
        ...     {"features": np.ones((2, 3)), "boxes": np.zeros((2, 4)),
        ...      "question_tokens": np.array([4, 5, 0]), "answer_type": 0, "question_id": 7,
        ...      "target_ids": [1], "target_values": [1.0],
        ...      "answer_score_ids": [1], "answer_score_values": [1.0]},
        ...     {"features": np.ones((1, 3)), "boxes": np.zeros((1, 4)),
        ...      "question_tokens": np.array([6, 0, 0]), "answer_type": 2, "question_id": 9,
        ...      "human_importance": np.array([0.5]), "has_importance": True,
        ...      "target_ids": [0], "target_values": [1.0],
        ...      "answer_score_ids": [0], "answer_score_values": [1.0]},
        ... ]
        >>> batch = collate_vqa(items, num_answers=3)
        >>> batch["features"].shape, batch["proposal_mask"].tolist()
        (torch.Size([2, 2, 3]), [[True, True], [True, False]])
        >>> batch["targets"].tolist(), batch["human_importance"].tolist()
        ([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [[0.0, 0.0], [0.5, 0.0]])
    """
    if isinstance(items, Mapping):
        return dict(items)
    if len(items) == 0:
        raise ValueError("cannot collate an empty list of items")

    features = [_tensor(item[B.FEATURES], torch.float32) for item in items]
    lengths = torch.tensor([f.shape[0] for f in features])
    num_proposals = int(lengths.max())
    proposal_mask = torch.arange(num_proposals)[None, :] < lengths[:, None]

    def padded(key: str, shape: tuple[int, ...]) -> Tensor:
        rows = [
            _tensor(item[key], torch.float32) if key in item else torch.zeros(n, *shape)
            for item, n in zip(items, lengths.tolist(), strict=True)
        ]
        return pad_sequence(rows, batch_first=True)

    tokens = [_tensor(item[B.QUESTION_TOKENS], torch.int64) for item in items]
    has_importance = _scalars(items, B.HAS_IMPORTANCE, torch.bool, default=False)
    human_importance = padded(B.HUMAN_IMPORTANCE, ())
    human_importance = human_importance * has_importance[:, None]
    return {
        B.FEATURES: pad_sequence(features, batch_first=True),
        B.BOXES: padded(B.BOXES, (4,)),
        B.PROPOSAL_MASK: proposal_mask,
        B.QUESTION_TOKENS: pad_sequence(tokens, batch_first=True, padding_value=0),
        B.TARGETS: _dense_answers(items, B.TARGETS, "target_ids", "target_values", num_answers),
        B.ANSWER_SCORES: _dense_answers(
            items, B.ANSWER_SCORES, "answer_score_ids", "answer_score_values", num_answers
        ),
        B.ANSWER_TYPE: _scalars(items, B.ANSWER_TYPE, torch.int64),
        B.HUMAN_IMPORTANCE: human_importance,
        B.HAS_IMPORTANCE: has_importance,
        B.QUESTION_ID: _scalars(items, B.QUESTION_ID, torch.int64),
    }


class VQACollate:
    """A picklable ``collate_fn`` that knows the number of answers.

    Args:
        num_answers: A, the size of the dense ``targets`` and ``answer_scores``.

    Example:
        >>> collate = VQACollate(num_answers=13)
        >>> collate.num_answers
        13
    """

    def __init__(self, num_answers: int) -> None:
        self.num_answers = num_answers

    def __call__(self, items: Sequence[Item] | Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Collates ``items`` with :func:`collate_vqa`."""
        return collate_vqa(items, num_answers=self.num_answers)

    def __repr__(self) -> str:
        return f"VQACollate(num_answers={self.num_answers})"
