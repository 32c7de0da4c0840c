"""The backbone contract: what a model must offer to be grounded by hint-lightning.

A backbone is a plain ``nn.Module`` (no Lightning, no loss, no data files) that makes decisions
from a set of region proposals. Two shapes of it exist:

**Vision-and-language backbones** (VQA, captioning), :class:`Backbone`::

    logits, attention = net(features, boxes, tokens, proposal_mask)                 # positional
    logits, attention = net(features, boxes, tokens, proposal_mask, proposal_shift=shift)

- ``features [B, N, D]``: proposal features, the tensor importance is taken against;
- ``boxes [B, N, 4]``: x1, y1, x2, y2 normalized to [0, 1] (a backbone may ignore them);
- ``tokens``: the question ``[B, T]`` (VQA) or the caption prefix ``[B, T]`` (captioning),
  0 = padding;
- ``proposal_mask [B, N]`` bool (None: every proposal is real): a masked proposal must not
  change the output, whatever its features hold. **A row whose proposals are all masked is
  legal** (importance methods and faithfulness metrics remove every proposal): its attention
  is all zeros, never NaN, and its outputs and their gradients are finite;
- returns ``(logits, attention)``: VQA ``[B, A]`` and ``[B, N]``; captioning ``[B, T, V]`` and
  ``[B, T, N]``; ``attention`` is 0 on masked proposals and sums to 1 over the real ones (None
  for a backbone without attention: declare ``returns_attention = False``).

**Proposal classifiers** (``ClassificationModule``), :class:`ProposalClassifier`::

    logits = net(proposals)                          # [B, N, D] -> [B, C], or (logits, attention)

Optional capabilities, declared as class attributes (absent means False, except where noted):

- ``supports_proposal_shift``: ``forward`` accepts ``proposal_shift [B, N]`` and returns exactly
  the output for ``features + proposal_shift[..., None]`` without forming it (apply
  ``t * W.sum(dim=1)`` after the first linear layer). ``Gradient`` then takes network
  importance through the shift: the same numbers, far cheaper (the fast path);
- ``supports_proposal_mask`` (default True for :class:`Backbone`, False for classifiers):
  ``proposal_mask`` switches proposals off; importance methods and objectives with the
  ``drop`` replacement need it;
- ``returns_attention`` (default True for :class:`Backbone`, False for classifiers): the
  ``Attention`` importance method and attention alignment need it;
- ``embed_proposals(features [B, N, D]) -> [B, N, H]``: the module calls it on the batch's
  features and gives ``forward`` (and every importance method and objective) its result: the
  proposals are then the tokens after the embedding (``ViTVQA``: patch pixels -> tokens);
- ``returns_internals`` and ``record_internals()``, a context manager yielding a
  :class:`~hint_lightning.importance.internals.TransformerInternals` filled by the forward
  passes run inside it (attention maps of every layer): the transformer importance methods
  need it;
- ``initialize_word_embeddings(vectors [V, E])``: copy pre-trained word vectors (GloVe) in
  (``UpDnVQA`` also keeps the older ``question_encoder.initialize_embeddings``).

A backbone lacking a capability still trains and evaluates; only a chosen importance method or
objective that truly needs it is refused, at start-up, with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = [
    "Backbone",
    "BackboneCapabilities",
    "ProposalClassifier",
    "capabilities",
    "embed_proposals",
    "load_word_embeddings",
]


@runtime_checkable
class Backbone(Protocol):
    """A vision-and-language backbone (module docstring)."""

    def __call__(
        self,
        features: Tensor,
        boxes: Tensor,
        tokens: Tensor,
        proposal_mask: Tensor | None = None,
        *,
        proposal_shift: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``(logits, attention)`` of the proposals and tokens."""
        ...


@runtime_checkable
class ProposalClassifier(Protocol):
    """A classifier over proposals: ``[B, N, D] -> [B, C]`` (or ``(logits, attention)``)."""

    def __call__(self, proposals: Tensor) -> Tensor | tuple[Tensor, Tensor | None]:
        """Logits of the proposals."""
        ...


@dataclass(frozen=True)
class BackboneCapabilities:
    """What a backbone offers beyond the required forward pass.

    Attributes:
        name: the backbone's class name (for messages).
        shift: ``proposal_shift`` (exact fast path for gradient importance).
        mask: ``proposal_mask`` switches proposals off.
        attention: attention weights over proposals are returned.
        word_embeddings: pre-trained word vectors can be loaded.
        internals: attention maps of every layer can be recorded (``returns_internals``).
    """

    name: str
    shift: bool
    mask: bool
    attention: bool
    word_embeddings: bool
    internals: bool = False

    def offers(self) -> frozenset[str]:
        """The capability names offered (``shift``, ``mask``, ``attention``, ``internals``)."""
        names = ("shift", "mask", "attention", "internals")
        return frozenset(name for name in names if getattr(self, name))


def capabilities(net: Any, *, mask: bool = True, attention: bool = True) -> BackboneCapabilities:
    """The declared capabilities of ``net`` (a compiled module is looked through).

    Args:
        net: the backbone.
        mask: the default of ``supports_proposal_mask`` (True for :class:`Backbone`).
        attention: the default of ``returns_attention`` (True for :class:`Backbone`).
    """
    inner = getattr(net, "_orig_mod", net)  # torch.compile wraps the module
    encoder = getattr(inner, "question_encoder", None)
    return BackboneCapabilities(
        name=type(inner).__name__,
        shift=bool(getattr(inner, "supports_proposal_shift", False)),
        mask=bool(getattr(inner, "supports_proposal_mask", mask)),
        attention=bool(getattr(inner, "returns_attention", attention)),
        word_embeddings=callable(getattr(inner, "initialize_word_embeddings", None))
        or callable(getattr(encoder, "initialize_embeddings", None)),
        internals=bool(getattr(inner, "returns_internals", False)),
    )


def embed_proposals(net: Any, features: Tensor) -> Tensor:
    """The proposals a backbone's forward reads: ``net.embed_proposals(features)`` when it has
    that hook (a ViT: patch pixels -> patch tokens, so that importance methods and objectives
    see the tokens after the embedding), else ``features`` itself."""
    inner = getattr(net, "_orig_mod", net)
    hook = getattr(inner, "embed_proposals", None)
    return hook(features) if callable(hook) else features


def load_word_embeddings(net: nn.Module, vectors: Tensor) -> bool:
    """Copy word vectors into ``net`` through its hook; False when it has none."""
    inner = getattr(net, "_orig_mod", net)
    hook = getattr(inner, "initialize_word_embeddings", None)
    if callable(hook):
        hook(vectors)
        return True
    encoder = getattr(inner, "question_encoder", None)
    if encoder is not None and callable(getattr(encoder, "initialize_embeddings", None)):
        encoder.initialize_embeddings(vectors)
        return True
    return False
