"""Extension point for the paper's Figure 3: the importance behind one visual word of a caption.

Not implemented yet: the captioning LightningModule and DataModule are not finished. This
module fixes where the captioning variant goes and what it must return, so that the drawing
code needs no change when it lands:

1. ``importance_for_caption_words(ckpt_path, items, split)`` mirrors
   :func:`hint_lightning.viz.questions.importance_for_questions`. ``items`` are
   ``(image_id, caption, word position)`` triples; for each, the decision is the ground-truth
   word at that step, ``o_t = logits[b, t, w_t]``, and its network importance is the *full*
   importance of :mod:`hint_lightning.models.updn_captioner` (a ``[B, N]`` proposal shift, one
   row per visual word: the gradient of one decision per row). The human importance is that of
   the word's COCO category mask (:mod:`hint_lightning.data.visual_words`), scored against
   the boxes like VQA-HAT maps. It returns the same keys as the VQA function, with
   ``questions`` holding the caption with the word marked (e.g. ``"a man eating with a
   [fork]"``), ``ground_truth`` the visual word and ``predictions`` the word the model
   generates at that step under teacher forcing.
2. :func:`hint_lightning.viz.figure2.write_question_figures` then draws base vs HINTed
   captioner unchanged (its titles read "Q:" and "GT:": pass a ``title`` to
   :func:`hint_lightning.viz.importance.draw_importance_figure` directly for caption wording).
3. ``python -m hint_lightning.viz`` picks the variant from the data info stored in the
   checkpoint (``stored_run(ckpt)[1]``: a caption vocabulary instead of answers); today
   :func:`hint_lightning.viz.questions.importance_for_questions` refuses non-VQA checkpoints
   with ``NotImplementedError`` pointing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["importance_for_caption_words"]


def importance_for_caption_words(
    ckpt_path: str, items: Sequence[tuple[int, str, int]], split: str = "test"
) -> dict[str, Any]:
    """Network importance of visual words of captions (the paper's Figure 3): not yet.

    Args:
        ckpt_path: a captioning checkpoint.
        items: ``(image_id, caption, word position)`` per picture.
        split: the split the images come from.

    Returns:
        The keys of :func:`hint_lightning.viz.questions.importance_for_questions` (see the
        module docstring).

    Raises:
        NotImplementedError: always, until the captioning model is finished.
    """
    raise NotImplementedError(
        "the captioning variant of the pictures (the HINT paper's Figure 3) is an extension "
        "point: it needs the captioning LightningModule, which is not finished yet; see "
        "hint_lightning.viz.captioning for the contract"
    )
