"""Bottom-Up Top-Down captioning model (Anderson et al. 2018), the captioner HINT tunes.

One decoding step ``t`` reads like the paper's figure::

    v_bar  = mean_i v_i                                      (real proposals only)
    h1_t   = AttentionLSTM([h2_{t-1}, v_bar, E w_{t-1}], h1_{t-1})
    a_t    = softmax_i(w . tanh(W_v v_i + W_h h1_t))         (512-d; padded proposals masked)
    v_hat  = sum_i a_t,i v_i
    h2_t   = LanguageLSTM([v_hat, h1_t], h2_{t-1})
    logits = W_o dropout(h2_t)                               p(w_t | w_<t, image) = softmax

Both LSTMs are ``nn.LSTMCell``, never ``nn.LSTM``: cuDNN's fused RNNs have no double backward,
and HINT differentiates a gradient. ``LSTMCell`` is a composite of differentiable ops on the CPU
and a fused cell with a differentiable backward on CUDA, so the second backward works on both.
It is a plain ``nn.Module``: no Lightning, no loss, no data files. Boxes are accepted for
interface stability and ignored, as in the reference model.

Tokens (caption vocabulary, unlike the VQA question vocabulary): 0 :data:`PAD_INDEX` ``<pad>``,
1 :data:`BOS_INDEX` ``<bos>``, 2 :data:`EOS_INDEX` ``<eos>``, 3 :data:`UNK_INDEX` ``<unk>``. Teacher
forcing reads ``[<bos>, w_1, ..., w_{T-1}]`` and predicts ``[w_1, ..., w_{T-1}, <eos>]``; decoders
return the words they generate, their ``<eos>`` included, and 0 after it.

Network importance in captioning
--------------------------------
The decision at step ``t`` is the ground-truth word, ``o_t = logits[b, t, w_t]``. The proposals
are read at every step, so ``o_t`` depends on them through step ``t``'s own reads (mean feature,
attention projection, attended feature) *and* through the recurrent states, which carry what
steps ``< t`` read (steps ``> t`` cannot matter). Two candidate importances:

- *full*: ``alpha_r = sum_i d o_t / d P^r_i``, the total derivative;
- *own use*: the derivative through step ``t``'s reads only, the states it receives held fixed.

**This model's HINT importance is the full one.** It is the paper's equation 1 as written (the
gradient of the decision score with respect to the proposal features P), it is what
``network_importance(o_t, features)`` returns on the plain path, and it is what a Grad-CAM-style
picture of "which regions made the model say *fork*" shows. HINT aims at what the model *relies*
on: visual evidence read at earlier steps and carried in the state is reliance too (after "a man
eating with a", the word can be decided from the state alone). Aligning only the own-use part
would leave that route unconstrained: the ranking loss could be met by step ``t``'s reads while
the word is decided from the state.

Both are available through ``proposal_shift``, exactly and without forming a ``[B, N, D]``
gradient:

- ``[B, N]``, shared by all steps (**the HINT fast path**): the output equals the output for
  ``features + proposal_shift[..., None]``, so ``d o_t / d proposal_shift[b]`` is the full
  importance. One backward of the summed decision scores gives it for every row *when each row
  holds one decision*. A gradient is one vector per scalar: the sum of several decisions of the
  same caption yields the sum of their importances. For K visual words in one caption, repeat the
  row K times with one decision each (the caption may be cut after the decision step: later steps
  cannot change ``o_t``).
- ``[B, T, N]``, one shift per step: step ``t`` reads ``features + proposal_shift[:, t, :, None]``
  and other steps read ``features`` (the states still carry step ``t``'s reads forward). For a
  row with one decision at step ``t``, ``grad[b, s]`` is the part of the full importance that
  flows through step ``s``'s reads: zero for ``s > t``, the own-use importance at ``s = t``, and
  the full importance when summed over ``s``. With several decisions per row it mixes them too:
  the gradient at step ``s`` collects every decision at a step ``>= s``.

The shift enters the three places the proposals are read, exactly: the mean feature and the
attended feature get ``mean_i(t_i)`` and ``sum_i a_i t_i`` added to every coordinate (those are
``[B, D]`` vectors feeding an LSTM whose input gradient is formed in full anyway, so this costs
what ``W.sum(dim=1)`` would); the attention projection gets ``t_i * W_v.sum(dim=1)`` (the
``[B, N, D]`` product that the fast path avoids differentiating), as in ``UpDnVQA``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from hint_lightning.models.caption_decoding import beam_search, greedy_decode
from hint_lightning.models.layers import masked_softmax, weight_normed_linear
from hint_lightning.text.tokens import BOS_INDEX, EOS_INDEX, PAD_INDEX
from hint_lightning.text.tokens import CAPTION_UNK_INDEX as UNK_INDEX

__all__ = [
    "BOS_INDEX",
    "EOS_INDEX",
    "PAD_INDEX",
    "UNK_INDEX",
    "AdditiveAttention",
    "CaptionOutput",
    "DecoderState",
    "EncodedProposals",
    "StepOutput",
    "UpDnCaptioner",
]


class CaptionOutput(NamedTuple):
    """What :meth:`UpDnCaptioner.forward` returns.

    Attributes:
        logits: ``[B, T, V]`` word logits at every step (``log_softmax`` gives log p(w_t)).
        attention: ``[B, T, N]`` attention weights at every step (0 on padded proposals).
    """

    logits: Tensor
    attention: Tensor


class DecoderState(NamedTuple):
    """The recurrent state between steps, every field ``[B, hidden_dim]``."""

    attention_hidden: Tensor
    attention_cell: Tensor
    language_hidden: Tensor
    language_cell: Tensor


class EncodedProposals(NamedTuple):
    """The step-independent part of the image, computed once per caption.

    Attributes:
        features: ``[B, N, D]`` proposal features, 0 on padded proposals.
        mean: ``[B, D]`` mean feature over the real proposals.
        projected: ``[B, N, A]`` ``W_v v_i``, the proposal half of the attention.
        mask: ``[B, N]`` bool, False for padded proposals (None: all real).
    """

    features: Tensor
    mean: Tensor
    projected: Tensor
    mask: Tensor | None


class StepOutput(NamedTuple):
    """What :meth:`UpDnCaptioner.step` returns.

    Attributes:
        logits: ``[B, V]`` logits of the next word.
        attention: ``[B, N]`` attention weights of this step.
        state: the :class:`DecoderState` after this step.
    """

    logits: Tensor
    attention: Tensor
    state: DecoderState


class AdditiveAttention(nn.Module):
    """Additive attention over proposals: ``a = softmax_i(w . tanh(W_v v_i + W_h h))``.

    Shapes:
        projected ``[B, N, A]`` (from :meth:`project`), hidden ``[B, H]``, mask ``[B, N]``,
        shift ``[B, N]`` -> weights ``[B, N]``.
    """

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int = 512) -> None:
        super().__init__()
        self.proposal_proj = weight_normed_linear(feature_dim, attention_dim)
        self.hidden_proj = weight_normed_linear(hidden_dim, attention_dim)
        self.score = weight_normed_linear(attention_dim, 1)

    def project(self, proposals: Tensor) -> Tensor:
        """``W_v v_i``: ``[B, N, D]`` -> ``[B, N, A]``; step-independent, computed once."""
        return self.proposal_proj(proposals)

    def forward(
        self,
        projected: Tensor,
        hidden: Tensor,
        mask: Tensor | None = None,
        shift: Tensor | None = None,
    ) -> Tensor:
        """Attention weights ``[B, N]``; padded proposals (``mask`` False) get exactly 0, and a
        row whose proposals are all masked gets all zeros.

        ``shift [B, N]`` is added to every feature of every proposal, exactly and without
        forming the shifted tensor: ``W_v (v_i + t_i 1) = W_v v_i + t_i W_v 1``.
        """
        if shift is not None:
            direction = self.proposal_proj.weight.sum(dim=1)
            projected = projected + shift.unsqueeze(-1) * direction
        hidden = self.hidden_proj(hidden).unsqueeze(1)
        scores = self.score(torch.tanh(projected + hidden)).squeeze(-1)
        return masked_softmax(scores, mask, dim=1)


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over dimension 1 of ``[B, N, ...]`` restricted to ``mask [B, N]`` -> ``[B, ...]``."""
    if mask is None:
        return values.mean(dim=1)
    count = mask.sum(dim=1).clamp(min=1).to(values.dtype)
    return values.sum(dim=1) / count.view(-1, *([1] * (values.ndim - 2)))


class UpDnCaptioner(nn.Module):
    """The UpDn captioner with every size configurable (defaults are the reference sizes).

    Args:
        vocab_size: V, caption vocabulary size (0 <pad>, 1 <bos>, 2 <eos>, 3 <unk>).
        feature_dim: D, the proposal feature size (2048 for bottom-up features).
        embedding_dim: word embedding size.
        hidden_dim: H, the size of both LSTMs.
        attention_dim: A, the size of the additive attention.
        dropout: dropout before the word classifier.

    Example:
        >>> model = UpDnCaptioner(10, feature_dim=6, embedding_dim=4, hidden_dim=5,
        ...                       attention_dim=3).eval()
        >>> features, boxes = torch.randn(2, 4, 6), torch.rand(2, 4, 4)
        >>> captions = torch.tensor([[BOS_INDEX, 5, 6], [BOS_INDEX, 7, PAD_INDEX]])
        >>> logits, attention = model(features, boxes, captions)
        >>> logits.shape, attention.shape
        (torch.Size([2, 3, 10]), torch.Size([2, 3, 4]))
        >>> words = model.beam_search(features, boxes, beam_size=3, max_length=5)
        >>> words.shape[0], words.shape[1] <= 5
        (2, True)
    """

    supports_proposal_shift = True
    """The forward pass accepts ``proposal_shift`` (fast, exact network importance)."""
    supports_proposal_mask = True
    """``proposal_mask`` switches proposals off (an all-masked row is legal: zero attention)."""
    returns_attention = True
    """``forward`` returns the attention weights of every step."""

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int = 2048,
        embedding_dim: int = 1000,
        hidden_dim: int = 1000,
        attention_dim: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if vocab_size <= EOS_INDEX:
            raise ValueError(f"vocab_size must include <pad>, <bos> and <eos>, got {vocab_size}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_INDEX)
        self.attention_lstm = nn.LSTMCell(hidden_dim + feature_dim + embedding_dim, hidden_dim)
        self.attention = AdditiveAttention(feature_dim, hidden_dim, attention_dim)
        self.language_lstm = nn.LSTMCell(feature_dim + hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = weight_normed_linear(hidden_dim, vocab_size)

    # The image, once per caption ------------------------------------------------------------

    def encode(
        self, features: Tensor, boxes: Tensor, proposal_mask: Tensor | None = None
    ) -> EncodedProposals:
        """Precompute what every step reads from the proposals.

        Args:
            features: ``[B, N, D]`` proposal features.
            boxes: ``[B, N, 4]`` boxes (ignored by the reference model).
            proposal_mask: ``[B, N]`` bool, False for padded proposals (None: all real).

        Returns:
            :class:`EncodedProposals`; padded proposals are zeroed, so they never reach the
            output, whatever they hold.
        """
        del boxes  # accepted for interface stability; the reference captioner ignores them
        if proposal_mask is not None:
            features = features.masked_fill(~proposal_mask.unsqueeze(-1), 0.0)
        mean = _masked_mean(features, proposal_mask)
        return EncodedProposals(features, mean, self.attention.project(features), proposal_mask)

    def initial_state(self, proposals: EncodedProposals) -> DecoderState:
        """Zero hidden and cell states for both LSTMs, ``[B, H]`` each."""
        batch = proposals.features.shape[0]
        zeros = proposals.features.new_zeros(batch, self.attention_lstm.hidden_size)
        return DecoderState(zeros, zeros, zeros, zeros)

    # One step -------------------------------------------------------------------------------

    def step(
        self,
        proposals: EncodedProposals,
        previous_tokens: Tensor,
        state: DecoderState,
        proposal_shift: Tensor | None = None,
    ) -> StepOutput:
        """One decoding step: the previous word in, the next word's logits out.

        Args:
            proposals: the image, from :meth:`encode`.
            previous_tokens: ``[B]`` the previous word (``<bos>`` at the first step).
            state: the state after the previous step (:meth:`initial_state` at the first).
            proposal_shift: ``[B, N]`` or None; this step reads ``features +
                proposal_shift[..., None]`` (applied exactly, see the module docstring).

        Returns:
            :class:`StepOutput` with logits ``[B, V]``, attention ``[B, N]`` and the new state.
        """
        return self._advance(proposals, self.embedding(previous_tokens), state, proposal_shift)

    def _advance(
        self,
        proposals: EncodedProposals,
        embedded: Tensor,
        state: DecoderState,
        shift: Tensor | None,
    ) -> StepOutput:
        """:meth:`step` on an embedded previous word ``[B, E]``."""
        mean = proposals.mean
        if shift is not None:
            # mean_i (v_i + t_i 1) = mean_i v_i + mean_i(t_i) 1 (over real proposals)
            mean = mean + _masked_mean(self._real(shift, proposals.mask), proposals.mask)[:, None]
        attention_input = torch.cat([state.language_hidden, mean, embedded], dim=1)
        h1, c1 = self.attention_lstm(
            attention_input, (state.attention_hidden, state.attention_cell)
        )

        weights = self.attention(proposals.projected, h1, proposals.mask, shift)
        attended = torch.einsum("bn,bnd->bd", weights, proposals.features)
        if shift is not None:
            # sum_i a_i (v_i + t_i 1) = sum_i a_i v_i + (a . t) 1
            attended = attended + (weights * self._real(shift, proposals.mask)).sum(1)[:, None]
        language_input = torch.cat([attended, h1], dim=1)
        h2, c2 = self.language_lstm(language_input, (state.language_hidden, state.language_cell))

        logits = self.classifier(self.dropout(h2))
        return StepOutput(logits, weights, DecoderState(h1, c1, h2, c2))

    @staticmethod
    def _real(shift: Tensor, mask: Tensor | None) -> Tensor:
        """The shift with padded proposals zeroed (they are zeroed in the features too)."""
        return shift if mask is None else shift.masked_fill(~mask, 0.0)

    # Teacher forcing ------------------------------------------------------------------------

    def forward(
        self,
        features: Tensor,
        boxes: Tensor,
        captions: Tensor,
        proposal_mask: Tensor | None = None,
        proposal_shift: Tensor | None = None,
    ) -> CaptionOutput:
        """Score every next word of the given captions (teacher forcing).

        Args:
            features: ``[B, N, D]`` proposal features (the tensor HINT differentiates against).
            boxes: ``[B, N, 4]`` boxes x1, y1, x2, y2 normalized to [0, 1] (ignored).
            captions: ``[B, T]`` input tokens, ``<bos>`` first; step ``t`` reads ``captions[:,
                t]`` and predicts the word after it. Right padding is harmless (ignore the
                padded steps in the loss).
            proposal_mask: ``[B, N]`` bool, False for padded proposals (None: all real).
            proposal_shift: None, ``[B, N]`` (every step reads ``features +
                proposal_shift[..., None]``: the full-importance fast path) or ``[B, T, N]``
                (step ``t`` reads ``features + proposal_shift[:, t, :, None]``). Applied
                exactly, without forming the shifted features; see the module docstring for
                which gradient each gives.

        Returns:
            :class:`CaptionOutput` with logits ``[B, T, V]`` and attention ``[B, T, N]``.
        """
        batch, steps = captions.shape
        if proposal_shift is not None:
            expected = [(batch, features.shape[1]), (batch, steps, features.shape[1])]
            if tuple(proposal_shift.shape) not in expected:
                raise ValueError(
                    f"proposal_shift must be [B, N] or [B, T, N] = {expected}, "
                    f"got {tuple(proposal_shift.shape)}"
                )
        proposals = self.encode(features, boxes, proposal_mask)
        state = self.initial_state(proposals)
        embedded = self.embedding(captions)
        logits, attention = [], []
        for t in range(steps):
            shift = proposal_shift
            if shift is not None and shift.ndim == 3:
                shift = shift[:, t]
            output = self._advance(proposals, embedded[:, t], state, shift)
            logits.append(output.logits)
            attention.append(output.attention)
            state = output.state
        return CaptionOutput(torch.stack(logits, dim=1), torch.stack(attention, dim=1))

    # Decoding (implemented in hint_lightning.models.caption_decoding) ----------------------

    @torch.no_grad()
    def greedy_decode(
        self,
        features: Tensor,
        boxes: Tensor,
        proposal_mask: Tensor | None = None,
        max_length: int = 16,
    ) -> Tensor:
        """The most likely word at every step, until ``<eos>`` or ``max_length`` words.

        See :func:`hint_lightning.models.caption_decoding.greedy_decode`.

        Returns:
            ``[B, L]`` word ids, ``<eos>`` included, 0 after it.
        """
        return greedy_decode(self, features, boxes, proposal_mask, max_length)

    @torch.no_grad()
    def beam_search(
        self,
        features: Tensor,
        boxes: Tensor,
        proposal_mask: Tensor | None = None,
        beam_size: int = 3,
        max_length: int = 16,
    ) -> Tensor:
        """The most likely caption found by beam search, all images and beams at once.

        See :func:`hint_lightning.models.caption_decoding.beam_search`.

        Returns:
            ``[B, L]`` the best caption per image, ``<eos>`` included, 0 after it.
        """
        return beam_search(self, features, boxes, proposal_mask, beam_size, max_length)
