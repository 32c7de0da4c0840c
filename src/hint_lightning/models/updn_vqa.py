"""Bottom-Up Top-Down VQA model (Anderson et al. 2018; Teney et al. 2018), the model HINT tunes.

The model reads like its figure::

    question tokens -> word embedding (300) -> GRU (1024) -> q
    proposals P [B, N, D] --+
                            +-> top-down attention a = softmax_N(w . (relu(Wv P) * relu(Wq q)))
    q ----------------------+
    v = sum_N a * P;  joint = relu(Wq' q) * relu(Wv' v)  (Hadamard)
    logits = W2 dropout(relu(W1 joint))                   (1024 -> 2048 -> num_answers)

It is a plain ``nn.Module``: no Lightning, no loss, no data files. Proposal boxes are accepted
for interface stability (the reference model ignores them); set ``use_boxes=True`` to append the
normalized box coordinates and area to every proposal feature.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from hint_lightning.models.layers import FCNet, masked_softmax, weight_normed_linear


class VQAOutput(NamedTuple):
    """What :class:`UpDnVQA` returns.

    Attributes:
        logits: ``[B, A]`` answer logits (sigmoid scores for the soft-target BCE).
        attention: ``[B, N]`` top-down attention weights (0 on padded proposals, rows sum to 1).
    """

    logits: Tensor
    attention: Tensor


class QuestionEncoder(nn.Module):
    """Word embeddings and a one-layer GRU; the question is the GRU state at its last token.

    Shapes:
        tokens ``[B, T]`` (0 = padding, right-padded) -> ``[B, hidden_dim]``.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 300, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.gru = nn.GRU(embedding_dim, hidden_dim, num_layers=1, batch_first=True)

    def initialize_embeddings(self, vectors: Tensor) -> None:
        """Copy pre-trained word vectors ``[vocab_size, embedding_dim]`` (e.g. GloVe) in.

        Raises:
            ValueError: when the shapes differ (e.g. GloVe is 300-d: keep embedding_dim=300).
        """
        weight = self.embedding.weight
        if tuple(vectors.shape) != tuple(weight.shape):
            raise ValueError(
                f"word vectors have shape {tuple(vectors.shape)} but the embedding is "
                f"{tuple(weight.shape)} (vocabulary x embedding_dim)"
            )
        with torch.no_grad():
            weight.copy_(vectors.to(weight.dtype))

    def forward(self, tokens: Tensor) -> Tensor:
        """Encode right-padded token ids ``[B, T]`` into ``[B, hidden_dim]``."""
        states, _ = self.gru(self.embedding(tokens))
        last = (tokens != 0).sum(dim=1).clamp(min=1) - 1
        return states[torch.arange(tokens.shape[0], device=tokens.device), last]


class TopDownAttention(nn.Module):
    """One top-down attention head over proposals, conditioned on the question.

    Shapes:
        proposals ``[B, N, D]``, question ``[B, Q]``, mask ``[B, N]`` -> weights ``[B, N]``.
    """

    def __init__(
        self, feature_dim: int, question_dim: int, hidden_dim: int, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.proposal_proj = FCNet(feature_dim, hidden_dim)
        self.question_proj = FCNet(question_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.score = weight_normed_linear(hidden_dim, 1)

    def forward(
        self,
        proposals: Tensor,
        question: Tensor,
        mask: Tensor | None = None,
        shift: Tensor | None = None,
        shift_dims: int | None = None,
    ) -> Tensor:
        """Attention weights ``[B, N]``; padded proposals (``mask`` False) get exactly 0, and a
        row whose proposals are all masked gets all zeros (see :func:`masked_softmax`).

        ``shift [B, N]`` is added to the first ``shift_dims`` features of every proposal
        (exactly, without forming the shifted tensor; see :class:`FCNet`).
        """
        projected = self.proposal_proj(proposals, shift, shift_dims)
        joint = projected * self.question_proj(question).unsqueeze(1)
        scores = self.score(self.dropout(joint)).squeeze(-1)
        return masked_softmax(scores, mask)


class UpDnVQA(nn.Module):
    """The UpDn VQA model with every size configurable (defaults are the reference sizes).

    Args:
        vocab_size: number of question tokens (index 0 is padding).
        num_answers: A, the number of candidate answers.
        feature_dim: D, the proposal feature size (2048 for bottom-up features).
        embedding_dim: word embedding size.
        hidden_dim: GRU, attention and joint-embedding size.
        classifier_dim: hidden size of the answer classifier (2 x hidden in the reference).
        attention_dropout: dropout inside the attention head.
        classifier_dropout: dropout in the classifier.
        use_boxes: append ``[x1, y1, x2, y2, area]`` (normalized) to each proposal feature.
    """

    supports_proposal_shift = True
    """The forward pass accepts ``proposal_shift`` (fast, exact network importance)."""
    supports_proposal_mask = True
    """``proposal_mask`` switches proposals off (an all-masked row is legal: zero attention)."""
    returns_attention = True
    """``forward`` returns the top-down attention weights."""

    def __init__(
        self,
        vocab_size: int,
        num_answers: int,
        feature_dim: int = 2048,
        embedding_dim: int = 300,
        hidden_dim: int = 1024,
        classifier_dim: int = 2048,
        attention_dropout: float = 0.2,
        classifier_dropout: float = 0.5,
        use_boxes: bool = False,
    ) -> None:
        super().__init__()
        self.use_boxes = use_boxes
        visual_dim = feature_dim + (5 if use_boxes else 0)
        self.question_encoder = QuestionEncoder(vocab_size, embedding_dim, hidden_dim)
        self.attention = TopDownAttention(visual_dim, hidden_dim, hidden_dim, attention_dropout)
        self.question_net = FCNet(hidden_dim, hidden_dim)
        self.visual_net = FCNet(visual_dim, hidden_dim)
        self.classifier = nn.Sequential(
            weight_normed_linear(hidden_dim, classifier_dim),
            nn.ReLU(),
            nn.Dropout(classifier_dropout),
            weight_normed_linear(classifier_dim, num_answers),
        )

    def initialize_word_embeddings(self, vectors: Tensor) -> None:
        """Copy pre-trained word vectors ``[vocab_size, embedding_dim]`` (GloVe) in."""
        self.question_encoder.initialize_embeddings(vectors)

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
            features: ``[B, N, D]`` proposal features (the tensor HINT differentiates against).
            boxes: ``[B, N, 4]`` boxes x1, y1, x2, y2 normalized to [0, 1].
            question_tokens: ``[B, T]`` token ids, 0 = padding.
            proposal_mask: ``[B, N]`` bool, False for padded proposals (None: all real).
            proposal_shift: ``[B, N]`` or None. The output equals the output for
                ``features + proposal_shift[..., None]``, computed without forming that tensor,
                so the gradient of a score with respect to the shift is the network importance
                of every proposal (the fast path of
                :func:`hint_lightning.objectives.importance.network_importance_from_shift`).

        Returns:
            :class:`VQAOutput` with logits ``[B, A]`` and attention ``[B, N]``.
        """
        visual = features
        if self.use_boxes:
            area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
            visual = torch.cat([features, boxes, area.unsqueeze(-1)], dim=-1)
        question = self.question_encoder(question_tokens)
        feature_dim = features.shape[-1]
        attention = self.attention(visual, question, proposal_mask, proposal_shift, feature_dim)
        attended = torch.einsum("bn,bnd->bd", attention, visual)
        # sum_r a_r (P_r + t_r 1) = sum_r a_r P_r + (a . t) 1: the shift of the attended vector.
        attended_shift = None if proposal_shift is None else (attention * proposal_shift).sum(1)
        visual = self.visual_net(attended, attended_shift, feature_dim)
        joint = self.question_net(question) * visual
        return VQAOutput(self.classifier(joint), attention)
