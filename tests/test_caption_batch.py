"""The caption batch: collation of items, teacher forcing, and the flattened decisions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hint_lightning.data import caption_batch as C
from hint_lightning.data.caption_batch import CAPTION_BATCH_KEYS
from hint_lightning.data.caption_collate import collate_captions
from hint_lightning.data.caption_dataset import CaptionDataset, CaptionTable, TensorImages

BOS, EOS = 1, 2


def hand_made_items() -> list[dict]:
    """Three captions: two visual words, none, one; images with 3, 2 and 3 proposals."""
    return [
        {  # "<bos> 5 6 7 8 <eos>": words 6 (step 1) and 8 (step 3) are visual words
            "features": np.full((3, 2), 1.0),
            "boxes": np.zeros((3, 4)),
            "caption": [BOS, 5, 6, 7, 8, EOS],
            "image_id": 11,
            "decode": True,
            "decision_step": [1, 3],
            "decision_importance": [[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]],
        },
        {
            "features": np.full((2, 2), 2.0),
            "boxes": np.zeros((2, 4)),
            "caption": [BOS, 9, EOS],
            "image_id": 12,
        },
        {  # right-padded caption; its visual word 4 is the first word (step 0)
            "features": torch.full((3, 2), 3.0),
            "boxes": torch.zeros(3, 4),
            "caption": torch.tensor([BOS, 4, 5, EOS, 0, 0]),
            "image_id": torch.tensor(13),
            "decode": False,
            "decision_step": np.array([0]),
            "decision_importance": np.array([[0.5, 0.0, 0.25]]),
        },
    ]


def test_collate_pads_proposals_and_builds_teacher_forcing() -> None:
    batch = collate_captions(hand_made_items())
    assert set(batch) == set(CAPTION_BATCH_KEYS)
    assert batch[C.FEATURES].shape == (3, 3, 2)
    assert batch[C.PROPOSAL_MASK].tolist() == [[True] * 3, [True, True, False], [True] * 3]
    assert batch[C.FEATURES][1, 2].tolist() == [0.0, 0.0]
    # Inputs <bos> w_1 .. w_L, targets w_1 .. w_L <eos>, 0 after (0 = ignore).
    assert batch[C.CAPTION_INPUTS].tolist() == [
        [BOS, 5, 6, 7, 8],
        [BOS, 9, 0, 0, 0],
        [BOS, 4, 5, 0, 0],
    ]
    assert batch[C.CAPTION_TARGETS].tolist() == [
        [5, 6, 7, 8, EOS],
        [9, EOS, 0, 0, 0],
        [4, 5, EOS, 0, 0],
    ]
    assert batch[C.IMAGE_ID].tolist() == [11, 12, 13]
    assert batch[C.DECODE].tolist() == [True, False, False]


def test_decisions_are_flattened_over_the_batch_with_their_words_and_importance() -> None:
    batch = collate_captions(hand_made_items())
    assert batch[C.DECISION_ROW].tolist() == [0, 0, 2]
    assert batch[C.DECISION_STEP].tolist() == [1, 3, 0]
    # The word of a decision is the target at its step: the token after it in the caption.
    assert batch[C.DECISION_WORD].tolist() == [6, 8, 4]
    torch.testing.assert_close(
        batch[C.DECISION_IMPORTANCE],
        torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7], [0.5, 0.0, 0.25]]),
    )
    assert batch[C.DECISION_IMPORTANCE].dtype == torch.float32


def test_importance_of_a_smaller_image_is_padded_with_zeros() -> None:
    items = hand_made_items()
    items[1] |= {"decision_step": [0], "decision_importance": [[0.4, 0.6]]}
    batch = collate_captions(items)
    assert batch[C.DECISION_ROW].tolist() == [0, 0, 1, 2]
    assert batch[C.DECISION_IMPORTANCE][2].tolist() == pytest.approx([0.4, 0.6, 0.0])


@pytest.mark.parametrize("step", [4, 5])
def test_a_decision_that_does_not_point_at_a_word_is_refused(step: int) -> None:
    items = hand_made_items()
    items[0]["decision_step"] = [1, step]  # step 4 predicts <eos>, step 5 is out of the caption
    with pytest.raises(ValueError, match="decision"):
        collate_captions(items)


def test_a_finished_batch_passes_through_and_an_empty_list_is_refused() -> None:
    batch = collate_captions(hand_made_items())
    assert collate_captions(batch).keys() == batch.keys()
    with pytest.raises(ValueError, match="empty"):
        collate_captions([])


def table_and_dataset(max_decisions: int | None = None) -> CaptionDataset:
    """Four captions of three in-memory images; token_rows marks the visual words."""
    captions = np.array(
        [
            [BOS, 5, 6, 7, EOS, 0],
            [BOS, 8, EOS, 0, 0, 0],
            [BOS, 4, 5, 6, 7, EOS],
            [BOS, 9, 9, EOS, 0, 0],
        ]
    )
    token_rows = np.full(captions.shape, -1)
    token_rows[0, [2, 3]] = [1, 0]  # caption 0: words 6 and 7, importance rows 1 and 0
    token_rows[2, 1] = 2
    image_row = np.array([0, 0, 2, 1])
    table = CaptionTable.build(
        captions, image_row, image_row + 100, token_rows, max_decisions_per_caption=max_decisions
    )
    generator = torch.Generator().manual_seed(0)
    images = TensorImages(torch.randn(3, 4, 2, generator=generator), torch.rand(3, 4, 4))
    return CaptionDataset(table, images, torch.rand(3, 4, generator=generator))


def test_table_keeps_decisions_per_caption_and_marks_the_first_caption_of_each_image() -> None:
    table = table_and_dataset().table
    assert table.decision_counts.tolist() == [2, 0, 1, 0]
    assert table.decision_step.tolist() == [1, 2, 0]
    assert table.decision_importance_row.tolist() == [1, 0, 2]
    assert table.decode.tolist() == [True, False, True, True]
    assert table.hinted().tolist() == [0, 2]
    assert table_and_dataset(max_decisions=1).table.decision_counts.tolist() == [1, 0, 1, 0]


def test_dataset_batches_equal_the_collated_items() -> None:
    dataset = table_and_dataset()
    indices = [3, 0, 2, 1]
    batch = dataset.__getitems__(indices)
    expected = collate_captions([dataset[i] for i in indices])
    assert set(batch) == set(CAPTION_BATCH_KEYS)
    for key in CAPTION_BATCH_KEYS:
        torch.testing.assert_close(batch[key], expected[key], msg=key)
    assert batch[C.DECISION_ROW].tolist() == [1, 1, 2]
    assert batch[C.DECISION_WORD].tolist() == [6, 7, 4]


def test_subset_keeps_each_caption_with_its_decisions() -> None:
    table = table_and_dataset().table
    part = table.subset(np.array([2, 0]))
    assert part.decision_counts.tolist() == [1, 2]
    assert part.decision_importance_row.tolist() == [2, 1, 0]
    assert part.decode.tolist() == [True, True]
