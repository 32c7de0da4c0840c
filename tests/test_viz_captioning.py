"""``hint_lightning.viz.captioning``: the paper's Figure 3 from a tiny easy-VQA captioner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hint_lightning.compose import compose_train_config
from hint_lightning.train import train
from hint_lightning.viz import captioning
from hint_lightning.viz.__main__ import main as viz_main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_caption_command_draws_visual_word_importance(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    threads = torch.get_num_threads()
    try:
        run = train(
            compose_train_config(
                [
                    "experiment=easyvqa_caption_updn",
                    f"paths.data_dir={easyvqa_data_dir}",
                    "data.limit_train_images=32",
                    "data.limit_eval_images=8",
                    "data.batch_size=32",
                    "trainer.max_epochs=1",
                    "trainer.limit_train_batches=2",
                    "trainer.limit_val_batches=1",
                    "trainer.limit_test_batches=1",
                    "trainer.enable_progress_bar=false",
                    "trainer.enable_model_summary=false",
                    "trainer.accelerator=cpu",
                ],
                output_dir=tmp_path / "run",
            )
        )
    finally:
        torch.set_num_threads(threads)
    ckpt = run["ckpt/best"]
    assert captioning.is_caption_checkpoint(ckpt)

    out = tmp_path / "figures"
    paths = viz_main(["--base", ckpt, "--hinted", ckpt, "--questions", "2", "--output", str(out)])
    assert len(paths) == 2
    for path in paths:
        assert path.name.startswith("caption_")
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    summary = json.loads((out / "figures.json").read_text())
    assert [entry["png"] for entry in summary] == [p.name for p in paths]
    assert set(summary[0]["models"]) == {"base", "HINT"}

    datamodule, _, info = captioning.load_caption_datamodule(ckpt)
    items = captioning.choose_caption_items(datamodule, "test", 2)
    result = captioning.importance_for_caption_words(ckpt, items, datamodule=datamodule)
    n = info.max_proposals
    assert result["network_importance"].shape == (2, n)
    assert result["human_importance"].shape == (2, n)
    assert result["attention"].shape == (2, n)
    assert result["boxes"].shape == (2, n, 4)
    assert result["image_sizes"].tolist() == [[64, 64], [64, 64]]
    assert all(image.shape == (64, 64, 3) for image in result["images"])
    assert np.isfinite(result["rho"]).all() and result["has_importance"].all()
    for (image_id, caption, position), marked, word, image in zip(
        items, result["questions"], result["ground_truth"], result["image_ids"], strict=True
    ):
        assert int(image) == image_id
        assert marked.split()[position] == f"[{word}]"
        assert marked.replace("[", "").replace("]", "") == caption
    assert all(word in info.vocab for word in result["predictions"])
