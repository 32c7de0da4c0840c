"""Pictures of proposal importance, like the HINT paper's Figure 2 (pure drawing, no model).

:func:`draw_importance_figure` draws an image once per panel, each proposal box filled with a
color whose opacity grows with the box's normalized importance (red: positive, blue: negative;
the 3 most important boxes of a panel are outlined) over a faded gray copy of the image (so the
overlay reads on images of any color), optionally preceded by the plain image. Patch tokens (a
ViT's proposals, boxes tiling the image: :func:`is_patch_grid`) are drawn the same way, as an
importance grid over the image with its patch lines.
It takes plain arrays, so anything can reuse it: the ``python -m hint_lightning.viz`` command,
the notebooks, or a logger (``wandb.Image(figure)``).

:func:`hint_comparison_figure` composes the paper's layout for one question: the image with
the question and the ground truth, then human importance, the base model's and the HINTed
model's network importance for the ground-truth answer, each model's answer in its title.

Everything renders with matplotlib's object-oriented API on an Agg canvas: no window, no global
``pyplot`` state, so it is safe in tests, on servers and in DataLoader-free callbacks.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hint_lightning.utils.io import atomic_path

__all__ = [
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "blank_canvas",
    "draw_importance_figure",
    "draw_importance_panel",
    "faded_gray",
    "hint_comparison_figure",
    "importance_overlay",
    "is_patch_grid",
    "normalize_importance",
    "save_figure",
]

POSITIVE_COLOR: Final = (0.86, 0.08, 0.08)
"""Fill of boxes with positive importance (red)."""
NEGATIVE_COLOR: Final = (0.10, 0.35, 0.90)
"""Fill of boxes with negative importance (blue)."""
MAX_ALPHA: Final = 0.65
"""Opacity of the box with the largest normalized importance."""
TOP_K: Final = 3
"""Boxes outlined in each panel: the most important ones by absolute value."""
PANEL_INCHES: Final = 2.6
"""Width and height of one panel."""


def is_patch_grid(boxes: np.ndarray, height: int, width: int) -> bool:
    """Whether ``boxes`` ``[N, 4]`` (pixels) tile the image as a ViT's equal patches.

    Example:
        >>> is_patch_grid(np.array([[0, 0, 2, 4], [2, 0, 4, 4]]), 4, 4)
        True
        >>> is_patch_grid(np.array([[0, 0, 2, 2], [1, 1, 4, 4]]), 4, 4)
        False
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return False
    sizes = boxes[:, 2:] - boxes[:, :2]
    if not np.allclose(sizes, sizes[0]) or (sizes[0] <= 0).any():
        return False
    cols, rows = width / sizes[0, 0], height / sizes[0, 1]
    if not (float(cols).is_integer() and float(rows).is_integer()) or rows * cols != len(boxes):
        return False
    corners = {(round(x / sizes[0, 0]), round(y / sizes[0, 1])) for x, y in boxes[:, :2]}
    return len(corners) == len(boxes)


def normalize_importance(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Importance scaled for display, sign kept.

    Non-negative importance (human importance, attention) is min-max normalized to [0, 1], so
    the least important box is transparent and the most important one opaque. Importance with
    negative values (network importance) is divided by its largest absolute value, to [-1, 1],
    so a box that does not affect the decision stays transparent whatever its sign.

    Args:
        values: ``[N]`` importance of each proposal.
        mask: ``[N]`` bool, False for padded proposals (they get 0); None: all real.

    Returns:
        ``[N]`` float64 in [-1, 1]; all zeros when the real values are constant.

    Example:
        >>> normalize_importance(np.array([1.0, 2.0, 3.0])).tolist()
        [0.0, 0.5, 1.0]
        >>> normalize_importance(np.array([-2.0, 1.0, 4.0])).tolist()
        [-0.5, 0.25, 1.0]
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    real = np.ones(values.shape, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    out = np.zeros_like(values)
    finite = real & np.isfinite(values)
    if not finite.any():
        return out
    shown = values[finite]
    if shown.min() >= 0:
        span = shown.max() - shown.min()
        out[finite] = (shown - shown.min()) / span if span > 0 else 0.0
    else:
        out[finite] = shown / np.abs(shown).max()
    return out


def blank_canvas(height: int, width: int, gray: int = 235) -> np.ndarray:
    """A uniform light-gray image, for datasets that ship features but no pixels.

    Args:
        height: H in pixels.
        width: W in pixels.
        gray: the gray level (0-255).

    Returns:
        ``[H, W, 3]`` uint8.

    Example:
        >>> blank_canvas(2, 3).shape
        (2, 3, 3)
    """
    return np.full((int(height), int(width), 3), gray, dtype=np.uint8)


def faded_gray(image: np.ndarray, floor: float = 0.35) -> np.ndarray:
    """The image in light gray levels, so that red and blue overlays read on any image.

    Args:
        image: ``[H, W, 3]`` uint8, or float in [0, 1].
        floor: the gray level black maps to (white stays white).

    Returns:
        ``[H, W, 3]`` float32 in ``[floor, 1]``.

    Example:
        >>> faded_gray(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8))[0, :, 0].round(2)
        array([0.35, 1.  ], dtype=float32)
    """
    pixels = np.asarray(image, dtype=np.float32)
    if np.issubdtype(np.asarray(image).dtype, np.integer):
        pixels = pixels / 255.0
    luminance = pixels @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    gray = floor + (1.0 - floor) * np.clip(luminance, 0.0, 1.0)
    return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)


def importance_overlay(
    height: int, width: int, boxes: np.ndarray, level: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """An RGBA layer: every pixel takes the color of the most important box covering it.

    Boxes are painted from the least to the most important (by absolute value), each filled
    with red (positive) or blue (negative) at opacity ``MAX_ALPHA * |level|``; a pixel under
    several boxes shows the strongest one, so opacity reads as importance, not as the number
    of overlapping boxes.

    Args:
        height: H in pixels.
        width: W in pixels.
        boxes: ``[N, 4]`` x1, y1, x2, y2 in pixels (x2, y2 exclusive).
        level: ``[N]`` normalized importance in [-1, 1] (:func:`normalize_importance`).
        mask: ``[N]`` bool, False for padded proposals (not painted); None: all real.

    Returns:
        ``[H, W, 4]`` float32 RGBA in [0, 1].

    Example:
        >>> layer = importance_overlay(4, 4, np.array([[0, 0, 2, 2]]), np.array([-1.0]))
        >>> [round(float(v), 2) for v in layer[0, 0]]  # inside the box: blue, opaque
        [0.1, 0.35, 0.9, 0.65]
        >>> layer[3, 3].tolist()  # outside: transparent
        [0.0, 0.0, 0.0, 0.0]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    level = np.asarray(level, dtype=np.float64).reshape(-1)
    real = np.ones(len(boxes), bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    layer = np.zeros((int(height), int(width), 4), dtype=np.float32)
    for i in np.argsort(np.abs(level), kind="stable"):
        if not real[i] or level[i] == 0:
            continue
        x1, y1, x2, y2 = boxes[i]
        cols = slice(max(0, int(np.floor(x1))), min(int(width), int(np.ceil(x2))))
        rows = slice(max(0, int(np.floor(y1))), min(int(height), int(np.ceil(y2))))
        color = POSITIVE_COLOR if level[i] > 0 else NEGATIVE_COLOR
        layer[rows, cols] = (*color, MAX_ALPHA * abs(level[i]))
    return layer


def draw_importance_panel(
    ax: Axes,
    image: np.ndarray,
    boxes: np.ndarray,
    importance: np.ndarray | None,
    title: str = "",
    mask: np.ndarray | None = None,
) -> None:
    """Draw one panel: the image, shaded by the importance of its boxes (if given).

    Args:
        ax: a matplotlib ``Axes``.
        image: ``[H, W, 3]`` uint8 (or float in [0, 1]).
        boxes: ``[N, 4]`` x1, y1, x2, y2 in pixels (x2, y2 exclusive).
        importance: ``[N]``, or None to draw the plain image.
        title: the panel's title.
        mask: ``[N]`` bool, False for padded proposals (not drawn); None: all real.
    """
    height, width = image.shape[:2]
    extent = (0, width, height, 0)
    shown = image if importance is None else faded_gray(image)
    ax.imshow(shown, extent=extent, interpolation="nearest")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if importance is None:
        return
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    real = np.ones(len(boxes), bool) if mask is None else np.asarray(mask, bool)
    level = normalize_importance(importance, real)
    layer = importance_overlay(height, width, boxes, level, real)
    ax.imshow(layer, extent=extent, interpolation="nearest")
    if is_patch_grid(boxes, height, width):  # patch tokens: the grid, faintly
        for x in sorted({float(v) for v in boxes[:, 0]} - {0.0}):
            ax.axvline(x, color="white", linewidth=0.4, alpha=0.7)
        for y in sorted({float(v) for v in boxes[:, 1]} - {0.0}):
            ax.axhline(y, color="white", linewidth=0.4, alpha=0.7)
    strongest = [i for i in np.argsort(-np.abs(level), kind="stable") if real[i] and level[i]]
    for i in strongest[:TOP_K]:
        x1, y1, x2, y2 = boxes[i]
        color = POSITIVE_COLOR if level[i] > 0 else NEGATIVE_COLOR
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.4)
        )


def draw_importance_figure(
    image: np.ndarray,
    boxes: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray]],
    title: str,
    *,
    mask: np.ndarray | None = None,
    show_image: bool = True,
    image_title: str = "image",
    note: str | None = None,
) -> Figure:
    """One row of panels: (the plain image, then) the image shaded by each importance.

    Args:
        image: ``[H, W, 3]`` uint8 (or float in [0, 1]).
        boxes: ``[N, 4]`` x1, y1, x2, y2 in pixels.
        panels: ``(panel title, importance [N])`` per panel.
        title: the figure's title (e.g. the question and its ground-truth answer).
        mask: ``[N]`` bool, False for padded proposals; None: all real.
        show_image: start with the plain image (the left column of the paper's Figure 2).
        image_title: that panel's title.
        note: an extra line under the panels (e.g. that the image is not available).

    Returns:
        The figure (Agg canvas attached: ``figure.savefig`` works, no window opens), with
        ``len(panels) + show_image`` axes.

    Example:
        >>> figure = draw_importance_figure(
        ...     np.zeros((8, 8, 3), np.uint8), np.array([[0, 0, 4, 4], [2, 2, 8, 8]]),
        ...     [("human", np.array([1.0, 0.0])), ("model", np.array([-0.5, 0.3]))], "Q?",
        ... )
        >>> [ax.get_title() for ax in figure.axes]
        ['image', 'human', 'model']
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3], got shape {image.shape}")
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4], got shape {boxes.shape}")
    for name, values in panels:
        if np.asarray(values).shape != (len(boxes),):
            raise ValueError(
                f"panel {name!r}: importance must be [N] = [{len(boxes)}], "
                f"got shape {np.asarray(values).shape}"
            )
    count = len(panels) + int(show_image)
    if count == 0:
        raise ValueError("nothing to draw: no panels and show_image=False")
    figure = Figure(figsize=(PANEL_INCHES * count, PANEL_INCHES + 1.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, count, squeeze=False)[0]
    if show_image:
        draw_importance_panel(axes[0], image, boxes, None, image_title)
    for ax, (name, values) in zip(axes[int(show_image) :], panels, strict=True):
        draw_importance_panel(ax, image, boxes, np.asarray(values), name, mask)
    figure.suptitle(title, fontsize=10)
    unit = "patch" if is_patch_grid(boxes, *image.shape[:2]) else "box"
    legend = (
        "red: positive, blue: negative importance; opacity: normalized |importance| "
        f"(strongest {unit} on top); outlined: the {TOP_K} most important {unit}es"
    )
    text = legend if note is None else f"{note}\n{legend}"
    columns = len(panels) + int(show_image)
    text = "\n".join(textwrap.fill(line, width=55 * columns) for line in text.splitlines())
    figure.text(0.5, 0.02, text, ha="center", fontsize=7)
    figure.subplots_adjust(left=0.02, right=0.98, top=0.78, bottom=0.14, wspace=0.06)
    return figure


def _answer_title(name: str, answer: str, correct: bool | None, rho: float | None) -> str:
    mark = "" if correct is None else (" ✓" if correct else " ✗")
    line = f"{name}: {answer!r}{mark}"
    return line if rho is None or not np.isfinite(rho) else f"{line}\nρ(human) = {rho:+.2f}"


def hint_comparison_figure(
    image: np.ndarray,
    boxes: np.ndarray,
    question: str,
    ground_truth: str,
    human_importance: np.ndarray | None,
    models: Sequence[tuple[str, str, bool | None, np.ndarray, float | None]],
    *,
    mask: np.ndarray | None = None,
    note: str | None = None,
    image_title: str = "image",
) -> Figure:
    """The paper's Figure 2 for one question.

    Args:
        image: ``[H, W, 3]``.
        boxes: ``[N, 4]`` in pixels.
        question: the question text.
        ground_truth: its ground-truth answer (the importance explains this decision).
        human_importance: ``[N]``, or None when the question has none (panel left out).
        models: ``(name, answer, correct or None, network importance [N], rho or None)`` per
            model, e.g. the base model then the HINTed one.
        mask: ``[N]`` bool, False for padded proposals.
        note: an extra line under the panels.
        image_title: the title of the plain image's panel.

    Returns:
        The figure: image, human importance (if any), one panel per model.
    """
    panels: list[tuple[str, np.ndarray]] = []
    if human_importance is not None:
        panels.append(("human importance", np.asarray(human_importance)))
    for name, answer, correct, importance, rho in models:
        panels.append((_answer_title(name, answer, correct, rho), np.asarray(importance)))
    return draw_importance_figure(
        image,
        boxes,
        panels,
        f"Q: {question}\nGT: {ground_truth!r} (importance of the ground-truth answer)",
        mask=mask,
        image_title=image_title,
        note=note,
    )


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``figure`` as a PNG, atomically.

    Returns:
        The path.
    """
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)
