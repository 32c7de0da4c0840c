"""Pictures of grounding: proposal importance drawn over the image (the HINT paper's figures).

* :mod:`hint_lightning.viz.importance`: pure drawing on arrays (:func:`draw_importance_figure`,
  reusable by loggers, e.g. ``wandb.Image(figure)``).
* :mod:`hint_lightning.viz.questions`: a checkpoint's answers and network importance on chosen
  questions (:func:`importance_for_questions`).
* :mod:`hint_lightning.viz.figure2`: Figure 2 (base vs HINTed VQA model), one PNG per question.
* :mod:`hint_lightning.viz.captioning`: the extension point for Figure 3 (captioning).
* ``python -m hint_lightning.viz --base CKPT --hinted CKPT --output DIR``: the command line.
"""

from __future__ import annotations

from hint_lightning.viz.importance import (
    blank_canvas,
    draw_importance_figure,
    hint_comparison_figure,
    normalize_importance,
    save_figure,
)

__all__ = [
    "blank_canvas",
    "draw_importance_figure",
    "hint_comparison_figure",
    "normalize_importance",
    "save_figure",
]
