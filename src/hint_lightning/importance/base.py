"""The contract every importance method follows, and the forward function it calls.

One call, Captum's style::

    method.attribute(forward_fn, proposals, proposal_mask=None, *, create_graph=False)
    # -> [B, N]: one signed score per proposal

**The forward function.** ``forward_fn(proposals [B', N, D], proposal_mask [B', N] bool) ->
[B']`` returns the score of the decision being explained (e.g. the logit of the ground-truth
answer) for every row. Methods that perturb the input call it on ``B' = K * B`` rows laid out
*copy-major*: row ``k * B + b`` is perturbation ``k`` of sample ``b``. A forward function
therefore tiles whatever it captured for the ``B`` samples (question tokens, the decision's
answer index) to ``B'`` rows with :func:`~hint_lightning.importance.replacement.tile_batch`.
Methods never call it under ``torch.no_grad`` unless ``create_graph=False`` and they need no
gradient; they always pass a bool mask (all True when ``proposal_mask`` is None).

**Capabilities.** A forward function may offer more than its call; the modules build a
:class:`DecisionFunction` to say what:

- ``"mask"``: it honours ``proposal_mask`` (a False proposal is never seen). The ``drop``
  replacement needs it. A plain callable is assumed to honour the mask it is given.
- ``"with_shift"``: ``with_shift(proposals, proposal_mask, shift [B, N]) -> [B]`` equals
  ``fn(proposals + shift[..., None], proposal_mask)`` without forming the sum (exact: the
  model adds the shift after its first linear layers, see ``UpDnVQA(proposal_shift=...)``).
  :class:`~hint_lightning.importance.gradient.Gradient` then differentiates with respect to the
  ``[B, N]`` shift instead of the ``[B, N, D]`` proposals: the same numbers, far fewer FLOPs.
- ``"attention"``: ``attention(proposals, proposal_mask) -> [B, N]``, the model's attention
  weights over the proposals (:class:`~hint_lightning.importance.attention.Attention`).
- ``"internals"``: ``internals(proposals, proposal_mask) -> (scores [B], TransformerInternals)``,
  the attention maps of every layer (:mod:`hint_lightning.importance.internals`), for the
  transformer methods (attention Grad-CAM, rollout, Chefer et al.'s relevance).

Each method declares what it needs (:attr:`ImportanceMethod.requires`) and what it costs
(:meth:`ImportanceMethod.forward_passes`), so that a module can refuse a method its backbone
cannot serve at start-up (:meth:`ImportanceMethod.check_capabilities`), and a method called with
a forward function that lacks a capability raises a ``ValueError`` naming both.

**Results.** ``[B, N]`` in the dtype of ``proposals``; padded slots (``proposal_mask`` False)
are 0 for every method. With ``create_graph=True`` the result is differentiable (with respect
to the model's parameters and to ``proposals``), so a training objective can back-propagate a
loss on it (a gradient of a gradient for gradient-based methods); with ``create_graph=False``
it carries no graph.

**Empty sets.** With ``replacement="drop"`` a perturbation can remove every proposal of a
sample (keep-one-in's "none kept", KernelSHAP's empty coalition, leave-one-out on a sample with
one real proposal). The model then receives an all-False mask row and the score of that row is
whatever the model gives an empty set (e.g. the answer predicted from the question alone when
the model gives zero attention to an all-masked row). A model that returns a non-finite score
for an empty set makes the method raise a ``ValueError`` saying so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hint_lightning.utils.masks import as_proposal_mask

ForwardFn = Callable[[Tensor, Tensor], Tensor]
"""``forward_fn(proposals [B', N, D], proposal_mask [B', N] bool) -> scores [B']``."""

CAPABILITIES: dict[str, str] = {
    "mask": "support for proposal_mask (a False proposal is never seen)",
    "with_shift": "with_shift(proposals, proposal_mask, shift), the exact proposal-shift path",
    "attention": "attention(proposals, proposal_mask), the model's attention over proposals",
    "internals": "internals(proposals, proposal_mask) -> (scores, TransformerInternals), the "
    "attention maps and the proposal tokens of every layer (a transformer declaring "
    "returns_internals)",
}
"""Every capability a forward function can offer, with what it means."""

DEFAULT_MAX_BATCH_ROWS = 1024
"""Default upper bound on the rows of one forward call of a perturbation or path method."""


@dataclass(frozen=True)
class DecisionFunction:
    """A forward function together with the optional capabilities it offers.

    Calling it calls ``fn``. Built by the modules around their backbone.

    Args:
        fn: ``fn(proposals [B', N, D], proposal_mask [B', N] bool) -> scores [B']``.
        with_shift: ``with_shift(proposals, proposal_mask, shift [B, N]) -> [B]``, equal to
            ``fn(proposals + shift[..., None], proposal_mask)`` (None: not offered).
        attention: ``attention(proposals, proposal_mask) -> [B, N]`` attention weights (None:
            not offered).
        internals: ``internals(proposals, proposal_mask) -> (scores [B], TransformerInternals)``
            (:mod:`hint_lightning.importance.internals`; None: not offered).
        supports_mask: whether ``fn`` honours ``proposal_mask``.

    Example:
        >>> weights = torch.tensor([1.0, -1.0])
        >>> score = DecisionFunction(lambda p, m: (p.sum(-1) * m * weights).sum(-1))
        >>> score(torch.ones(1, 2, 3), torch.tensor([[True, True]]))
        tensor([0.])
        >>> sorted(capabilities(score))
        ['mask']
    """

    fn: ForwardFn
    with_shift: Callable[[Tensor, Tensor, Tensor], Tensor] | None = field(
        default=None, kw_only=True
    )
    attention: Callable[[Tensor, Tensor], Tensor] | None = field(default=None, kw_only=True)
    internals: Callable[[Tensor, Tensor], tuple[Tensor, Any]] | None = field(
        default=None, kw_only=True
    )
    supports_mask: bool = field(default=True, kw_only=True)

    def __call__(self, proposals: Tensor, proposal_mask: Tensor) -> Tensor:
        """``fn(proposals, proposal_mask)``: scores ``[B']``."""
        return self.fn(proposals, proposal_mask)


def capabilities(forward_fn: Any) -> frozenset[str]:
    """The capabilities (keys of :data:`CAPABILITIES`) a forward function offers.

    A plain callable offers ``"mask"`` only; a :class:`DecisionFunction` (or any object with
    the same attributes) offers ``with_shift`` and ``attention`` when they are not None and
    ``mask`` unless ``supports_mask`` is False.
    """
    offered = set()
    if getattr(forward_fn, "supports_mask", True):
        offered.add("mask")
    for name in ("with_shift", "attention", "internals"):
        if callable(getattr(forward_fn, name, None)):
            offered.add(name)
    return frozenset(offered)


class ImportanceMethod(ABC):
    """One importance method: a score per proposal for each sample's decision.

    Subclasses implement :meth:`_attribute` (inputs already checked) and
    :meth:`forward_passes`, and override :attr:`requires` when they need a capability.
    """

    name: str = ""
    """The method's name in :data:`hint_lightning.importance.METHODS` and ``conf/importance``."""

    uses_gradients: bool = False
    """Whether the method differentiates the model (then it cannot run inside
    ``torch.inference_mode``: evaluate with ``Trainer(inference_mode=False)``)."""

    @property
    def requires(self) -> frozenset[str]:
        """Capabilities (keys of :data:`CAPABILITIES`) the forward function must offer."""
        return frozenset()

    @abstractmethod
    def forward_passes(self, num_proposals: int) -> int:
        """Forward evaluations per sample of one :meth:`attribute` call.

        Gradient-based methods also run one backward pass over the same rows.

        Args:
            num_proposals: ``N``.
        """

    def check_capabilities(
        self, offered: Iterable[str], where: str = "the forward function"
    ) -> None:
        """Raise unless ``offered`` covers :attr:`requires`.

        Args:
            offered: capability names, e.g. :func:`capabilities` of a forward function.
            where: what offers them, for the message (e.g. ``"backbone UpDnVQA"``).

        Raises:
            ValueError: naming the method and each missing capability.
        """
        missing = sorted(self.requires - set(offered))
        if missing:
            needs = "; ".join(f"{name}: {CAPABILITIES[name]}" for name in missing)
            raise ValueError(
                f"importance method {self!r} needs what {where} does not offer: {needs}"
            )

    def check(self, forward_fn: Any) -> None:
        """:meth:`check_capabilities` of a forward function's :func:`capabilities`."""
        self.check_capabilities(capabilities(forward_fn))

    def attribute(
        self,
        forward_fn: ForwardFn,
        proposals: Tensor,
        proposal_mask: Tensor | None = None,
        *,
        create_graph: bool = False,
    ) -> Tensor:
        """Importance of every proposal for each sample's decision.

        Args:
            forward_fn: see the module docstring (a plain callable or a
                :class:`DecisionFunction`).
            proposals: ``[B, N, D]`` proposal features.
            proposal_mask: ``[B, N]`` bool or 0/1, True for real proposals (None: all real).
            create_graph: keep the result differentiable (training); False for evaluation.

        Returns:
            ``[B, N]`` signed importance, 0 at padded slots.

        Raises:
            ValueError: on malformed inputs, or when ``forward_fn`` lacks a needed capability.
        """
        if not isinstance(proposals, Tensor) or proposals.ndim != 3:
            shape = tuple(proposals.shape) if isinstance(proposals, Tensor) else type(proposals)
            raise ValueError(f"{self!r}: proposals must be a [B, N, D] tensor, got {shape}")
        if not proposals.is_floating_point():
            raise ValueError(f"{self!r}: proposals must be floating point, got {proposals.dtype}")
        self.check(forward_fn)
        batch, slots, _ = proposals.shape
        mask = as_proposal_mask(proposal_mask, (batch, slots))
        if mask is None:
            mask = torch.ones(batch, slots, dtype=torch.bool, device=proposals.device)
        importance = self._attribute(forward_fn, proposals, mask, create_graph)
        importance = importance.masked_fill(~mask, 0.0)
        return importance if create_graph else importance.detach()

    @abstractmethod
    def _attribute(
        self, forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, create_graph: bool
    ) -> Tensor:
        """:meth:`attribute` on checked inputs (``proposal_mask`` is a ``[B, N]`` bool tensor)."""

    def _arguments(self) -> dict[str, Any]:
        """The constructor arguments shown by ``repr``."""
        return {}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self._arguments().items())
        return f"{type(self).__name__}({arguments})"


def scores_of(
    forward_fn: ForwardFn, proposals: Tensor, proposal_mask: Tensor, where: str
) -> Tensor:
    """Call ``forward_fn`` and check that it returned one score per row.

    Raises:
        ValueError: naming ``where`` (the method) and the shape received.
    """
    scores = forward_fn(proposals, proposal_mask)
    rows = proposals.shape[0]
    if not isinstance(scores, Tensor) or tuple(scores.shape) != (rows,):
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(
            f"{where}: forward_fn must return one decision score per row, shape ({rows},), "
            f"got {got}"
        )
    return scores


def copy_chunks(copies: int, batch: int, max_batch_rows: int | None) -> Iterator[tuple[int, int]]:
    """Split ``copies`` copy-major copies of a batch into calls of at most ``max_batch_rows`` rows.

    Args:
        copies: ``K``.
        batch: ``B``.
        max_batch_rows: bound on ``k * B`` per call (None: one call); a chunk holds at least one
            copy.

    Yields:
        ``(start, stop)`` copy ranges.

    Example:
        >>> list(copy_chunks(5, 4, 8))
        [(0, 2), (2, 4), (4, 5)]
    """
    per_call = copies if max_batch_rows is None else max(1, max_batch_rows // max(batch, 1))
    for start in range(0, copies, per_call):
        yield start, min(copies, start + per_call)


def check_positive(value: int, name: str, owner: str) -> int:
    """Return ``value`` if it is a positive int, else raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


def check_max_batch_rows(value: int | None, owner: str) -> int | None:
    """Return ``value`` if it is None or a positive int."""
    return None if value is None else check_positive(value, "max_batch_rows", owner)


def require_grad_mode(where: str) -> None:
    """Raise when gradients cannot be taken (inside ``torch.inference_mode``)."""
    if torch.is_inference_mode_enabled():
        raise ValueError(
            f"{where} takes gradients and cannot run inside torch.inference_mode: evaluate with "
            "Trainer(inference_mode=False)"
        )
