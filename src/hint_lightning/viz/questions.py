"""Answers and network importance of a checkpoint on chosen questions, for pictures.

:func:`importance_for_questions` rebuilds a trained VQA model and its DataModule from nothing
but the checkpoint (the run config and data info stored in it by ``train``), runs the chosen
questions through it and returns, per question, the answer, the network importance of every
proposal for the *ground-truth* answer (``evaluation_importance``, as the grounding metrics
compute it), the attention, the human importance, the boxes in pixels and the image:

* easy-VQA-CP (:class:`~hint_lightning.data.easyvqa_datamodule.EasyVQACPDataModule`): the
  64x64 PNGs of the ``easy-vqa`` package, found through ``EasyVQASource`` of
  :mod:`hint_lightning.prepare.easyvqa_source`; questions and answers from ``question_metadata``.
* The real VQA DataModule keeps features only (no pixels): the image is None, its size comes
  from the feature store, and ``image_note`` says so (the pictures then draw the boxes on a
  blank canvas). The question text is decoded from its tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from hint_lightning.checkpoints import load_weights
from hint_lightning.data import batch as B
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.evaluate import stored_run
from hint_lightning.metrics.grounding import spearman_rank_correlation
from hint_lightning.stored_run import StoredRun, build_datamodule, build_model

__all__ = [
    "NO_IMAGE_NOTE",
    "SPLITS",
    "choose_question_ids",
    "importance_for_questions",
    "load_datamodule",
    "load_model",
]

SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
"""Splits questions can be drawn from."""
NO_IMAGE_NOTE: Final = "image not available (this dataset ships region features only)"
"""``image_note`` of questions whose pixels the dataset does not have."""
DEFAULT_IMAGE_SIZE: Final = (480, 640)
"""(H, W) of the canvas when the image size is unknown too."""
_CHUNK: Final = 256
"""Questions per forward pass."""


def load_datamodule(
    ckpt_path: str, data_dir: str | None = None
) -> tuple[pl.LightningDataModule, DictConfig, VQADataInfo]:
    """The DataModule a checkpoint was trained on, prepared and set up.

    Args:
        ckpt_path: a checkpoint written by ``hint_lightning.train``.
        data_dir: overrides the stored ``data.data_dir`` (e.g. data moved elsewhere).

    Returns:
        ``(datamodule, run config, stored data info)``.

    Raises:
        ValueError: when the data's answer vocabulary differs from the checkpoint's.
        ValueError: for a checkpoint that is not a VQA model's (captioning: see
            :mod:`hint_lightning.viz.captioning`).
    """
    run_cfg, info = _vqa_run(ckpt_path)
    overrides = None if data_dir is None else {"data_dir": str(data_dir)}
    datamodule: pl.LightningDataModule = build_datamodule(
        StoredRun(str(ckpt_path), run_cfg, info), overrides
    )
    datamodule.prepare_data()
    datamodule.setup("test")
    if datamodule.info.answers != info.answers:
        raise ValueError(
            f"the answer vocabulary of the data ({datamodule.info.name}) differs from the one "
            f"{ckpt_path} was trained with"
        )
    return datamodule, run_cfg, info


def _vqa_run(ckpt_path: str) -> tuple[DictConfig, VQADataInfo]:
    """The stored run config and data info of a VQA checkpoint.

    Raises:
        ValueError: for other checkpoints (e.g. a captioner's: see
            :mod:`hint_lightning.viz.captioning`).
    """
    run_cfg, info = stored_run(ckpt_path)
    if not isinstance(info, VQADataInfo):
        raise ValueError(
            f"{ckpt_path} is not a VQA checkpoint ({type(info).__name__}): draw captioning "
            "models (the paper's Figure 3) with "
            "hint_lightning.viz.captioning.importance_for_caption_words"
        )
    return run_cfg, info


def load_model(ckpt_path: str, run_cfg: DictConfig, info: VQADataInfo) -> pl.LightningModule:
    """The trained VQA LightningModule of a checkpoint, in eval mode, on the CPU.

    ``run_cfg.model`` is checked against the allow-list of
    :mod:`hint_lightning.utils.safe_config` before anything is built.
    """
    model = build_model(StoredRun(str(ckpt_path), run_cfg, info))
    load_weights(model, ckpt_path)
    return model.eval()


def _split_dataset(datamodule: Any, split: str) -> tuple[Any, Any]:
    """``(dataset, collate_fn)`` of ``split``, through the DataModule's public loader."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    previous = datamodule.test_split
    datamodule.test_split = split
    try:
        loader = datamodule.test_dataloader()
    finally:
        datamodule.test_split = previous
    return loader.dataset, loader.collate_fn


def _batches(datamodule: Any, split: str, positions: np.ndarray) -> DataLoader:
    """Batches of the questions at ``positions`` of the split's dataset, in that order."""
    dataset, collate = _split_dataset(datamodule, split)
    return DataLoader(
        Subset(dataset, positions.tolist()), batch_size=_CHUNK, shuffle=False, collate_fn=collate
    )


def _positions(datamodule: Any, split: str, question_ids: Sequence[int]) -> np.ndarray:
    """Dataset positions of ``question_ids`` in ``split``.

    Raises:
        KeyError: naming the ids that are not in the split.
    """
    ids = np.asarray(datamodule.question_ids(split), dtype=np.int64)
    where = {int(qid): position for position, qid in enumerate(ids.tolist())}
    missing = [int(q) for q in question_ids if int(q) not in where]
    if missing:
        raise KeyError(f"question ids not in the {split} split: {missing[:10]}")
    return np.asarray([where[int(q)] for q in question_ids], dtype=np.int64)


def choose_question_ids(
    datamodule: Any, split: str = "test", count: int = 4, seed: int = 0
) -> np.ndarray:
    """``count`` questions of ``split`` that have human importance, drawn at random (seeded).

    Args:
        datamodule: a set-up VQA DataModule.
        split: ``train``, ``val`` or ``test``.
        count: how many (fewer when the split has fewer questions with human importance).
        seed: seed of the draw.

    Returns:
        Int64 question ids, shape ``[count]`` at most.
    """
    ids = np.asarray(datamodule.question_ids(split), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen: list[int] = []
    for start in range(0, len(order), _CHUNK):
        positions = order[start : start + _CHUNK]
        for batch in _batches(datamodule, split, positions):
            has = batch[B.HAS_IMPORTANCE].numpy()
            chosen += batch[B.QUESTION_ID].numpy()[has].tolist()
        if len(chosen) >= count:
            break
    return np.asarray(chosen[:count], dtype=np.int64)


def _forward(model: Any, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Logits ``[B, A]``, attention ``[B, N]`` and network importance ``[B, N]``, exactly as
    evaluation computes them (``VQAModule.answer_with_importance``)."""
    logits, attention, importance = model.answer_with_importance(batch)
    assert importance is not None
    return logits, attention, importance


def _decode(tokens: np.ndarray, vocab: Sequence[str]) -> str:
    """Token ids ``[T]`` back to words (padding dropped)."""
    return " ".join(vocab[int(t)] for t in tokens if int(t) != 0) + "?"


def _easyvqa_details(datamodule: Any, split: str, question_ids: np.ndarray) -> dict[str, Any]:
    """Question texts, answers, image ids and pixels of easy-VQA questions."""
    from hint_lightning.prepare.easyvqa_images import load_images
    from hint_lightning.prepare.easyvqa_source import EasyVQASource

    meta = datamodule.question_metadata(split)
    where = {int(q): i for i, q in enumerate(meta["question_id"].tolist())}
    rows = [where[int(q)] for q in question_ids]
    image_ids = meta["image_id"][rows].astype(np.int64)
    paths = EasyVQASource.from_package().image_paths
    return {
        "questions": [str(q) for q in meta["question"][rows]],
        "ground_truth": [str(a) for a in meta["answer"][rows]],
        "image_ids": image_ids,
        "images": [load_images([paths[int(i)]])[0] for i in image_ids],
    }


def _feature_only_details(
    datamodule: Any, split: str, positions: np.ndarray, batches: list[dict[str, Tensor]]
) -> dict[str, Any]:
    """Question texts (from tokens), answers, image ids and sizes without pixels."""
    info: VQADataInfo = datamodule.info
    tokens = np.concatenate([b[B.QUESTION_TOKENS].numpy() for b in batches])
    targets = np.concatenate([b[B.TARGETS].numpy() for b in batches])
    dataset, _ = _split_dataset(datamodule, split)
    questions = getattr(dataset, "questions", None)
    rows = getattr(dataset, "rows", None)
    store = getattr(dataset, "store", None)
    if questions is not None and rows is not None:
        image_ids = np.asarray(questions.image_id)[np.asarray(rows)[positions]].astype(np.int64)
    else:
        image_ids = np.full(len(positions), -1, dtype=np.int64)
    sizes = []
    for image_id in image_ids.tolist():
        if store is not None and image_id >= 0:
            width, height = store.image_size(image_id)
            sizes.append((height, width))
        else:
            sizes.append(DEFAULT_IMAGE_SIZE)
    return {
        "questions": [_decode(t, info.tokens) for t in tokens],
        "ground_truth": [info.answers[int(a)] for a in targets.argmax(axis=1)],
        "image_ids": image_ids,
        "images": [None] * len(positions),
        "image_sizes": np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
    }


def importance_for_questions(
    ckpt_path: str,
    question_ids: Sequence[int],
    split: str = "test",
    *,
    data_dir: str | None = None,
    datamodule: pl.LightningDataModule | None = None,
) -> dict[str, Any]:
    """A checkpoint's answers and network importance on chosen questions.

    Args:
        ckpt_path: a VQA checkpoint written by ``hint_lightning.train``.
        question_ids: Q question ids of ``split``.
        split: ``train``, ``val`` or ``test``.
        data_dir: overrides the stored ``data.data_dir``.
        datamodule: a set-up DataModule to reuse (e.g. from :func:`load_datamodule` for a
            second checkpoint of the same data); built from the checkpoint when None.

    Returns:
        A dict with ``task_name``, ``ckpt_path``, ``split``, ``dataset``, ``image_note``
        (None, or why there are no pixels) and, per question, in the order given:
        ``question_ids`` [Q] int64, ``questions``, ``ground_truth``, ``predictions`` (lists
        of Q str), ``correct`` [Q] bool (the answer scores > 0), ``network_importance``,
        ``attention``, ``human_importance`` [Q, N] float32 (what the split carries: human
        importance on val and test; on train, the DataModule's ``importance_source``),
        ``has_importance`` [Q] bool,
        ``proposal_mask`` [Q, N] bool, ``rho`` [Q] float (Spearman correlation of network
        and human importance; NaN without human importance), ``boxes`` [Q, N, 4] float32
        x1, y1, x2, y2 in pixels, ``image_ids`` [Q] int64, ``image_sizes`` [Q, 2] (H, W),
        ``images`` (Q arrays [H, W, 3] uint8, or None where the dataset has no pixels).

    Raises:
        KeyError: naming the question ids that are not in the split.
        ValueError: on an unknown split, or data that does not fit the checkpoint.
        ValueError: also for a checkpoint that is not a VQA model's.
    """
    if datamodule is None:
        datamodule, run_cfg, info = load_datamodule(ckpt_path, data_dir)
    else:
        run_cfg, info = _vqa_run(ckpt_path)
        if datamodule.info.answers != info.answers:
            raise ValueError(f"the given DataModule's answers differ from those of {ckpt_path}")
    model = load_model(ckpt_path, run_cfg, info)
    question_ids = np.asarray(question_ids, dtype=np.int64).reshape(-1)
    positions = _positions(datamodule, split, question_ids)

    batches, outputs = [], []
    for batch in _batches(datamodule, split, positions):
        batches.append(batch)
        outputs.append(_forward(model, batch))

    def cat(key: str) -> Tensor:
        return torch.cat([b[key] for b in batches])

    logits = torch.cat([o[0] for o in outputs])
    attention = torch.cat([o[1] for o in outputs])
    importance = torch.cat([o[2] for o in outputs])
    mask, human, has = cat(B.PROPOSAL_MASK), cat(B.HUMAN_IMPORTANCE), cat(B.HAS_IMPORTANCE)
    predicted = logits.argmax(dim=1)
    rho = spearman_rank_correlation(importance, human, mask)
    rho = torch.where(has, rho, torch.full_like(rho, float("nan")))

    if callable(getattr(datamodule, "question_metadata", None)):
        details = _easyvqa_details(datamodule, split, question_ids)
        details["image_sizes"] = np.asarray(
            [image.shape[:2] for image in details["images"]], dtype=np.int64
        ).reshape(-1, 2)
        note = None
    else:
        details = _feature_only_details(datamodule, split, positions, batches)
        note = NO_IMAGE_NOTE
    heights, widths = details["image_sizes"][:, 0], details["image_sizes"][:, 1]
    scale = np.stack([widths, heights, widths, heights], axis=1)[:, None, :].astype(np.float32)
    return {
        "task_name": str(run_cfg.get("task_name", "")),
        "ckpt_path": str(ckpt_path),
        "split": split,
        "dataset": info.name,
        "image_note": note,
        "question_ids": cat(B.QUESTION_ID).numpy().astype(np.int64),
        "questions": details["questions"],
        "ground_truth": details["ground_truth"],
        "predictions": [info.answers[int(a)] for a in predicted],
        "correct": (cat(B.ANSWER_SCORES).gather(1, predicted[:, None]).squeeze(1) > 0).numpy(),
        "network_importance": importance.numpy().astype(np.float32),
        "attention": attention.numpy().astype(np.float32),
        "human_importance": human.numpy().astype(np.float32),
        "has_importance": has.numpy(),
        "proposal_mask": mask.numpy(),
        "rho": rho.numpy().astype(np.float64),
        "boxes": cat(B.BOXES).numpy() * scale,
        "image_ids": details["image_ids"],
        "image_sizes": details["image_sizes"],
        "images": details["images"],
    }
