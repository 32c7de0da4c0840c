"""The paper's Figure 3: the importance behind one visual word of a caption.

:func:`importance_for_caption_words` mirrors
:func:`hint_lightning.viz.questions.importance_for_questions` for captioning checkpoints.
``items`` are ``(image_id, caption, word position)`` triples (the position counts the
caption's words from 0, which is the teacher-forcing step of that word); for each, the
decision is the ground-truth word at that step, ``o_t = logits[b, t, w_t]``, and its network
importance is ``CaptionModule.decision_importance`` (the full importance of
:mod:`hint_lightning.models.updn_captioner`, one gradient per decision). The human importance is
that of the word's category (the batch's ``decision_importance``). It returns the keys of the
VQA function, with ``questions`` holding the caption with the word marked (e.g. ``"a red
[circle]"``), ``ground_truth`` the visual word and ``predictions`` the word the model
generates at that step under teacher forcing; ``question_ids`` are the captions' rows in the
split (plus ``word_positions``).

:func:`choose_caption_items` picks the first captions of a split that have a visual word with
human importance; :func:`write_caption_figures` draws base vs HINTed captioner with
:func:`hint_lightning.viz.importance.draw_importance_figure` (one ``caption_<row>_<pos>.png``
per item, and ``figures.json``). ``python -m hint_lightning.viz`` picks this variant when the
checkpoint's stored data info is a :class:`~hint_lightning.data.caption_batch.CaptionDataInfo`.

easy-VQA captions have pixels (the ``easy-vqa`` package's PNGs); COCO keeps features only:
the boxes are drawn on a blank canvas of the image's size (when the feature store knows it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from hint_lightning.data import caption_batch as C
from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.evaluate import stored_run
from hint_lightning.metrics.grounding import spearman_rank_correlation
from hint_lightning.stored_run import StoredRun, build_datamodule
from hint_lightning.utils.io import write_json
from hint_lightning.viz.importance import (
    _answer_title,
    blank_canvas,
    draw_importance_figure,
    save_figure,
)
from hint_lightning.viz.questions import DEFAULT_IMAGE_SIZE, NO_IMAGE_NOTE, SPLITS, load_model

__all__ = [
    "caption_run",
    "choose_caption_items",
    "importance_for_caption_words",
    "is_caption_checkpoint",
    "load_caption_datamodule",
    "write_caption_figures",
]


def is_caption_checkpoint(ckpt_path: str) -> bool:
    """Whether ``ckpt_path`` stores a captioning run."""
    return isinstance(stored_run(ckpt_path)[1], CaptionDataInfo)


def caption_run(ckpt_path: str) -> tuple[DictConfig, CaptionDataInfo]:
    """The stored run config and caption data info of a captioning checkpoint.

    Raises:
        ValueError: for other checkpoints (e.g. a VQA model's).
    """
    run_cfg, info = stored_run(ckpt_path)
    if not isinstance(info, CaptionDataInfo):
        raise ValueError(
            f"{ckpt_path} is not a captioning checkpoint ({type(info).__name__}): draw it with "
            "hint_lightning.viz.questions"
        )
    return run_cfg, info


def load_caption_datamodule(
    ckpt_path: str, data_dir: str | None = None
) -> tuple[pl.LightningDataModule, DictConfig, CaptionDataInfo]:
    """The caption DataModule a checkpoint was trained on, prepared and set up.

    Raises:
        ValueError: when the data's vocabulary differs from the checkpoint's.
    """
    run_cfg, info = caption_run(ckpt_path)
    overrides = None if data_dir is None else {"data_dir": str(data_dir)}
    datamodule: Any = build_datamodule(StoredRun(str(ckpt_path), run_cfg, info), overrides)
    datamodule.prepare_data()
    datamodule.setup("test")
    if tuple(datamodule.info.vocab) != tuple(info.vocab):
        raise ValueError(
            f"the vocabulary of the data ({datamodule.info.name}) differs from the one "
            f"{ckpt_path} was trained with"
        )
    return datamodule, run_cfg, info


def _words(tokens: np.ndarray, vocab: Sequence[str]) -> list[str]:
    """The caption's words (``<bos>``, ``<eos>`` and padding dropped; ``<unk>`` kept)."""
    return [vocab[int(t)] for t in tokens if int(t) >= 3]


def _dataset(datamodule: Any, split: str) -> Any:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return datamodule.dataset(split)


def choose_caption_items(
    datamodule: Any, split: str = "test", count: int = 4
) -> list[tuple[int, str, int]]:
    """The first ``count`` captions of ``split`` with a visual word that has human importance.

    Returns:
        ``(image_id, caption, word position)`` per caption (its first such word).
    """
    table = _dataset(datamodule, split).table
    vocab = datamodule.info.vocab
    items = []
    for row in np.flatnonzero(table.decision_counts > 0)[:count].tolist():
        step = int(table.decision_step[table.decision_offsets[row]])
        caption = " ".join(_words(table.captions[row], vocab))
        items.append((int(table.image_id[row]), caption, step))
    return items


def _rows_and_decisions(
    table: Any, vocab: Sequence[str], items: Sequence[tuple[int, str, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Caption rows of ``items`` and the table index of each item's decision.

    Raises:
        KeyError: naming items whose caption is not in the split or whose word has no human
            importance.
    """
    texts = {
        (int(image_id), " ".join(_words(tokens, vocab))): row
        for row, (image_id, tokens) in enumerate(zip(table.image_id, table.captions, strict=True))
    }
    rows, decisions, missing = [], [], []
    for image_id, caption, position in items:
        row = texts.get((int(image_id), " ".join(str(caption).split())))
        found = None
        if row is not None:
            start, end = table.decision_offsets[row], table.decision_offsets[row + 1]
            hits = np.flatnonzero(table.decision_step[start:end] == int(position))
            found = int(start + hits[0]) if len(hits) else None
        if found is None:
            missing.append((image_id, caption, position))
        else:
            rows.append(row)
            decisions.append(found)
    if missing:
        raise KeyError(f"no visual word with human importance at these items: {missing[:5]}")
    return np.asarray(rows, dtype=np.int64), np.asarray(decisions, dtype=np.int64)


def _images(datamodule: Any, dataset: Any, image_ids: np.ndarray) -> tuple[list, list, Any]:
    """Pixels (or None), sizes (H, W) and the note of the images."""
    from hint_lightning.data.easyvqa_captions import EasyVQACaptionDataModule

    if isinstance(datamodule, EasyVQACaptionDataModule):
        from hint_lightning.prepare.easyvqa_images import load_images
        from hint_lightning.prepare.easyvqa_source import EasyVQASource

        paths = EasyVQASource.from_package().image_paths
        images = [load_images([paths[int(i)]])[0] for i in image_ids]
        return images, [image.shape[:2] for image in images], None
    store = getattr(dataset, "images", None)
    sizes = []
    for image_id in image_ids.tolist():
        if callable(getattr(store, "image_size", None)):
            width, height = store.image_size(int(image_id))
            sizes.append((height, width))
        else:
            sizes.append(DEFAULT_IMAGE_SIZE)
    return [None] * len(image_ids), sizes, NO_IMAGE_NOTE


def importance_for_caption_words(
    ckpt_path: str,
    items: Sequence[tuple[int, str, int]],
    split: str = "test",
    *,
    data_dir: str | None = None,
    datamodule: pl.LightningDataModule | None = None,
) -> dict[str, Any]:
    """Network importance of visual words of captions (the paper's Figure 3).

    Args:
        ckpt_path: a captioning checkpoint.
        items: ``(image_id, caption, word position)`` per picture (e.g. from
            :func:`choose_caption_items`).
        split: the split the images come from.
        data_dir: overrides the stored ``data.data_dir``.
        datamodule: a set-up caption DataModule to reuse; built from the checkpoint when None.

    Returns:
        The keys of :func:`hint_lightning.viz.questions.importance_for_questions` (see the
        module docstring) plus ``word_positions`` [Q] int64.

    Raises:
        KeyError: naming items that are not visual words with human importance in the split.
        ValueError: for a checkpoint that is not a captioner's, or data that does not fit it.
    """
    if datamodule is None:
        datamodule, run_cfg, info = load_caption_datamodule(ckpt_path, data_dir)
    else:
        run_cfg, info = caption_run(ckpt_path)
        if tuple(datamodule.info.vocab) != tuple(info.vocab):
            raise ValueError(f"the given DataModule's vocabulary differs from {ckpt_path}'s")
    model: Any = load_model(ckpt_path, run_cfg, info)  # type: ignore[arg-type]
    dataset = _dataset(datamodule, split)
    table, vocab = dataset.table, info.vocab
    rows, chosen = _rows_and_decisions(table, vocab, items)

    # One batch of the captions; keep exactly one decision (the chosen word) per caption.
    batch = dataset.__getitems__(rows.tolist())
    _, all_decisions = table.decisions_of(rows)
    keep = torch.as_tensor([int(np.flatnonzero(all_decisions == d)[0]) for d in chosen])
    for key in (C.DECISION_ROW, C.DECISION_STEP, C.DECISION_WORD, C.DECISION_IMPORTANCE):
        batch[key] = batch[key].index_select(0, keep)
    decisions, importance, attention = model.decision_importance(batch)
    with torch.no_grad():
        logits, _ = model.net(decisions.features, decisions.boxes, decisions.inputs, decisions.mask)
    predicted = decisions.at_step(logits).argmax(dim=1)
    word = batch[C.DECISION_WORD]
    mask = decisions.mask
    human = batch[C.DECISION_IMPORTANCE]
    rho = spearman_rank_correlation(importance, human, mask)

    positions = batch[C.DECISION_STEP].numpy().astype(np.int64)
    captions = []
    for row, position in zip(rows.tolist(), positions.tolist(), strict=True):
        words = _words(table.captions[row], vocab)
        words[position] = f"[{words[position]}]"
        captions.append(" ".join(words))
    image_ids = table.image_id[rows].astype(np.int64)
    images, sizes, note = _images(datamodule, dataset, image_ids)
    image_sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    heights, widths = image_sizes[:, 0], image_sizes[:, 1]
    scale = np.stack([widths, heights, widths, heights], axis=1)[:, None, :].astype(np.float32)
    return {
        "task_name": str(run_cfg.get("task_name", "")),
        "ckpt_path": str(ckpt_path),
        "split": split,
        "dataset": info.name,
        "image_note": note,
        "question_ids": rows,
        "word_positions": positions,
        "questions": captions,
        "ground_truth": [vocab[int(w)] for w in word],
        "predictions": [vocab[int(w)] for w in predicted],
        "correct": (predicted == word).numpy(),
        "network_importance": importance.numpy().astype(np.float32),
        "attention": attention.numpy().astype(np.float32),
        "human_importance": human.numpy().astype(np.float32),
        "has_importance": np.ones(len(rows), dtype=bool),
        "proposal_mask": mask.numpy(),
        "rho": rho.detach().numpy().astype(np.float64),
        "boxes": decisions.boxes.numpy() * scale,
        "image_ids": image_ids,
        "image_sizes": image_sizes,
        "images": images,
    }


def write_caption_figures(
    runs: Sequence[tuple[str, dict[str, Any]]], output_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write ``caption_<row>_<pos>.png`` per item and ``figures.json`` in a folder.

    Args:
        runs: ``(model name, importance_for_caption_words output)`` per model (same items).
        output_dir: the folder (created if needed).

    Returns:
        The PNG paths, in item order.
    """
    from hint_lightning.viz.figure2 import _finite_or_none, check_same_questions

    check_same_questions(runs)
    output_dir = Path(output_dir)
    first = runs[0][1]
    paths, summary = [], []
    for index, row in enumerate(first["question_ids"].tolist()):
        image = first["images"][index]
        note, image_title = first.get("image_note"), "image"
        if image is None:
            image = blank_canvas(*(int(v) for v in first["image_sizes"][index]))
            note = f"{note or 'image not available'}: boxes drawn on a blank canvas"
            image_title = "image (not available)"
        panels = [("human importance", first["human_importance"][index])]
        for name, result in runs:
            title = _answer_title(
                name,
                result["predictions"][index],
                bool(result["correct"][index]),
                float(result["rho"][index]),
            )
            panels.append((title, result["network_importance"][index]))
        word = first["ground_truth"][index]
        figure = draw_importance_figure(
            image,
            first["boxes"][index],
            panels,
            f"{first['questions'][index]}\nimportance of the word {word!r} "
            f"(image {int(first['image_ids'][index])}, {first['split']})",
            mask=first["proposal_mask"][index],
            image_title=image_title,
            note=note,
        )
        position = int(first["word_positions"][index])
        paths.append(save_figure(figure, output_dir / f"caption_{row}_{position}.png"))
        summary.append(
            {
                "caption_row": row,
                "image_id": int(first["image_ids"][index]),
                "caption": first["questions"][index],
                "word": word,
                "png": paths[-1].name,
                "models": {
                    name: {
                        "checkpoint": result["ckpt_path"],
                        "word": result["predictions"][index],
                        "correct": bool(result["correct"][index]),
                        "rho": _finite_or_none(result["rho"][index]),
                    }
                    for name, result in runs
                },
            }
        )
    write_json(output_dir / "figures.json", summary)
    return paths
