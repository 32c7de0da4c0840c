"""The paper's Figure 2, one PNG per question: base model next to HINTed model.

The inputs are outputs of :func:`hint_lightning.viz.questions.importance_for_questions`, one
per model, for the same questions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hint_lightning.utils.io import write_json
from hint_lightning.viz.importance import blank_canvas, hint_comparison_figure, save_figure

__all__ = ["check_same_questions", "question_figure", "write_question_figures"]


def check_same_questions(runs: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Refuse results of models that were not asked the same questions on the same data.

    Args:
        runs: ``(model name, importance_for_questions output)`` per model.

    Raises:
        ValueError: naming the model whose questions or ground truth differ from the first's.
    """
    if not runs:
        raise ValueError("no model results to draw")
    _, first = runs[0]
    for name, result in runs[1:]:
        same_ids = np.array_equal(result["question_ids"], first["question_ids"])
        if not same_ids or result["ground_truth"] != first["ground_truth"]:
            raise ValueError(
                f"{name}: its questions or ground-truth answers differ from those of "
                f"{runs[0][0]}: were both checkpoints trained on the same data?"
            )


def question_figure(runs: Sequence[tuple[str, dict[str, Any]]], index: int) -> Figure:
    """Figure 2 for question ``index`` of the results: image, human importance, each model.

    Args:
        runs: ``(model name, importance_for_questions output)`` per model (e.g. base, HINT).
        index: the question's position in the results.

    Returns:
        The figure; when the dataset has no pixels, the boxes are drawn on a blank canvas of
        the image's size and the figure says so.
    """
    check_same_questions(runs)
    first = runs[0][1]
    image = first["images"][index]
    height, width = (int(v) for v in first["image_sizes"][index])
    note, image_title = first.get("image_note"), "image"
    if image is None:
        image = blank_canvas(height, width)
        note = note or "image not available"
        note, image_title = f"{note}: boxes drawn on a blank canvas", "image (not available)"
    has_human = bool(first["has_importance"][index])
    models = [
        (
            name,
            result["predictions"][index],
            bool(result["correct"][index]),
            result["network_importance"][index],
            float(result["rho"][index]) if has_human else None,
        )
        for name, result in runs
    ]
    qid = int(first["question_ids"][index])
    return hint_comparison_figure(
        image,
        first["boxes"][index],
        f"{first['questions'][index]} (question {qid}, {first['split']})",
        first["ground_truth"][index],
        first["human_importance"][index] if has_human else None,
        models,
        mask=first["proposal_mask"][index],
        note=note,
        image_title=image_title,
    )


def write_question_figures(
    runs: Sequence[tuple[str, dict[str, Any]]], output_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write ``question_<id>.png`` per question and ``figures.json`` (answers, rho) in a folder.

    Args:
        runs: ``(model name, importance_for_questions output)`` per model.
        output_dir: the folder (created if needed).

    Returns:
        The PNG paths, in question order.
    """
    check_same_questions(runs)
    output_dir = Path(output_dir)
    first = runs[0][1]
    paths, summary = [], []
    for index, qid in enumerate(first["question_ids"].tolist()):
        figure = question_figure(runs, index)
        paths.append(save_figure(figure, output_dir / f"question_{qid}.png"))
        summary.append(
            {
                "question_id": qid,
                "question": first["questions"][index],
                "ground_truth": first["ground_truth"][index],
                "png": paths[-1].name,
                "models": {
                    name: {
                        "checkpoint": result["ckpt_path"],
                        "answer": result["predictions"][index],
                        "correct": bool(result["correct"][index]),
                        "rho": _finite_or_none(result["rho"][index]),
                    }
                    for name, result in runs
                },
            }
        )
    write_json(output_dir / "figures.json", summary)
    return paths


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
