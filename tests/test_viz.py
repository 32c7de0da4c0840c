"""``hint_lightning.viz``: importance pictures from arrays, and from real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit import TINY_VQA_DATA, quick_overrides

from hint_lightning.compose import compose_train_config
from hint_lightning.train import train
from hint_lightning.viz import figure2, questions
from hint_lightning.viz.__main__ import main as viz_main
from hint_lightning.viz.importance import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    blank_canvas,
    draw_importance_figure,
    hint_comparison_figure,
    importance_overlay,
    normalize_importance,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figure_texts(figure: Any) -> str:
    """Every text of a figure (suptitle and free texts) joined."""
    return "\n".join(text.get_text() for text in figure.texts)


# ------------------------------------------------------------------------------ pure drawing
def test_normalization_is_min_max_for_nonnegative_and_signed_otherwise() -> None:
    assert normalize_importance(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert normalize_importance(np.array([-4.0, 2.0, 0.0])).tolist() == [-1.0, 0.5, 0.0]
    assert normalize_importance(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]
    # Padded proposals neither count for the range nor get a value.
    masked = normalize_importance(np.array([1.0, 3.0, 100.0]), np.array([True, True, False]))
    assert masked.tolist() == [0.0, 1.0, 0.0]


def test_the_overlay_shows_the_strongest_box_where_boxes_overlap() -> None:
    boxes = np.array([[0, 0, 4, 4], [2, 2, 6, 6]])
    layer = importance_overlay(6, 6, boxes, np.array([0.5, -1.0]))
    assert layer.shape == (6, 6, 4)
    assert tuple(layer[0, 0, :3]) == pytest.approx(POSITIVE_COLOR)  # only the first box
    assert tuple(layer[3, 3, :3]) == pytest.approx(NEGATIVE_COLOR)  # both: the stronger one
    assert layer[3, 3, 3] > layer[0, 0, 3] > 0
    assert layer[5, 0, 3] == 0  # no box


def test_figure_has_one_panel_per_importance_plus_the_image(tmp_path: Path) -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[10:30, 20:50] = (255, 200, 0)
    boxes = np.array([[20, 10, 50, 30], [0, 0, 32, 32], [32, 32, 64, 64]], dtype=np.float32)
    panels = [
        ("human importance", np.array([0.9, 0.3, 0.0])),
        ("base: 'no' ✗", np.array([-0.2, 0.5, 0.1])),
        ("HINT: 'yes' ✓", np.array([1.2, 0.1, -0.3])),
    ]
    figure = draw_importance_figure(image, boxes, panels, "Q: is there a yellow shape?")
    assert len(figure.axes) == 4
    assert [ax.get_title() for ax in figure.axes] == ["image", *[name for name, _ in panels]]
    assert figure.get_suptitle() == "Q: is there a yellow shape?"
    path = save_figure(figure, tmp_path / "deep" / "figure.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert not list(path.parent.glob(".*.tmp"))

    without_image = draw_importance_figure(image, boxes, panels[:1], "t", show_image=False)
    assert [ax.get_title() for ax in without_image.axes] == ["human importance"]


def test_bad_shapes_are_refused_with_the_panel_name() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    boxes = np.array([[0, 0, 4, 4]])
    with pytest.raises(ValueError, match="panel 'oops'"):
        draw_importance_figure(image, boxes, [("oops", np.zeros(2))], "t")
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        draw_importance_figure(np.zeros((8, 8)), boxes, [], "t")


def test_comparison_figure_titles_and_blank_canvas_note() -> None:
    boxes = np.array([[0, 0, 320, 240], [100, 100, 600, 400]])
    figure = hint_comparison_figure(
        blank_canvas(480, 640),
        boxes,
        "what color is the bus?",
        "red",
        None,  # no human importance: no panel for it
        [
            ("UpDn", "blue", False, np.array([0.1, -0.2]), None),
            ("HINT", "red", True, np.array([0.3, 0.1]), 0.5),
        ],
        note="image not available",
    )
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["image", "UpDn: 'blue' ✗", "HINT: 'red' ✓\nρ(human) = +0.50"]
    assert "what color is the bus?" in figure.get_suptitle()
    assert "GT: 'red'" in figure.get_suptitle()
    assert "image not available" in figure_texts(figure)
    assert figure.axes[0].get_images()[0].get_array().shape == (480, 640, 3)


def test_vqa_pictures_refuse_captioning_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkpoint whose data info is not VQA's is refused with a pointer to the captioning code.
    monkeypatch.setattr(questions, "stored_run", lambda path: ({}, object()))
    with pytest.raises(ValueError, match=r"hint_lightning\.viz\.captioning"):
        questions.importance_for_questions("captioner.ckpt", [1])


# ----------------------------------------------------------------------- from checkpoints
QUICK = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
    "logger=csv",
)


@pytest.fixture(scope="module")
def tiny_runs(
    easyvqa_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """A baseline and a HINT fine-tune of it, two training steps each."""
    out = tmp_path_factory.mktemp("viz_runs")
    data = f"paths.data_dir={easyvqa_data_dir}"
    base = train(
        compose_train_config(["experiment=easyvqa_cp_updn", data, *QUICK], output_dir=out / "b")
    )
    hint_overrides = ["experiment=easyvqa_cp_hint", data, f"init_from={base['ckpt/best']}"]
    hinted = train(compose_train_config([*hint_overrides, *QUICK], output_dir=out / "h"))
    return {"base": base, "hinted": hinted}


def _first_test_questions(run: dict[str, Any], count: int) -> tuple[list[int], list[str]]:
    """The first questions of the run's official results file, and the answers it wrote."""
    results = json.loads((Path(run["output_dir"]) / "test_results.json").read_text())
    results = sorted(results, key=lambda r: r["question_id"])[:count]
    return [r["question_id"] for r in results], [r["answer"] for r in results]


def test_importance_for_questions_reproduces_the_test_answers(
    tiny_runs: dict[str, dict[str, Any]],
) -> None:
    ids, answers = _first_test_questions(tiny_runs["base"], 5)
    result = questions.importance_for_questions(tiny_runs["base"]["ckpt/best"], ids[::-1])
    assert result["question_ids"].tolist() == ids[::-1]  # in the order asked
    assert result["predictions"] == answers[::-1]
    assert result["task_name"] == "easyvqa_cp_updn" and result["image_note"] is None
    q, n = 5, result["network_importance"].shape[1]
    assert result["network_importance"].shape == result["human_importance"].shape == (q, n)
    assert result["boxes"].shape == (q, n, 4)
    assert all(image.shape == (64, 64, 3) for image in result["images"])
    assert result["boxes"].max() <= 64 and result["boxes"].min() >= 0  # pixels
    assert result["has_importance"].all() and np.isfinite(result["rho"]).all()
    assert np.abs(result["network_importance"]).sum() > 0
    assert all(text.endswith("?") for text in result["questions"])

    with pytest.raises(KeyError, match="not in the test split"):
        questions.importance_for_questions(tiny_runs["base"]["ckpt/best"], [-7])


def test_command_draws_one_figure_per_question(
    tiny_runs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    ids, _ = _first_test_questions(tiny_runs["base"], 2)
    paths = viz_main(
        [
            "--base",
            tiny_runs["base"]["ckpt/best"],
            "--hinted",
            tiny_runs["hinted"]["ckpt/last"],
            "--question-ids",
            *map(str, ids),
            "--output",
            str(tmp_path),
        ]
    )
    assert [p.name for p in paths] == [f"question_{qid}.png" for qid in ids]
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in paths)
    summary = json.loads((tmp_path / "figures.json").read_text())
    assert [entry["question_id"] for entry in summary] == ids
    assert set(summary[0]["models"]) == {"base", "HINT"}

    chosen = viz_main(
        [
            "--base",
            tiny_runs["base"]["ckpt/best"],
            "--hinted",
            tiny_runs["hinted"]["ckpt/last"],
            "--questions",
            "3",
            "--output",
            str(tmp_path / "random"),
        ]
    )
    assert len(chosen) == 3


def test_question_figure_shows_human_base_and_hinted_importance(
    tiny_runs: dict[str, dict[str, Any]],
) -> None:
    ids, _ = _first_test_questions(tiny_runs["base"], 1)
    datamodule, _, _ = questions.load_datamodule(tiny_runs["base"]["ckpt/best"])
    runs = [
        (name, questions.importance_for_questions(ckpt, ids, datamodule=datamodule))
        for name, ckpt in (
            ("UpDn", tiny_runs["base"]["ckpt/best"]),
            ("HINT", tiny_runs["hinted"]["ckpt/last"]),
        )
    ]
    figure = figure2.question_figure(runs, 0)
    titles = [ax.get_title() for ax in figure.axes]
    assert len(titles) == 4 and titles[:2] == ["image", "human importance"]
    assert titles[2].startswith(f"UpDn: {runs[0][1]['predictions'][0]!r}")
    assert titles[3].startswith(f"HINT: {runs[1][1]['predictions'][0]!r}")
    assert "ρ(human)" in titles[3]
    assert runs[0][1]["ground_truth"][0] in figure.get_suptitle()

    other = dict(runs[1][1], ground_truth=["something else"])
    with pytest.raises(ValueError, match="same data"):
        figure2.question_figure([runs[0], ("HINT", other)], 0)


@pytest.mark.slow
def test_features_only_data_draws_boxes_on_a_blank_canvas_of_the_image_size(
    tmp_path: Path, prepared_vqacp: Path
) -> None:
    data_dir = prepared_vqacp
    overrides = [
        "experiment=vqacp_updn",
        f"paths.data_dir={data_dir}",
        *quick_overrides(train=None, val=None, test=None),
        *TINY_VQA_DATA,
        "logger=csv",
    ]
    run = train(compose_train_config(overrides, output_dir=tmp_path / "run"))
    datamodule, _, _ = questions.load_datamodule(run["ckpt/last"])
    ids = questions.choose_question_ids(datamodule, "test", 2)
    assert len(ids) == 2
    result = questions.importance_for_questions(run["ckpt/last"], ids, datamodule=datamodule)
    assert result["images"] == [None, None] and result["image_note"] == questions.NO_IMAGE_NOTE
    assert result["has_importance"].all()
    height, width = (int(v) for v in result["image_sizes"][0])
    assert result["boxes"][0][..., 0::2].max() <= width
    assert result["boxes"][0][..., 1::2].max() <= height

    figure = figure2.question_figure([("base", result), ("HINT", result)], 0)
    assert figure.axes[0].get_title() == "image (not available)"
    assert figure.axes[0].get_images()[0].get_array().shape == (height, width, 3)
    assert "blank canvas" in figure_texts(figure)
    paths = figure2.write_question_figures([("base", result), ("HINT", result)], tmp_path / "f")
    assert len(paths) == 2 and all(p.read_bytes()[:8] == PNG_SIGNATURE for p in paths)


def test_patch_tokens_draw_as_an_importance_grid(tmp_path: Path) -> None:
    """Figure 2 for patches: the grid over the image, base vs grounded, written as a PNG."""
    from hint_lightning.data.importance import patch_boxes
    from hint_lightning.viz.importance import hint_comparison_figure, is_patch_grid, save_figure

    boxes = patch_boxes((64, 64), (8, 8)).astype(np.float32)
    assert is_patch_grid(boxes, 64, 64) and not is_patch_grid(boxes[:-1], 64, 64)
    rng = np.random.default_rng(0)
    figure = hint_comparison_figure(
        rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
        boxes,
        "what shape is in the image",
        "circle",
        rng.random(64),
        [
            ("base", "circle", True, rng.normal(size=64), 0.1),
            ("HINT", "circle", True, rng.normal(size=64), 0.6),
        ],
    )
    assert len(figure.axes) == 4
    assert "most important patches" in figure.texts[-1].get_text()
    path = save_figure(figure, tmp_path / "patches.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
