"""Collation of per-caption items into the batch of :mod:`hint_lightning.data.caption_batch`.

An *item* is a plain dict for one caption. Arrays may be torch tensors or numpy arrays,
scalars Python numbers, numpy scalars or 0-d tensors:

===========================  ==========  ========================================================
key                          shape       meaning
===========================  ==========  ========================================================
``features``                 [N_i, D]    proposal features of the caption's image (required)
``boxes``                    [N_i, 4]    boxes x1, y1, x2, y2 normalized to [0, 1] (required)
``caption``                  [L_i]       ``<bos> w_1 .. w_L <eos>``, optionally right-padded
                                         with 0 (required)
``image_id``                 scalar      the dataset's image id (required)
``decode``                   scalar      optional bool; False when missing
``decision_step``            [k_i]       optional: the teacher-forcing step of each visual-word
                                         decision (token ``caption[step + 1]`` is the word)
``decision_importance``      [k_i, N_i]  human importance of the proposals for each decision
===========================  ==========  ========================================================

Proposals are padded to the largest ``N_i`` (features, boxes and importance with zeros,
``proposal_mask`` False); captions become teacher-forcing ``caption_inputs`` and
``caption_targets`` (:func:`teacher_forcing`); decisions are flattened over the batch
(:func:`flatten_decisions`), with ``decision_word`` read from the targets. Float outputs are
float32, ids int64. A finished batch dict (from a dataset's ``__getitems__``) is returned
unchanged, so one ``collate_fn`` serves both paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from hint_lightning.data import caption_batch as C
from hint_lightning.text.tokens import EOS_INDEX, PAD_INDEX

__all__ = ["collate_captions", "decision_words", "flatten_decisions", "teacher_forcing"]

Item = Mapping[str, Any]


def _tensor(value: Any, dtype: torch.dtype) -> Tensor:
    """A tensor of ``dtype`` from a tensor, numpy array or number."""
    return torch.as_tensor(value if isinstance(value, Tensor) else np.asarray(value)).to(dtype)


def teacher_forcing(captions: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs and targets of teacher forcing from whole captions.

    Args:
        captions: ``[B, L]`` ``<bos> w_1 .. w_L <eos>``, right-padded with 0 (no 0 inside).

    Returns:
        ``(inputs [B, T], targets [B, T])`` with ``T`` the longest caption's word count plus
        one: targets ``w_1 .. w_L <eos>``, inputs ``<bos> w_1 .. w_L``, both 0 after.

    Example:
        >>> inputs, targets = teacher_forcing(torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]]))
        >>> inputs.tolist(), targets.tolist()
        ([[1, 5, 6], [1, 7, 0]], [[5, 6, 2], [7, 2, 0]])
    """
    lengths = (captions != PAD_INDEX).sum(dim=1)
    steps = max(int(lengths.max()) - 1, 1)
    targets = captions[:, 1 : steps + 1]
    inputs = captions[:, :steps].masked_fill(targets == PAD_INDEX, PAD_INDEX)
    return inputs, targets


def flatten_decisions(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Which row each flattened decision belongs to, and its index within the row.

    Args:
        counts: ``[B]`` decisions per row.

    Returns:
        ``(row [K], within [K])``, ``K = counts.sum()``, rows ascending.

    Example:
        >>> row, within = flatten_decisions(torch.tensor([2, 0, 1]))
        >>> row.tolist(), within.tolist()
        ([0, 0, 2], [0, 1, 0])
    """
    counts = counts.to(torch.int64)
    row = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    starts = torch.cumsum(counts, dim=0) - counts
    within = torch.arange(row.numel()) - starts[row]
    return row, within


def decision_words(targets: Tensor, row: Tensor, step: Tensor) -> Tensor:
    """``targets[row, step]``, checked: every decision must predict a real word.

    Args:
        targets: ``[B, T]`` teacher-forcing targets.
        row: ``[K]`` decision rows.
        step: ``[K]`` decision steps.

    Returns:
        ``[K]`` word ids.

    Raises:
        ValueError: when a step is out of the caption or its target is ``<pad>``/``<eos>``.
    """
    if row.numel() == 0:
        return row.new_zeros(0)
    if int(step.min()) < 0 or int(step.max()) >= targets.shape[1]:
        raise ValueError(f"decision steps {step.tolist()} outside 0..{targets.shape[1] - 1}")
    words = targets[row, step]
    bad = words <= EOS_INDEX
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"decision {k} (row {int(row[k])}, step {int(step[k])}) predicts token "
            f"{int(words[k])}, not a word: decision steps must point at visual words"
        )
    return words


def collate_captions(items: Sequence[Item] | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Collates caption items into one batch (item format: module docstring).

    Args:
        items: B item dicts, or an already collated batch dict (returned unchanged).

    Returns:
        The batch: exactly :data:`hint_lightning.data.caption_batch.CAPTION_BATCH_KEYS`.

    Raises:
        ValueError: on an empty list, or a decision that does not point at a word.

    Example:
        >>> items = [
        ...     {"features": np.ones((2, 3)), "boxes": np.zeros((2, 4)), "image_id": 7,
        ...      "caption": [1, 5, 6, 2], "decision_step": [1],
        ...      "decision_importance": [[0.2, 0.9]]},
        ...     {"features": np.ones((1, 3)), "boxes": np.zeros((1, 4)), "image_id": 9,
        ...      "caption": [1, 7, 2], "decode": True},
        ... ]
        >>> batch = collate_captions(items)
        >>> batch["caption_inputs"].tolist(), batch["caption_targets"].tolist()
        ([[1, 5, 6], [1, 7, 0]], [[5, 6, 2], [7, 2, 0]])
        >>> batch["decision_row"].tolist(), batch["decision_word"].tolist()
        ([0], [6])
        >>> batch["proposal_mask"].tolist(), batch["decision_importance"].shape
        ([[True, True], [True, False]], torch.Size([1, 2]))
    """
    if isinstance(items, Mapping):
        return dict(items)
    if len(items) == 0:
        raise ValueError("cannot collate an empty list of items")
    features = [_tensor(item[C.FEATURES], torch.float32) for item in items]
    lengths = torch.tensor([f.shape[0] for f in features])
    num_proposals = int(lengths.max())
    captions = pad_sequence(
        [_tensor(item["caption"], torch.int64).reshape(-1) for item in items],
        batch_first=True,
        padding_value=PAD_INDEX,
    )
    inputs, targets = teacher_forcing(captions)
    steps = [_tensor(item.get(C.DECISION_STEP, ()), torch.int64).reshape(-1) for item in items]
    importance = [
        F.pad(
            _tensor(item.get(C.DECISION_IMPORTANCE, np.zeros((0, n))), torch.float32).reshape(
                len(step), n
            ),
            (0, num_proposals - n),
        )
        for item, step, n in zip(items, steps, lengths.tolist(), strict=True)
    ]
    row, _ = flatten_decisions(torch.tensor([len(s) for s in steps]))
    step = torch.cat(steps)
    return {
        C.FEATURES: pad_sequence(features, batch_first=True),
        C.BOXES: pad_sequence(
            [_tensor(i[C.BOXES], torch.float32) for i in items], batch_first=True
        ),
        C.PROPOSAL_MASK: torch.arange(num_proposals)[None, :] < lengths[:, None],
        C.CAPTION_INPUTS: inputs,
        C.CAPTION_TARGETS: targets,
        C.IMAGE_ID: torch.tensor([int(item[C.IMAGE_ID]) for item in items], dtype=torch.int64),
        C.DECODE: torch.tensor([bool(item.get(C.DECODE, False)) for item in items]),
        C.DECISION_ROW: row,
        C.DECISION_STEP: step,
        C.DECISION_WORD: decision_words(targets, row, step),
        C.DECISION_IMPORTANCE: torch.cat(importance)
        if importance
        else torch.zeros(0, num_proposals),
    }
