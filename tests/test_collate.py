"""Tests of VQA item collation (hint_lightning.data.collate)."""

from __future__ import annotations

import functools
import pickle
from typing import Any

import numpy as np
import pytest
import torch

from hint_lightning.data.batch import VQA_BATCH_KEYS
from hint_lightning.data.collate import VQACollate, collate_vqa

NUM_ANSWERS = 5
FEATURE_DIM = 3


def _item(num_proposals: int, question_id: int, rng: np.random.Generator, **extra: Any) -> dict:
    """One item with sparse answers."""
    item = {
        "features": rng.normal(size=(num_proposals, FEATURE_DIM)).astype(np.float32),
        "boxes": rng.uniform(size=(num_proposals, 4)).astype(np.float32),
        "question_tokens": np.array([3, 4, 5, 0], dtype=np.int64),
        "answer_type": 2,
        "question_id": question_id,
        "human_importance": rng.uniform(size=num_proposals).astype(np.float32),
        "has_importance": True,
        "target_ids": np.array([1, 3]),
        "target_values": np.array([0.3, 1.0]),
        "answer_score_ids": np.array([3]),
        "answer_score_values": np.array([1.0]),
    }
    item.update(extra)
    return item


def test_keys_shapes_dtypes_and_padding() -> None:
    rng = np.random.default_rng(0)
    items = [_item(4, 10, rng), _item(2, 11, rng, has_importance=False), _item(3, 12, rng)]
    batch = collate_vqa(items, num_answers=NUM_ANSWERS)
    assert tuple(batch) == VQA_BATCH_KEYS
    assert batch["features"].shape == (3, 4, FEATURE_DIM)
    assert batch["boxes"].shape == (3, 4, 4)
    assert batch["proposal_mask"].tolist() == [
        [True, True, True, True],
        [True, True, False, False],
        [True, True, True, False],
    ]
    assert batch["question_tokens"].shape == (3, 4)
    assert batch["targets"].shape == batch["answer_scores"].shape == (3, NUM_ANSWERS)
    for key in ("features", "boxes", "targets", "answer_scores", "human_importance"):
        assert batch[key].dtype == torch.float32, key
    for key in ("question_tokens", "answer_type", "question_id"):
        assert batch[key].dtype == torch.int64, key
    assert batch["proposal_mask"].dtype == batch["has_importance"].dtype == torch.bool
    # Real proposals are copied, padded ones are zero.
    torch.testing.assert_close(batch["features"][1, :2], torch.from_numpy(items[1]["features"]))
    assert not batch["features"][1, 2:].any() and not batch["boxes"][2, 3:].any()
    assert not batch["human_importance"][~batch["proposal_mask"]].any()
    # A question without human importance gets zeros.
    assert batch["has_importance"].tolist() == [True, False, True]
    assert not batch["human_importance"][1].any()
    torch.testing.assert_close(
        batch["human_importance"][0], torch.from_numpy(items[0]["human_importance"])
    )
    assert batch["question_id"].tolist() == [10, 11, 12]


def test_sparse_answers_densify_like_dense_ones() -> None:
    rng = np.random.default_rng(1)
    sparse = [_item(2, i, rng) for i in range(3)]
    batch = collate_vqa(sparse, num_answers=NUM_ANSWERS)
    expected_targets = torch.tensor([[0.0, 0.3, 0.0, 1.0, 0.0]] * 3)
    torch.testing.assert_close(batch["targets"], expected_targets)
    assert batch["answer_scores"].tolist() == [[0.0, 0.0, 0.0, 1.0, 0.0]] * 3

    dense = [
        {
            k: v
            for k, v in item.items()
            if k not in ("target_ids", "target_values", "answer_score_ids", "answer_score_values")
        }
        | {"targets": batch["targets"][i].numpy(), "answer_scores": batch["answer_scores"][i]}
        for i, item in enumerate(sparse)
    ]
    dense_batch = collate_vqa(dense)  # no num_answers needed
    for key in VQA_BATCH_KEYS:
        torch.testing.assert_close(dense_batch[key], batch[key])


def test_optional_keys_and_tensor_inputs() -> None:
    items = [
        {
            "features": torch.ones(2, FEATURE_DIM, dtype=torch.float64),
            "boxes": torch.zeros(2, 4),
            "question_tokens": torch.tensor([1, 2]),
            "answer_type": torch.tensor(0),
            "question_id": np.int64(7),
            "targets": torch.tensor([1.0, 0.0]),
            "answer_scores": [1.0, 0.0],
        },
        {
            "features": np.ones((1, FEATURE_DIM)),
            "boxes": np.zeros((1, 4)),
            "question_tokens": np.array([3]),  # shorter question: right-padded with 0
            "answer_type": 2,
            "question_id": 8,
            "targets": np.array([0.0, 1.0]),
            "answer_scores": np.array([0.0, 1.0]),
        },
    ]
    batch = collate_vqa(items)
    assert batch["question_tokens"].tolist() == [[1, 2], [3, 0]]
    assert batch["has_importance"].tolist() == [False, False]
    assert batch["human_importance"].shape == (2, 2) and not batch["human_importance"].any()
    assert batch["answer_type"].tolist() == [0, 2] and batch["question_id"].tolist() == [7, 8]
    assert batch["features"].dtype == torch.float32


def test_errors() -> None:
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="empty"):
        collate_vqa([])
    with pytest.raises(ValueError, match="num_answers"):
        collate_vqa([_item(2, 0, rng)])
    broken = _item(2, 0, rng)
    del broken["target_values"]
    with pytest.raises(ValueError, match="target_ids"):
        collate_vqa([broken], num_answers=NUM_ANSWERS)


def test_prebuilt_batch_passes_through() -> None:
    batch = collate_vqa([_item(2, 0, np.random.default_rng(3))], num_answers=NUM_ANSWERS)
    again = VQACollate(NUM_ANSWERS)(batch)
    assert again.keys() == batch.keys()
    assert all(again[k] is batch[k] for k in batch)


def test_collate_fns_pickle_for_workers() -> None:
    items = [_item(3, 0, np.random.default_rng(4))]
    for fn in (VQACollate(NUM_ANSWERS), functools.partial(collate_vqa, num_answers=NUM_ANSWERS)):
        restored = pickle.loads(pickle.dumps(fn))
        torch.testing.assert_close(restored(items)["targets"], fn(items)["targets"])


def test_works_in_a_dataloader() -> None:
    rng = np.random.default_rng(5)
    items = [_item(int(n), i, rng) for i, n in enumerate(rng.integers(10, 101, size=512))]
    loader = torch.utils.data.DataLoader(items, batch_size=256, collate_fn=VQACollate(NUM_ANSWERS))
    batches = list(loader)
    assert [b["features"].shape[0] for b in batches] == [256, 256]
    assert batches[0]["proposal_mask"].sum(1).tolist() == [
        it["features"].shape[0] for it in items[:256]
    ]
