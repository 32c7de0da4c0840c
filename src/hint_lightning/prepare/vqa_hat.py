"""VQA-HAT maps -> the importance store of a split (human importance and the controls).

The maps are read and scored by :mod:`hint_lightning.prepare.hat_maps`. Importance store
(:func:`write_importance_store`, layout in :mod:`hint_lightning.stores.vqa_importance`):
``human`` as above; ``one_minus = 1 - human`` on the image's real proposals; ``random``: a
fixed U[0, 1) value per (question, proposal) given by :func:`random_importance` (a
counter-based hash of ``(seed, question_id, proposal index)``, so a question gets the same
random importance in every store built with that seed, whatever the order or number of
questions). All three are 0 beyond an image's number of proposals and for questions without
a map.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.prepare.hat_coverage import (
    format_hat_coverage,
    hat_coverage,
    write_hat_coverage,
)
from hint_lightning.prepare.hat_maps import (
    HatSource,
    hat_importance,
    iter_hat_maps,
    map_to_unit,
    resize_map,
)
from hint_lightning.stores.errors import open_store
from hint_lightning.stores.prepare_state import describe_sources
from hint_lightning.stores.vqa_importance import write_importance_blocks
from hint_lightning.utils.splitmix import splitmix64

__all__ = [
    "FeatureBoxes",
    "HatSource",
    "format_hat_coverage",
    "hat_coverage",
    "hat_importance",
    "iter_hat_maps",
    "map_to_unit",
    "random_importance",
    "resize_map",
    "write_hat_coverage",
    "write_importance_store",
]


class FeatureBoxes(Protocol):
    """What the importance store needs of a feature store
    (:class:`hint_lightning.stores.features.FeatureStore`)."""

    max_boxes: int

    def __contains__(self, image_id: object) -> bool:
        """Whether the store has the image."""
        ...

    def image_size(self, image_id: int) -> tuple[int, int]:
        """``(width, height)`` of the image in pixels."""
        ...

    def boxes(self, image_id: int) -> np.ndarray:
        """[n, 4] float32 proposal boxes x1, y1, x2, y2 in pixels."""
        ...


# --------------------------------------------------------------------------------------------
# Random control.
# --------------------------------------------------------------------------------------------


def random_importance(question_ids: np.ndarray, num_proposals: int, seed: int = 0) -> np.ndarray:
    """Fixed random importance: U[0, 1) per (question, proposal), from ``seed``.

    Value ``[q, j]`` depends only on ``(seed, question_ids[q], j)`` (SplitMix64 hashing), so it
    does not change with the order or the number of questions or with ``num_proposals``.

    Args:
        question_ids: [Q] integer question ids (>= 0).
        num_proposals: M, proposals per question.
        seed: Seed (>= 0).

    Returns:
        Float32 array [Q, M] with values in [0, 1) (multiples of 2^-24).

    Example:
        >>> a = random_importance(np.array([5, 7]), 3, seed=1)
        >>> b = random_importance(np.array([7]), 4, seed=1)
        >>> bool((a[1] == b[0, :3]).all()), a.shape, a.dtype
        (True, (2, 3), dtype('float32'))
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    qids = np.asarray(question_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = splitmix64(splitmix64(np.array([seed], dtype=np.uint64)) ^ qids)
        columns = np.arange(1, num_proposals + 1, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
        bits = splitmix64(key[:, None] ^ columns[None, :])
    return ((bits >> np.uint64(40)).astype(np.float64) * 2.0**-24).astype(np.float32)


# --------------------------------------------------------------------------------------------
# The importance store.
# --------------------------------------------------------------------------------------------


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``(question_id [Q], image_id [Q], feature store name)`` of a split store."""
    with open_store(path, "split store") as handle:
        return (
            handle["question_id"][()].astype(np.int64),
            handle["image_id"][()].astype(np.int64),
            str(handle.attrs["feature_store"]),
        )


def _check_store_name(feature_store: object, expected: str, split_store: Path) -> None:
    """The feature store's file must be the one the split store was built for (if known)."""
    path = getattr(feature_store, "path", None)
    if path is not None and Path(path).stem != expected:
        raise ValueError(f"{split_store} was built for the feature store {expected!r}, got {path}")


def _question_importance(
    feature_store: FeatureBoxes, image_id: int, maps: list[np.ndarray], question_id: int
) -> np.ndarray:
    """Human importance [n] of the proposals of a question's image (float32)."""
    if image_id not in feature_store:
        raise ValueError(
            f"image {image_id} of question {question_id} is not in the feature store "
            f"{getattr(feature_store, 'path', feature_store)}"
        )
    boxes = np.asarray(feature_store.boxes(image_id))
    size = feature_store.image_size(image_id)
    return hat_importance(maps, size, boxes).astype(np.float32)


def _progress_bar() -> Progress:
    """A rich progress bar for the importance pass."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def _human_rows(
    sources: Sequence[HatSource],
    rows: Mapping[int, int],
    image_ids: np.ndarray,
    feature_store: FeatureBoxes,
    progress: bool,
) -> dict[int, np.ndarray]:
    """``{row: human importance [n]}`` for the split's questions that have maps.

    Raises:
        ValueError: If a question has maps in two sources.
    """
    human: dict[int, np.ndarray] = {}
    origin: dict[int, Path] = {}
    total = sum(len(source.groups) for source in sources)
    bar = _progress_bar() if progress else None
    task = bar.add_task("VQA-HAT maps", total=total) if bar is not None else None
    if bar is not None:
        bar.start()
    try:
        for source in sources:
            for question_id in source.groups:
                if bar is not None and task is not None:
                    bar.advance(task)
                row = rows.get(question_id)
                if row is None:
                    continue
                if row in human:
                    raise ValueError(
                        f"question {question_id} has maps in both {origin[row]} and {source.path}"
                    )
                maps = source.read(question_id)
                human[row] = _question_importance(
                    feature_store, int(image_ids[row]), maps, question_id
                )
                origin[row] = source.path
    finally:
        if bar is not None:
            bar.stop()
    return human


def _fill_block(
    start: int,
    stop: int,
    max_boxes: int,
    human: Mapping[int, np.ndarray],
    random_rows: Mapping[int, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense ``human``, ``random``, ``one_minus`` [stop - start, M] for rows start:stop."""
    shape = (stop - start, max_boxes)
    block_human, block_random, block_minus = (np.zeros(shape, np.float32) for _ in range(3))
    for row in range(start, stop):
        values = human.get(row)
        if values is None:
            continue
        n = values.shape[0]
        block_human[row - start, :n] = values
        block_minus[row - start, :n] = 1.0 - values
        block_random[row - start, :n] = random_rows[row][:n]
    return block_human, block_random, block_minus


def _write_importance(
    path: Path,
    question_ids: np.ndarray,
    human: Mapping[int, np.ndarray],
    max_boxes: int,
    seed: int,
    attrs: Mapping[str, Any],
) -> None:
    """Writes the importance store atomically, in blocks of rows."""
    matched = np.array(sorted(human), dtype=np.int64)
    random_matrix = random_importance(question_ids[matched], max_boxes, seed)
    random_rows = {int(row): random_matrix[i] for i, row in enumerate(matched)}
    has_importance = np.zeros(question_ids.shape[0], dtype=bool)
    has_importance[matched] = True

    def block(start: int, stop: int) -> dict[str, np.ndarray]:
        rows = _fill_block(start, stop, max_boxes, human, random_rows)
        return dict(zip(("human", "random", "one_minus"), rows, strict=True))

    write_importance_blocks(path, question_ids, has_importance, max_boxes, block, attrs)


def write_importance_store(
    out_path: str | os.PathLike[str],
    split_store_path: str | os.PathLike[str],
    hat_sources: Sequence[str | os.PathLike[str]],
    feature_store: FeatureBoxes,
    *,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Writes the importance store of one split (layout: :mod:`hint_lightning.prepare`).

    Arrays, aligned with the split store's questions (``M = feature_store.max_boxes``):
    ``question_id [Q] int64``, ``has_importance [Q] bool``, ``human``, ``random``,
    ``one_minus`` ``[Q, M] float32`` (see the module docstring). Attributes:
    ``format_version``, ``feature_store`` (the split store's), ``seed``, ``sources`` (JSON:
    the HAT sources, then the split store, see
    :func:`~hint_lightning.stores.prepare_state.describe_sources`). Written to a temporary
    file and renamed.

    Args:
        out_path: The ``<split>_importance.h5`` file.
        split_store_path: The split store whose questions to cover.
        hat_sources: VQA-HAT zips or folders (train and val); maps of questions outside the
            split are skipped without being decoded.
        feature_store: The feature store of the split's images.
        seed: Seed of the random control (>= 0).
        progress: Show a rich progress bar.

    Returns:
        ``{"path", "questions", "with_importance", "maps", "hat_questions", "unmatched"}``:
        ``maps`` counts the map files, ``hat_questions`` the questions with maps over all
        sources and ``unmatched`` those of them not in this split.

    Raises:
        ValueError: If a question has maps in two sources, a matched question's image is
            not in the feature store, a PNG is unreadable, or the feature store is not the
            one the split store names.
    """
    split_store_path = Path(split_store_path)
    question_ids, image_ids, store_name = _read_split(split_store_path)
    _check_store_name(feature_store, store_name, split_store_path)
    rows = {int(qid): row for row, qid in enumerate(question_ids)}
    hats = [HatSource(path) for path in hat_sources]
    try:
        human = _human_rows(hats, rows, image_ids, feature_store, progress)
        maps = sum(hat.num_maps for hat in hats)
        hat_questions = sum(len(hat.groups) for hat in hats)
    finally:
        for hat in hats:
            hat.close()
    attrs = {
        "feature_store": store_name,
        "seed": int(seed),
        "sources": json.dumps(describe_sources([*hat_sources, split_store_path])),
    }
    _write_importance(
        Path(out_path), question_ids, human, int(feature_store.max_boxes), seed, attrs
    )
    return {
        "path": str(out_path),
        "questions": int(question_ids.shape[0]),
        "with_importance": len(human),
        "maps": maps,
        "hat_questions": hat_questions,
        "unmatched": hat_questions - len(human),
    }
