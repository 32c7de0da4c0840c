"""The decoy of ``decoy_vqa``: each image's shape, where the decoy goes, its colour, the painting.

A decoy is a ``size x size`` square of one colour, ``margin`` pixels from the image edge, in a
corner that does not touch the shape. Its colour codes the image's shape (the attribute the
shape questions ask about): :data:`DECOY_COLORS` ``[s]`` is the colour of shape ``s``
(:data:`~hint_lightning.stores.easyvqa.SHAPE_WORDS` order: circle -> magenta, rectangle ->
orange, triangle -> cyan; none of them is an easy-VQA colour). Following the feasibility
prototype (``shared/design/decoy_vqa_feasibility.md``), the human importance is computed from the
shape mask taken *before* painting (the decoy gets none).

The shape is read from the image's questions (a shape answer, or a yes/no question naming a
shape); the few images whose questions leave it open are classified by how much of their box
the mask fills (triangle ~0.59, circle ~0.81, rectangle ~1.0), among the shapes the questions
allow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import numpy as np

from hint_lightning.stores.easyvqa import SHAPE_WORDS

__all__ = [
    "DECOY_COLORS",
    "FILL_RATIO",
    "decoy_colors",
    "decoy_corners",
    "image_shapes",
    "paint_decoys",
    "shape_questions",
]

DECOY_COLORS: Final[np.ndarray] = np.array([[255, 0, 255], [255, 140, 0], [0, 255, 255]], np.uint8)
"""``[3, 3]`` uint8: the decoy colour of each shape (circle, rectangle, triangle)."""
FILL_RATIO: Final[tuple[float, ...]] = (0.81, 1.0, 0.59)
"""Typical share of its box a shape's mask fills (circle, rectangle, triangle), measured on the
package images whose questions name the shape."""
NO_DECOY: Final = -1
"""``decoy_color`` of an image without a decoy."""

_NEGATION = re.compile(r"\b(not|no)\b")


def _word(question: str) -> int | None:
    """Index of the shape word a question names, or None."""
    for index, word in enumerate(SHAPE_WORDS):
        if re.search(rf"\b{word}\b", question):
            return index
    return None


def shape_questions(questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """``[Q]`` bool: questions whose answer depends on the shape (a shape answer, or a yes/no
    question naming a shape). These are the questions a decoy that codes the shape can answer.

    Example:
        >>> shape_questions(["what shape is it?", "is there a circle?", "is it red?"],
        ...                 ["circle", "no", "yes"]).tolist()
        [True, True, False]
    """
    shapes = set(SHAPE_WORDS)
    return np.array(
        [
            answer in shapes or (answer in ("yes", "no") and _word(question) is not None)
            for question, answer in zip(questions, answers, strict=True)
        ],
        dtype=bool,
    )


def image_shapes(
    questions: Sequence[str],
    answers: Sequence[str],
    question_images: np.ndarray,
    image_ids: np.ndarray,
    masks: np.ndarray,
    mask_boxes: np.ndarray,
) -> np.ndarray:
    """``[I]`` int64: the shape (index into ``SHAPE_WORDS``) of each image.

    Args:
        questions: Q question texts.
        answers: Q answers.
        question_images: ``[Q]`` image id of each question.
        image_ids: ``[I]`` image ids, the row order of the result.
        masks: ``[I, H, W]`` bool shape masks.
        mask_boxes: ``[I, 4]`` pixel boxes of the masks.
    """
    row = {int(image): k for k, image in enumerate(image_ids)}
    allowed = np.ones((len(image_ids), len(SHAPE_WORDS)), dtype=bool)
    for question, answer, image in zip(questions, answers, question_images, strict=True):
        k = row.get(int(image))
        if k is None:
            continue
        if answer in SHAPE_WORDS:
            only = np.zeros(len(SHAPE_WORDS), dtype=bool)
            only[SHAPE_WORDS.index(answer)] = True
            allowed[k] &= only
        elif answer in ("yes", "no") and (word := _word(question)) is not None:
            present = (answer == "yes") != bool(_NEGATION.search(question))
            if present:
                keep = np.zeros(len(SHAPE_WORDS), dtype=bool)
                keep[word] = True
                allowed[k] &= keep
            else:
                allowed[k, word] = False
    area = np.maximum(
        1.0, (mask_boxes[:, 2] - mask_boxes[:, 0]) * (mask_boxes[:, 3] - mask_boxes[:, 1])
    )
    fill = masks.sum(axis=(1, 2)) / area
    distance = np.abs(fill[:, None] - np.asarray(FILL_RATIO)[None, :])
    distance[~allowed] = np.inf
    distance[~allowed.any(axis=1)] = np.abs(fill[:, None] - np.asarray(FILL_RATIO))[
        ~allowed.any(axis=1)
    ]
    return distance.argmin(axis=1).astype(np.int64)


def decoy_corners(
    masks: np.ndarray, size: int, margin: int, rng: np.random.Generator
) -> np.ndarray:
    """``[I, 4]`` int64 pixel boxes ``x1, y1, x2, y2`` of each image's decoy.

    A corner is free when no mask pixel lies in the decoy square grown by one pixel; the decoy
    goes to a random free corner, or (when none is free) to the corner with the fewest mask
    pixels.

    Args:
        masks: ``[I, H, W]`` bool shape masks.
        size: Side of the decoy in pixels.
        margin: Pixels between the decoy and the image edge.
        rng: Draws the corner.
    """
    num_images, height, width = masks.shape
    if size < 1 or margin < 0 or 2 * (size + margin) > min(height, width):
        raise ValueError(
            f"data.decoy.size={size} and margin={margin} do not fit {height}x{width} images"
        )
    xs = (margin, width - margin - size)
    ys = (margin, height - margin - size)
    corners = np.array([[x, y, x + size, y + size] for y in ys for x in xs], dtype=np.int64)
    touched = np.empty((num_images, 4), dtype=np.int64)
    for c, (x1, y1, x2, y2) in enumerate(corners):
        grown = masks[:, max(0, y1 - 1) : y2 + 1, max(0, x1 - 1) : x2 + 1]
        touched[:, c] = grown.sum(axis=(1, 2))
    draw = rng.random((num_images, 4))
    score = np.where(touched == 0, draw, -1.0 - touched)  # free corners first, random order
    return corners[score.argmax(axis=1)]


def decoy_colors(shapes: np.ndarray, mode: str, p: float, rng: np.random.Generator) -> np.ndarray:
    """``[I]`` int64: the decoy colour (index into :data:`DECOY_COLORS`) of each image.

    Args:
        shapes: ``[I]`` shape of each image.
        mode: ``"coded"``: the shape's colour with probability ``p``, else one of the two other
            colours at random; ``"random"``: any colour, uniformly; ``"flipped"``: one of the
            other two colours; ``"none"``: :data:`NO_DECOY`.
        p: The code's reliability in ``"coded"``.
        rng: The generator.
    """
    count = len(shapes)
    # Every mode draws the same numbers, so the splits after this one get the same draws
    # whatever this split's mode (the decoy-free reference keeps the decoy store's tests).
    other = (shapes + rng.integers(1, len(SHAPE_WORDS), size=count)) % len(SHAPE_WORDS)
    keep = rng.random(count) < p
    uniform = rng.integers(0, len(SHAPE_WORDS), size=count)
    if mode == "coded":
        return np.where(keep, shapes, other).astype(np.int64)
    if mode == "random":
        return uniform.astype(np.int64)
    if mode == "flipped":
        return other.astype(np.int64)
    if mode == "none":
        return np.full(count, NO_DECOY, dtype=np.int64)
    raise ValueError(f"unknown decoy mode {mode!r}")


def paint_decoys(pixels: np.ndarray, boxes: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """A copy of ``pixels`` ``[I, H, W, 3]`` uint8 with each decoy painted (none where the colour
    is :data:`NO_DECOY`).

    Args:
        pixels: ``[I, H, W, 3]`` uint8.
        boxes: ``[I, 4]`` int pixel boxes.
        colors: ``[I]`` colour indices.
    """
    painted = pixels.copy()
    for k, ((x1, y1, x2, y2), color) in enumerate(zip(boxes, colors, strict=True)):
        if color != NO_DECOY:
            painted[k, y1:y2, x1:x2] = DECOY_COLORS[color]
    return painted
