"""A small transformer for VQA: self-attention over the question's tokens and the proposals.

The second VQA backbone, to show that the grounding toolkit is not tied to UpDn. It reads like
its figure (a single-stream encoder, as in VisualBERT-style models, at toy size)::

    [CLS] q_1 .. q_T  |  v_1 .. v_N          one sequence, type embeddings tell them apart
    q_t = W_q E(token_t) + pos_t + type_q     (E: word embeddings, GloVe-sized by default)
    v_r = W_v P_r + W_b box_r + type_v        (P_r: proposal features)
    L x pre-norm encoder layers (multi-head self-attention, GELU MLP), padded tokens and masked
        proposals never attended to
    logits = MLP(LayerNorm(h_CLS))

The attention it reports over proposals is the last layer's attention of ``[CLS]`` to the
proposals, averaged over heads and renormalized over the real proposals: ``[B, N]``, 0 on
masked proposals, rows summing to 1 (all zeros for a row whose proposals are all masked).

It follows :class:`~hint_lightning.models.protocol.Backbone`: positional
``forward(features, boxes, question_tokens, proposal_mask, proposal_shift=None)``; the shift
fast path is exact because the proposals enter through one linear layer
(``W_v (P_r + t_r 1) = W_v P_r + t_r W_v 1``). The attention is computed by hand (no fused
kernel), so it can be differentiated twice, as HINT needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hint_lightning.models.updn_vqa import VQAOutput

__all__ = ["EncoderLayer", "SelfAttention", "TransformerVQA"]


class SelfAttention(nn.Module):
    """Multi-head self-attention over a sequence with a key mask.

    Masked keys get a large negative additive bias ``[B, 1, 1, L]`` before the softmax, so their
    weight is exactly 0; the queries are scaled by ``1 / sqrt(d)`` before the product. Both keep
    the per-element work on the ``[B, heads, L, L]`` scores to one add and the softmax, which
    matters most in HINT's double backward, where every elementwise op on the scores is
    differentiated twice. Every sequence must keep at least one key (both backbones always keep
    ``[CLS]``); a sequence with none would attend uniformly instead of not at all.

    Shapes:
        x ``[B, L, H]``, keep ``[B, L]`` bool -> ``[B, L, H]`` and weights ``[B, heads, L, L]``.
    """

    def __init__(self, hidden_dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_dim % heads:
            raise ValueError(f"hidden_dim {hidden_dim} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.out = nn.Linear(hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor, queries: int | None = None) -> tuple[Tensor, Tensor]:
        """Attend from the first ``queries`` positions (None: every position) to the kept ones.

        Returns:
            ``[B, Q, H]`` and weights ``[B, heads, Q, L]`` (Q = ``queries`` or L).
        """
        batch, length, hidden = x.shape
        rows = length if queries is None else queries
        weight, bias_in = self.qkv.weight, self.qkv.bias
        if queries is None:
            q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        else:  # only these rows' queries: the keys and values still come from every position
            q = F.linear(x[:, :rows], weight[:hidden], bias_in[:hidden])
            q = q.view(batch, rows, self.heads, -1).transpose(1, 2)
            kv = F.linear(x, weight[hidden:], bias_in[hidden:])
            k, v = kv.view(batch, length, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(~keep, torch.finfo(x.dtype).min / 2)[:, None, None, :]
        scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-1, -2) + bias
        weights = torch.softmax(scores, dim=-1)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).reshape(batch, rows, hidden)
        return self.out(mixed), weights


class EncoderLayer(nn.Module):
    """A pre-norm transformer encoder layer: ``x + attn(LN x)``, then ``x + MLP(LN x)``."""

    def __init__(self, hidden_dim: int, heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.attention = SelfAttention(hidden_dim, heads, dropout)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, hidden_dim),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor, queries: int | None = None) -> tuple[Tensor, Tensor]:
        """``([B, Q, H], attention weights [B, heads, Q, L])``: the first ``queries`` positions'
        outputs (None: all L). A last layer read only at ``[CLS]`` runs with ``queries=1``:
        the same ``[CLS]`` output, without the other L - 1 rows' attention and MLP."""
        attended, weights = self.attention(self.norm1(x), keep, queries)
        x = (x if queries is None else x[:, :queries]) + self.dropout(attended)
        return x + self.dropout(self.mlp(self.norm2(x))), weights


class TransformerVQA(nn.Module):
    """A single-stream transformer over question tokens and proposals (module docstring).

    Args:
        vocab_size: number of question tokens (index 0 is padding).
        num_answers: A.
        feature_dim: D, the proposal feature size.
        embedding_dim: word embedding size (300: GloVe can be loaded).
        hidden_dim: H, the transformer width.
        layers: number of encoder layers.
        heads: attention heads per layer.
        mlp_dim: hidden size of each layer's MLP (default ``4 * hidden_dim``).
        dropout: dropout in the encoder.
        classifier_dropout: dropout before the answer classifier's last layer.
        max_question_length: the longest question (position embeddings).
    """

    supports_proposal_shift = True
    """The forward pass accepts ``proposal_shift`` (exact, through the proposal projection)."""
    supports_proposal_mask = True
    """Masked proposals are never attended to; an all-masked row is legal."""
    returns_attention = True
    """``forward`` returns ``[CLS]``'s last-layer attention over the proposals."""

    def __init__(
        self,
        vocab_size: int,
        num_answers: int,
        feature_dim: int = 2048,
        embedding_dim: int = 300,
        hidden_dim: int = 256,
        layers: int = 3,
        heads: int = 4,
        mlp_dim: int | None = None,
        dropout: float = 0.1,
        classifier_dropout: float = 0.2,
        max_question_length: int = 64,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.token_proj = nn.Linear(embedding_dim, hidden_dim)
        self.positions = nn.Parameter(torch.zeros(max_question_length + 1, hidden_dim))
        self.proposal_proj = nn.Linear(feature_dim, hidden_dim)
        self.box_proj = nn.Linear(5, hidden_dim)
        self.types = nn.Parameter(torch.zeros(2, hidden_dim))
        self.cls = nn.Parameter(torch.zeros(hidden_dim))
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_dim, heads, mlp_dim or 4 * hidden_dim, dropout)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden_dim)
        self.classifier = nn.Sequential(
            nn.Linear(hidden_dim, 2 * hidden_dim),
            nn.GELU(),
            nn.Dropout(classifier_dropout),
            nn.Linear(2 * hidden_dim, num_answers),
        )
        nn.init.normal_(self.positions, std=0.02)
        nn.init.normal_(self.types, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def initialize_word_embeddings(self, vectors: Tensor) -> None:
        """Copy pre-trained word vectors ``[vocab_size, embedding_dim]`` (GloVe) in.

        Raises:
            ValueError: when the shapes differ.
        """
        weight = self.embedding.weight
        if tuple(vectors.shape) != tuple(weight.shape):
            raise ValueError(
                f"word vectors have shape {tuple(vectors.shape)} but the embedding is "
                f"{tuple(weight.shape)} (vocabulary x embedding_dim)"
            )
        with torch.no_grad():
            weight.copy_(vectors.to(weight.dtype))

    def _proposals(self, features: Tensor, boxes: Tensor, shift: Tensor | None) -> Tensor:
        """``[B, N, H]`` proposal tokens; ``shift`` applied exactly after the projection."""
        projected = self.proposal_proj(features)
        if shift is not None:
            projected = projected + shift.unsqueeze(-1) * self.proposal_proj.weight.sum(dim=1)
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        geometry = torch.cat([boxes, area.unsqueeze(-1)], dim=-1)
        return projected + self.box_proj(geometry) + self.types[1]

    def forward(
        self,
        features: Tensor,
        boxes: Tensor,
        question_tokens: Tensor,
        proposal_mask: Tensor | None = None,
        proposal_shift: Tensor | None = None,
    ) -> VQAOutput:
        """Answer the questions.

        Args:
            features: ``[B, N, D]`` proposal features.
            boxes: ``[B, N, 4]`` boxes x1, y1, x2, y2 normalized to [0, 1].
            question_tokens: ``[B, T]`` token ids, 0 = padding.
            proposal_mask: ``[B, N]`` bool, False for padded proposals (None: all real).
            proposal_shift: ``[B, N]`` or None: the output equals the output for ``features +
                proposal_shift[..., None]``, computed without forming that tensor.

        Returns:
            :class:`~hint_lightning.models.updn_vqa.VQAOutput` with logits ``[B, A]`` and the
            ``[CLS]`` token's attention over the proposals ``[B, N]``.
        """
        batch, length = question_tokens.shape
        if length + 1 > self.positions.shape[0]:
            raise ValueError(
                f"questions of {length} tokens exceed max_question_length="
                f"{self.positions.shape[0] - 1}"
            )
        words = self.token_proj(self.embedding(question_tokens)) + self.types[0]
        cls = self.cls.expand(batch, 1, -1)
        text = torch.cat([cls, words], dim=1) + self.positions[: length + 1]
        visual = self._proposals(features, boxes, proposal_shift)
        x = torch.cat([text, visual], dim=1)
        if proposal_mask is None:
            proposal_mask = torch.ones(features.shape[:2], dtype=torch.bool, device=x.device)
        text_keep = torch.cat(
            [torch.ones(batch, 1, dtype=torch.bool, device=x.device), question_tokens != 0], dim=1
        )
        keep = torch.cat([text_keep, proposal_mask], dim=1)
        weights = x
        for index, layer in enumerate(self.layers):
            last = index == len(self.layers) - 1
            x, weights = layer(x, keep, 1 if last else None)  # only [CLS] is read at the end
        to_proposals = weights[:, :, 0, length + 1 :].mean(dim=1)  # [B, N], over heads
        total = to_proposals.sum(dim=1, keepdim=True)
        attention = torch.where(total > 0, to_proposals / total.clamp(min=1e-12), 0.0)
        logits = self.classifier(self.norm(x[:, 0]))
        return VQAOutput(logits, attention)
