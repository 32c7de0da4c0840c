"""Builds the decoy_vqa store (:mod:`hint_lightning.stores.decoy_vqa`) from the easy-vqa package.

No download: the 5,000 images and 48,248 questions ship with the installed ``easy-vqa``
package. The package's own split is kept (4,000 train / 1,000 test images), so the decoy is the
only shift between train and test (as in the feasibility prototype). Steps:

1. load the images; shape masks and boxes (:mod:`hint_lightning.prepare.easyvqa_images`), the
   shape of each image (:func:`~hint_lightning.prepare.decoy_render.image_shapes`);
2. from ``numpy.random.default_rng(seed)``, in this order: the val images (a ``val_fraction``
   share of the package's train images), each image's decoy corner, the proposals
   (``num_proposals``, plus one exactly on the decoy with ``box``), then each split's colours;
3. human importance from the blurred shape mask *before* painting (the same for every variant
   of an image);
4. per split, paint the decoys and compute the 123-d proposal features of the painted images;
   standardize every split with the mean and std of the **train** variants only;
5. questions of every split (a val or test question appears once per variant), tokens over all
   questions, the shape-question flag (:func:`~hint_lightning.prepare.decoy_render.
   shape_questions`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

import numpy as np
from rich.console import Console

from hint_lightning.prepare import easyvqa_images as images_mod
from hint_lightning.prepare.decoy_render import (
    decoy_colors,
    decoy_corners,
    image_shapes,
    paint_decoys,
    shape_questions,
)
from hint_lightning.prepare.easyvqa_source import EasyVQASource, answer_type_index
from hint_lightning.stores.decoy_vqa import SPLITS, DecoyVQAParams, write_store
from hint_lightning.stores.easyvqa import TEST_IMAGE_ID_OFFSET
from hint_lightning.text.tokenize import build_token_vocab, encode_questions, tokenize

__all__ = ["SPLIT_MODES", "build_store", "covering_proposals", "ensure_store"]

SPLIT_MODES: Final[dict[str, str]] = {
    "train": "coded",
    "val": "coded",
    "val_random": "random",
    "test_clean": "none",
    "test_random": "random",
    "test_flipped": "flipped",
}
"""The decoy colour mode of each split (:func:`~hint_lightning.prepare.decoy_render.
decoy_colors`); ``train``/``val`` are ``"none"`` in the decoy-free reference."""
_CHUNK: Final = 250
_IMAGE_ID_STRIDE: Final = 10_000
_QUESTION_ID_STRIDE: Final = 1_000_000


def covering_proposals(boxes: np.ndarray, decoy: np.ndarray, share: float = 0.5) -> np.ndarray:
    """``[I, N]`` bool: proposals holding at least ``share`` of the decoy's area.

    Args:
        boxes: ``[I, N, 4]`` proposals; ``decoy``: ``[I, 4]`` decoy boxes (same units).
        share: The least covered share of the decoy.

    Example:
        >>> covering_proposals(np.array([[[0, 0, 4, 4], [3, 3, 9, 9]]]), np.array([[0, 0, 2, 2]]))
        array([[ True, False]])
    """
    low = np.maximum(boxes[..., :2], decoy[:, None, :2])
    high = np.minimum(boxes[..., 2:], decoy[:, None, 2:])
    inter = np.clip(high - low, 0, None).prod(axis=-1)
    area = (decoy[:, 2:] - decoy[:, :2]).prod(axis=-1)[:, None]
    return inter >= share * area


def _features(pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = np.empty((*boxes.shape[:2], images_mod.FEATURE_DIM), np.float32)
    for start in range(0, len(pixels), _CHUNK):
        part = slice(start, start + _CHUNK)
        out[part] = images_mod.proposal_features(pixels[part], boxes[part])
    return out


def build_store(
    path: str | os.PathLike[str],
    params: DecoyVQAParams,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """Builds the store and writes it atomically to ``path``.

    Args:
        path: Destination ``.h5`` file.
        params: Build parameters.
        source: The raw data; default :meth:`EasyVQASource.from_package`.
        console: Where the summary goes.
    """
    console = console or Console()
    source = source or EasyVQASource.from_package()
    began = time.perf_counter()
    all_ids = source.sorted_image_ids()
    train_ids = all_ids[all_ids < TEST_IMAGE_ID_OFFSET]
    test_ids = all_ids[all_ids >= TEST_IMAGE_ID_OFFSET]
    if params.max_images is not None:
        train_ids, test_ids = train_ids[: params.max_images], test_ids[: params.max_images]
    image_ids = np.concatenate([train_ids, test_ids])
    pixels = np.concatenate(
        [
            images_mod.load_images([source.image_paths[int(i)] for i in image_ids[s : s + _CHUNK]])
            for s in range(0, len(image_ids), _CHUNK)
        ]
    )
    _, height, width, _ = pixels.shape
    masks = images_mod.shape_masks(pixels)
    shape_boxes = images_mod.mask_boxes(masks)
    shapes = image_shapes(
        source.questions, source.answers, source.image_ids, image_ids, masks, shape_boxes
    )

    rng = np.random.default_rng(params.seed)
    num_train = len(train_ids)
    order = rng.permutation(num_train)
    num_val = max(1, int(np.floor(params.val_fraction * num_train + 0.5)))
    rows_of = {
        "train": np.sort(order[num_val:]),
        "val": np.sort(order[:num_val]),
        "test": np.arange(num_train, len(image_ids)),
    }
    corners = decoy_corners(masks, params.size, params.margin, rng)
    boxes = images_mod.make_proposals(shape_boxes, rng, height, width, params.num_proposals)
    if params.box:
        boxes = np.concatenate([boxes, corners[:, None, :].astype(boxes.dtype)], axis=1)
    maps = images_mod.attention_maps(masks, params.blur_sigma)
    importance = images_mod.human_importance(maps, boxes)
    covering = covering_proposals(boxes, corners.astype(np.float64))

    parts: list[dict[str, np.ndarray]] = []
    for code, split in enumerate(SPLITS):
        rows = rows_of[split.split("_")[0]]
        mode = SPLIT_MODES[split]
        if split in ("train", "val") and not params.train_decoy:
            mode = "none"
        colors = decoy_colors(shapes[rows], mode, params.p, rng)
        painted = paint_decoys(pixels[rows], corners[rows], colors)
        parts.append(
            {
                "rows": rows,
                "split": np.full(len(rows), code, np.int8),
                "pixels": painted,
                "features": _features(painted, boxes[rows]),
                "decoy_color": colors.astype(np.int8),
            }
        )
    features = np.concatenate([part["features"] for part in parts])
    train_flat = parts[0]["features"].reshape(-1, features.shape[-1]).astype(np.float64)
    mean, std = train_flat.mean(axis=0), train_flat.std(axis=0)
    std[std < 1e-6] = 1.0
    rows = np.concatenate([part["rows"] for part in parts])
    split_of_image = np.concatenate([part["split"] for part in parts])
    scale = np.array([width, height, width, height], dtype=np.float64)
    images = {
        "image_id": split_of_image.astype(np.int64) * _IMAGE_ID_STRIDE + image_ids[rows],
        "source_image_id": image_ids[rows],
        "split": split_of_image,
        "pixels": np.concatenate([part["pixels"] for part in parts]),
        "features": ((features - mean) / std).astype(np.float32),
        "boxes": (boxes[rows] / scale).astype(np.float32),
        "human_importance": importance[rows],
        "decoy_proposals": covering[rows],
        "decoy_box": (corners[rows] / scale).astype(np.float32),
        "decoy_color": np.concatenate([part["decoy_color"] for part in parts]),
        "shape": shapes[rows].astype(np.int8),
        "feature_mean": mean.astype(np.float32),
        "feature_std": std.astype(np.float32),
    }
    questions, vocabularies = _questions(source, image_ids, images, params)
    write_store(path, images, questions, {"params": params.to_dict(), **vocabularies})
    counts = ", ".join(
        f"{split} {int((questions['split'] == k).sum()):,}" for k, split in enumerate(SPLITS)
    )
    console.print(
        f"decoy_vqa store: {len(rows):,} images x {boxes.shape[1]} proposals, questions: "
        f"{counts}; built in {time.perf_counter() - began:.1f} s -> {path}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return Path(path)


def _questions(
    source: EasyVQASource,
    image_ids: np.ndarray,
    images: dict[str, np.ndarray],
    params: DecoyVQAParams,
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """The ``questions/`` arrays (one row per question and variant) and the vocabularies."""
    tokens_vocab = build_token_vocab(tokenize(q) for q in set(source.questions))
    token_index = {t: i for i, t in enumerate(tokens_vocab)}
    answer_index = {a: i for i, a in enumerate(source.answer_vocab)}
    kept = np.flatnonzero(np.isin(source.image_ids, image_ids))
    by_image: dict[int, list[int]] = {}
    for q in kept:
        by_image.setdefault(int(source.image_ids[q]), []).append(int(q))
    picks, variant = [], []
    for row, image in enumerate(images["source_image_id"]):
        questions = by_image.get(int(image), [])
        picks.extend(questions)
        variant.extend([row] * len(questions))
    picks_a, variant_a = np.asarray(picks, np.int64), np.asarray(variant, np.int64)
    texts = [source.questions[q] for q in picks]
    answers = [source.answers[q] for q in picks]
    split = images["split"][variant_a]
    arrays = {
        "question_id": split.astype(np.int64) * _QUESTION_ID_STRIDE
        + source.question_ids[picks_a].astype(np.int64),
        "image_index": variant_a,
        "tokens": encode_questions(texts, token_index, params.max_question_length),
        "answer": np.array([answer_index[a] for a in answers], dtype=np.int64),
        "answer_type": answer_type_index(answers),
        "shape_question": shape_questions(texts, answers),
        "question": np.array(texts, dtype=object),
        "split": split,
    }
    return arrays, {"answers": list(source.answer_vocab), "tokens": list(tokens_vocab)}


def ensure_store(
    cache_dir: str | os.PathLike[str],
    params: DecoyVQAParams,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """``<cache_dir>/decoy_vqa_<digest>.h5``, built first if it does not exist."""
    path = Path(cache_dir) / params.filename()
    console = console or Console()
    if path.is_file():
        console.print(f"decoy_vqa store: reusing {path}", markup=False, highlight=False)
        return path
    return build_store(path, params, source=source, console=console)
