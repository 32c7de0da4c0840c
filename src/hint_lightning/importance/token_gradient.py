"""Gradient on patch tokens: HINT's importance with the tokens after the embedding as proposals.

``alpha_k = sum_h d score / d t_kh`` for the patch token ``t_k`` a ViT builds from patch ``k``
(:class:`~hint_lightning.models.vit_vqa.ViTVQA`, whose proposals are its tokens): exactly
:class:`~hint_lightning.importance.gradient.Gradient` (Captum's ``Saliency(abs=False)`` summed
over the token dimension), under the name the patch-token experiments use.

**Caveat (pre-norm transformers).** A token enters a pre-norm layer through LayerNorm, which is
invariant to adding the same value to every dimension, so the *summed* gradient of a token
vanishes up to rounding on such a model (the shift ``t_k + c 1`` changes nothing). It stays
well defined and exact (the property is tested), but it carries no signal there; use
:class:`~hint_lightning.importance.token_input_x_gradient.TokenInputXGradient`, the
ViT experiments' default.
"""

from __future__ import annotations

from hint_lightning.importance.gradient import Gradient

__all__ = ["TokenGradient"]


class TokenGradient(Gradient):
    """:class:`~hint_lightning.importance.gradient.Gradient` on patch tokens (module docstring).

    Example:
        >>> import torch
        >>> score = lambda p, m: (p * torch.tensor([0.5, -1.0])).sum(dim=(1, 2))
        >>> TokenGradient().attribute(score, torch.ones(1, 2, 2))
        tensor([[-0.5000, -0.5000]])
    """

    name = "token_gradient"
