"""The embedded caption smoke data (easy-VQA images, shape and color captions) and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hint_lightning import caption_demo
from hint_lightning.data import caption_batch as C
from hint_lightning.data.easyvqa_captions import (
    CAPTION_TEMPLATES,
    EasyVQACaptionDataModule,
    image_colors_and_shapes,
)
from hint_lightning.stores.easyvqa import COLOR_WORDS, SHAPE_WORDS, EasyVQACPArrays

TOKENS = ("<pad>", "<unk>", "a", "blue", "circle", "color", "is", "no", "not", "present")
TOKENS += ("red", "rectangle", "shape", "the", "there", "triangle", "what")
ANSWERS = ("circle", "red", "yes", "no", "blue", "triangle", "rectangle")


def store_with(questions: list[tuple[int, str, str]], num_images: int) -> EasyVQACPArrays:
    """A minimal store: ``(image, question, answer)`` triples, nothing else that matters."""
    index = {t: i for i, t in enumerate(TOKENS)}
    tokens = np.zeros((len(questions), 8), dtype=np.int64)
    for row, (_, question, _) in enumerate(questions):
        words = [index[w] for w in question.split()]
        tokens[row, : len(words)] = words
    count = len(questions)
    return EasyVQACPArrays(
        image_id=np.arange(num_images),
        features=np.zeros((num_images, 2, 3), np.float32),
        boxes=np.zeros((num_images, 2, 4), np.float32),
        human_importance=np.zeros((num_images, 2), np.float32),
        question_id=np.arange(count),
        image_index=np.array([image for image, _, _ in questions]),
        tokens=tokens,
        answer=np.array([ANSWERS.index(answer) for _, _, answer in questions]),
        answer_type=np.zeros(count, np.int64),
        template=np.zeros(count, np.int64),
        question_type=np.array(["what"] * count, dtype=object),
        question=np.array([q for _, q, _ in questions], dtype=object),
        split=np.zeros(count, np.int8),
        answers=ANSWERS,
        tokens_vocab=TOKENS,
        templates=("t",),
    )


def test_color_and_shape_come_from_answers_questions_and_elimination() -> None:
    arrays = store_with(
        [
            (0, "what color is the circle", "red"),  # color from the answer, shape named
            (1, "is there not a circle", "no"),  # negated "no": a circle is there
            (1, "is a blue shape present", "yes"),
            (2, "is there a circle", "no"),  # circle and triangle ruled out: a rectangle
            (2, "is there a triangle", "no"),
            (2, "is a red shape present", "no"),  # absent colors leave several: unknown
        ],
        num_images=3,
    )
    colors, shapes = image_colors_and_shapes(arrays)
    assert [COLOR_WORDS[c] if c >= 0 else None for c in colors] == ["red", "blue", None]
    assert [SHAPE_WORDS[s] for s in shapes] == ["circle", "circle", "rectangle"]


def test_contradicting_questions_are_an_error_naming_the_image() -> None:
    arrays = store_with(
        [(0, "what color is the circle", "red"), (0, "is a blue shape present", "yes")], 1
    )
    with pytest.raises(ValueError, match="image 0"):
        image_colors_and_shapes(arrays)


@pytest.fixture(scope="module")
def datamodule(easyvqa_data_dir: Path) -> EasyVQACaptionDataModule:
    module = EasyVQACaptionDataModule(data_dir=str(easyvqa_data_dir), hinted_fraction=0.25)
    module.prepare_data()
    module.setup()
    return module


def test_every_evaluation_caption_has_one_decision_at_its_shape_word(
    datamodule: EasyVQACaptionDataModule,
) -> None:
    vocab = datamodule.info.vocab
    for split in ("val", "test"):
        dataset = datamodule.dataset(split)
        assert (dataset.table.decision_counts == 1).all()
        batch = dataset.__getitems__(list(range(50)))
        assert {vocab[int(w)] for w in batch[C.DECISION_WORD]} <= set(SHAPE_WORDS)
        assert batch[C.DECISION_ROW].tolist() == list(range(50))
        # Human importance is the store's shape-mask importance of the caption's image.
        assert batch[C.DECISION_IMPORTANCE].shape == (50, datamodule.info.max_proposals)
        assert float(batch[C.DECISION_IMPORTANCE].max()) > 0.5


def test_captions_and_references_name_the_images_shape_and_color(
    datamodule: EasyVQACaptionDataModule,
) -> None:
    dataset = datamodule.dataset("test")
    references = datamodule.references("test")
    assert len(references) * len(CAPTION_TEMPLATES) == len(dataset)
    vocab = datamodule.info.vocab
    for index in range(0, 50, 7):
        item = dataset[index]
        words = [vocab[int(t)] for t in item["caption"][1:-1]]
        assert " ".join(words) in references[item[C.IMAGE_ID]]
        shape = words[int(item[C.DECISION_STEP][0])]
        assert shape in SHAPE_WORDS and any(c in words for c in COLOR_WORDS)


def test_only_the_hinted_training_images_carry_importance(
    datamodule: EasyVQACaptionDataModule, easyvqa_data_dir: Path
) -> None:
    table = datamodule.dataset("train").table
    hinted_share = (table.decision_counts > 0).mean()
    assert hinted_share == pytest.approx(0.25, abs=0.01)
    only = EasyVQACaptionDataModule(
        data_dir=str(easyvqa_data_dir), hinted_fraction=0.25, hinted_only=True
    )
    only.setup()
    assert (only.dataset("train").table.decision_counts == 1).all()
    assert len(only.dataset("train")) == int((table.decision_counts > 0).sum())


@pytest.mark.slow
def test_caption_demo_runs_baseline_then_hint_as_a_study(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    table = caption_demo.main(
        [
            "--seeds",
            "0",
            "--output-dir",
            str(tmp_path),
            f"paths.data_dir={easyvqa_data_dir}",
            "data.limit_train_images=48",
            "data.limit_eval_images=12",
            "data.batch_size=32",
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
        ]
    )
    assert [row["id"] for row in table["rows"]] == ["updn", "lambda0", "hint"]
    for row in table["rows"]:
        for key in ("test/Bleu_4", "test/CIDEr", "test/rho", "val/CIDEr"):
            assert row[key]["mean"] is not None, (row["id"], key)
    hint = json.loads((tmp_path / "hint" / "seed0" / "metrics.json").read_text())
    control = json.loads((tmp_path / "lambda0" / "seed0" / "metrics.json").read_text())
    assert hint["train/loss_grounding"] > 0 and "train/loss_grounding" not in control
    results = json.loads((tmp_path / "hint" / "seed0" / "test_results.json").read_text())
    assert len(results) == 12 and set(results[0]) == {"image_id", "caption"}
    assert "+ HINT at visual words" in (tmp_path / "study_results.md").read_text()
