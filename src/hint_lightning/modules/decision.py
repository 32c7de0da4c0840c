"""Decision scores: which scalar per sample HINT explains.

The paper explains the score of the ground-truth decision. For VQA's multi-label answers there
are two common readings, both available through ``model.decision_score``:

- ``top_answer``: the logit of the ground-truth answer with the highest target (the paper);
- ``all_answers``: the sum of the logits of every answer with a nonzero target (the public
  re-implementation of HINT and SCR).
"""

from __future__ import annotations

from collections.abc import Callable

import torch  # noqa: F401  (the doctest examples use it)
from torch import Tensor


def top_answer_logit(logits: Tensor, targets: Tensor) -> Tensor:
    """Logit of each sample's highest-target answer.

    Args:
        logits: ``[B, A]`` answer logits.
        targets: ``[B, A]`` soft targets.

    Returns:
        ``[B]`` scores.

    Example:
        >>> top_answer_logit(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.3, 1.0, 0.0]]))
        tensor([2.])
    """
    return logits.gather(1, targets.argmax(dim=1, keepdim=True)).squeeze(1)


def positive_answers_logit_sum(logits: Tensor, targets: Tensor) -> Tensor:
    """Sum of the logits of every answer with a nonzero target.

    Args:
        logits: ``[B, A]`` answer logits.
        targets: ``[B, A]`` soft targets.

    Returns:
        ``[B]`` scores.

    Example:
        >>> positive_answers_logit_sum(
        ...     torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.3, 1.0, 0.0]])
        ... )
        tensor([3.])
    """
    return (logits * (targets > 0)).sum(dim=1)


DECISION_SCORES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "top_answer": top_answer_logit,
    "all_answers": positive_answers_logit_sum,
}


def get_decision_score(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Look up a decision score by its config name (``top_answer`` or ``all_answers``)."""
    try:
        return DECISION_SCORES[name]
    except KeyError:
        raise ValueError(
            f"unknown decision_score {name!r}; choose one of {sorted(DECISION_SCORES)}"
        ) from None
