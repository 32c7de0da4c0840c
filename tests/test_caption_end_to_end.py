"""COCO captioning end to end on the fixture tree: prepare coco -> coco_updn -> coco_hint ->
evaluate, through the real data files, DataModule, LightningModule and Java caption metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from testkit import quick_overrides

from hint_lightning.compose import compose_train_config
from hint_lightning.data import caption_batch as C
from hint_lightning.data.caption_collate import collate_captions
from hint_lightning.data.caption_datamodule import COCOCaptionDataModule
from hint_lightning.evaluate import evaluate
from hint_lightning.metrics.per_question import read_per_question
from hint_lightning.prepare.coco import prepare_coco
from hint_lightning.prepare.fixture.coco_files import (
    FIXTURE_CATEGORY_WORDS,
    FIXTURE_WORD_COUNT_THRESHOLD,
)
from hint_lightning.prepare.fixture.tree import write_fixture_tree
from hint_lightning.train import train

QUICK = (
    *quick_overrides(train=None, val=None, test=None),
    "data.num_workers=0",
    "data.batch_size=16",
    "data.eval_batch_size=16",
    "model.net.embedding_dim=16",
    "model.net.hidden_dim=16",
    "model.net.attention_dim=8",
    "model.beam_size=2",
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("coco_data")
    write_fixture_tree(data_dir, feature_dim=32)
    prepare_coco(
        data_dir,
        feature_dim=32,
        word_count_threshold=FIXTURE_WORD_COUNT_THRESHOLD,
        progress=False,
    )
    return data_dir


def run(experiment: str, data_dir: Path, out: Path, *extra: str) -> dict[str, Any]:
    overrides = [f"experiment={experiment}", f"paths.data_dir={data_dir}", *QUICK, *extra]
    return train(compose_train_config(overrides, output_dir=out))


def test_training_without_prepared_data_names_the_files_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        run("coco_updn", tmp_path / "nothing", tmp_path / "out")
    message = str(error.value)
    assert "python -m hint_lightning.prepare coco" in message
    assert "karpathy/train.h5" in message and "importance.h5" in message


@pytest.mark.parametrize("family", ["karpathy", "robust"])
def test_datamodule_decisions_are_the_visual_words_with_segmentations(
    prepared: Path, family: str
) -> None:
    datamodule = COCOCaptionDataModule(str(prepared), split_family=family, num_workers=0)
    datamodule.prepare_data()
    datamodule.setup()
    vocab = datamodule.info.vocab
    dataset = datamodule.dataset("train")
    table = dataset.table
    assert table.decision_counts.sum() > 0
    indices = list(range(len(dataset)))
    batch = dataset.__getitems__(indices)
    expected = collate_captions([dataset[i] for i in indices])
    for key in C.CAPTION_BATCH_KEYS:
        torch.testing.assert_close(batch[key], expected[key], msg=key)
    # Every decision word completes a visual word of the fixture's captions; its importance
    # is in [0, 1] and 0 beyond the image's proposals.
    visual = {
        form.split()[-1]
        for forms in FIXTURE_CATEGORY_WORDS.values()
        for pair in forms
        for form in pair
    }
    words = {vocab[int(w)] for w in batch[C.DECISION_WORD]}
    assert words and words <= visual
    importance = batch[C.DECISION_IMPORTANCE]
    assert float(importance.min()) >= 0 and float(importance.max()) <= 1
    assert not importance[~batch[C.PROPOSAL_MASK][batch[C.DECISION_ROW]]].any()
    # Every val/test image is decoded exactly once; references exist for each.
    for split in ("val", "test"):
        split_table = datamodule.dataset(split).table
        decoded = split_table.image_id[split_table.decode]
        assert sorted(decoded.tolist()) == sorted(np.unique(split_table.image_id).tolist())
        assert set(decoded.tolist()) <= set(datamodule.references(split))


def test_hinted_only_keeps_the_captions_with_decisions(prepared: Path) -> None:
    everything = COCOCaptionDataModule(str(prepared), num_workers=0)
    hinted = COCOCaptionDataModule(str(prepared), num_workers=0, hinted_only=True)
    for datamodule in (everything, hinted):
        datamodule.setup()
    all_counts = everything.dataset("train").table.decision_counts
    assert (hinted.dataset("train").table.decision_counts > 0).all()
    assert len(hinted.dataset("train")) == int((all_counts > 0).sum()) < len(all_counts)
    one = COCOCaptionDataModule(str(prepared), num_workers=0, max_decisions_per_caption=1)
    one.setup()
    assert one.dataset("train").table.decision_counts.max() == 1


@pytest.mark.slow
def test_prepare_train_hint_and_evaluate_on_the_fixture(prepared: Path, tmp_path: Path) -> None:
    baseline = run("coco_updn", prepared, tmp_path / "updn")
    assert Path(baseline["ckpt/best"]).is_file()
    for key in ("val/CIDEr", "test/CIDEr", "test/Bleu_4", "test/METEOR", "test/ROUGE_L"):
        assert key in baseline, key
    assert -1 <= baseline["test/rho"] <= 1

    hint = run("coco_hint", prepared, tmp_path / "hint", f"init_from={baseline['ckpt/best']}")
    assert hint["train/hinted_frac"] == 1.0 and hint["train/loss_grounding"] > 0
    results = json.loads((tmp_path / "hint" / "test_results.json").read_text())
    assert results and all(set(r) == {"image_id", "caption"} for r in results)

    cfg = OmegaConf.create(
        {
            "ckpt_path": hint["ckpt/last"],
            "split": "test",
            "data": {},
            "trainer": {
                "_target_": "pytorch_lightning.Trainer",
                "default_root_dir": str(tmp_path / "eval"),
                "accelerator": "cpu",
                "inference_mode": False,
                "enable_progress_bar": False,
            },
        }
    )
    metrics = evaluate(cfg)
    assert metrics["test/CIDEr"] == pytest.approx(hint["test/CIDEr"], abs=1e-6)
    assert metrics["test/rho"] == pytest.approx(hint["test/rho"], abs=1e-5)
    written = json.loads(Path(metrics["results"]).read_text())
    assert written == sorted(results, key=lambda r: r["image_id"])
    references = prepared / "prepared/coco/karpathy/test_references.json"
    test_images = {a["image_id"] for a in json.loads(references.read_text())["annotations"]}
    assert {r["image_id"] for r in written} == test_images
    assert "test/CIDEr" in json.loads((tmp_path / "eval" / "metrics.json").read_text())

    # The evaluation suite at visual-word steps (decision: the word's log-probability).
    suite_cfg = OmegaConf.merge(cfg, {"trainer": {"default_root_dir": str(tmp_path / "suite")}})
    suite_cfg.metrics = compose_train_config(
        ["metrics=[plausibility,faithfulness,fpvg]"], output_dir=tmp_path / "unused"
    ).metrics
    suite = evaluate(suite_cfg)
    records = read_per_question(tmp_path / "suite")
    assert len(records) > 0 and all(r["split"] == "test" for r in records)
    assert all(r["log_prob"] <= 0 and isinstance(r["word"], str) for r in records)
    for record in records:  # FPVG's pass on the decision rows = the teacher-forced pass
        if record["fpvg/accuracy_all"] is not None:
            assert record["fpvg/accuracy_all"] == float(record["correct"]), record
    assert all(value <= 0 for value in suite["test/removal_curve/most_first"] if value is not None)
    assert suite["test/plausibility/rho"] == pytest.approx(suite["test/rho"], abs=1e-5)
    assert (tmp_path / "suite" / "removal_curves.png").is_file()

    cfg.split = "val"
    cfg.trainer.default_root_dir = str(tmp_path / "eval_val")
    on_val = evaluate(cfg)
    assert "val/CIDEr" in on_val and Path(on_val["results"]).name == "val_results.json"
