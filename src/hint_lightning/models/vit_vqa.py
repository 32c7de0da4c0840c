"""A small ViT for VQA: patch tokens of the raw image and the question in one transformer.

The patch-token backbone of issue 15, at toy size (Dosovitskiy et al. 2021's patch embedding,
ViLT-style joint attention with the question: Kim et al. 2021)::

    p_k = W_e x_k + b_e + pos_k          x_k: the pixels of patch k (flattened, [-1, 1])
    [CLS] q_1 .. q_T | p_1 .. p_P        one sequence; type embeddings tell text from image
    L x pre-norm encoder layers (multi-head self-attention, GELU MLP)
    logits = MLP(LayerNorm(h_CLS))

**Proposals are the patch tokens after the embedding.** The module calls
:meth:`ViTVQA.embed_proposals` on the batch's patch pixels ``[B, P, p * p * 3]`` and gives the
result ``[B, P, H]`` to ``forward`` as its ``features``: every importance method and objective
then works on patch tokens (gradient, input x gradient, perturbations replace tokens), exactly
as on region features. The shift fast path is exact by construction (the shift is added to
every dimension of each token). A direct caller embeds first::

    logits, attention = net(net.embed_proposals(pixels), boxes, tokens, mask)

It reports ``[CLS]``'s last-layer attention over the patches (mean over heads, renormalized
over the real patches) and, inside :meth:`record_internals`, every layer's attention maps and
the patch tokens at every layer's input
(:class:`~hint_lightning.importance.internals.TransformerInternals`) for the transformer
importance methods. Only ``[CLS]`` is read after the last layer, so that layer runs for the
``[CLS]`` query alone (the same output, without the other rows' attention and MLP), except when
all attention maps are recorded. Attention is computed by hand (no fused kernel), so HINT can
differentiate it twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from hint_lightning.importance.internals import TransformerInternals
from hint_lightning.models.transformer_vqa import EncoderLayer
from hint_lightning.models.updn_vqa import VQAOutput

__all__ = ["ViTVQA"]


class ViTVQA(nn.Module):
    """A ViT over patch tokens and question tokens (module docstring).

    Args:
        vocab_size: question tokens (0 = padding).
        num_answers: A.
        feature_dim: pixels per patch times channels (``patch_size**2 * 3``).
        num_patches: P, patches per image (position embeddings); 64 for 64x64 images and
            8x8 patches.
        embedding_dim: word embedding size.
        hidden_dim: H.
        layers: encoder layers.
        heads: attention heads.
        mlp_dim: MLP hidden size (default ``4 * hidden_dim``).
        dropout: dropout in the encoder.
        classifier_dropout: dropout before the classifier's last layer.
        max_question_length: the longest question.
    """

    supports_proposal_shift = True
    """``proposal_shift`` is added to every dimension of each patch token (exact)."""
    supports_proposal_mask = True
    """Masked patches are never attended to; an all-masked row is legal."""
    returns_attention = True
    """``[CLS]``'s last-layer attention over the patches."""
    returns_internals = True
    """:meth:`record_internals` records every layer's attention maps."""

    def __init__(
        self,
        vocab_size: int,
        num_answers: int,
        feature_dim: int = 192,
        num_patches: int = 64,
        embedding_dim: int = 64,
        hidden_dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        mlp_dim: int | None = None,
        dropout: float = 0.0,
        classifier_dropout: float = 0.1,
        max_question_length: int = 32,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.patch_embedding = nn.Linear(feature_dim, hidden_dim)
        self.patch_positions = nn.Parameter(torch.zeros(num_patches, hidden_dim))
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.token_proj = nn.Linear(embedding_dim, hidden_dim)
        self.positions = nn.Parameter(torch.zeros(max_question_length + 1, hidden_dim))
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
        for parameter in (self.patch_positions, self.positions, self.types, self.cls):
            nn.init.normal_(parameter, std=0.02)
        self._recording: TransformerInternals | None = None

    def embed_proposals(self, pixels: Tensor) -> Tensor:
        """Patch pixels ``[B, P, feature_dim]`` -> patch tokens ``[B, P, H]`` (the proposals).

        Raises:
            ValueError: when the patches do not match the configured sizes.
        """
        patches, dim = pixels.shape[1:]
        if dim != self.patch_embedding.in_features or patches != self.patch_positions.shape[0]:
            raise ValueError(
                f"ViTVQA expects [B, {self.patch_positions.shape[0]}, "
                f"{self.patch_embedding.in_features}] patch pixels (model.net.num_patches, "
                f"feature_dim), got {tuple(pixels.shape)}: use data.proposals=patches with the "
                "matching data.patch_size"
            )
        return self.patch_embedding(pixels) + self.patch_positions

    @contextmanager
    def record_internals(self, attention_maps: bool = True) -> Iterator[TransformerInternals]:
        """Record, for the passes run inside, every layer's attention maps and the patch tokens
        at every layer's input (module docstring).

        Args:
            attention_maps: False records only the layer tokens (the last layer then runs for
                ``[CLS]`` alone, as outside the context).
        """
        internals = TransformerInternals(attention_maps=attention_maps)
        previous, self._recording = self._recording, internals
        try:
            yield internals
        finally:
            self._recording = previous

    def initialize_word_embeddings(self, vectors: Tensor) -> None:
        """Copy pre-trained word vectors ``[vocab_size, embedding_dim]`` in."""
        weight = self.embedding.weight
        if tuple(vectors.shape) != tuple(weight.shape):
            raise ValueError(
                f"word vectors have shape {tuple(vectors.shape)} but the embedding is "
                f"{tuple(weight.shape)} (vocabulary x embedding_dim)"
            )
        with torch.no_grad():
            weight.copy_(vectors.to(weight.dtype))

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
            features: ``[B, P, H]`` patch tokens (:meth:`embed_proposals`).
            boxes: ``[B, P, 4]`` (unused: positions are learned per patch).
            question_tokens: ``[B, T]``, 0 = padding.
            proposal_mask: ``[B, P]`` bool (None: all real).
            proposal_shift: ``[B, P]`` or None: the output for ``features + shift[..., None]``.

        Returns:
            ``VQAOutput(logits [B, A], attention [B, P])``.
        """
        batch, length = question_tokens.shape
        if length + 1 > self.positions.shape[0]:
            raise ValueError(
                f"questions of {length} tokens exceed max_question_length="
                f"{self.positions.shape[0] - 1}"
            )
        if features.shape[-1] != self.cls.shape[0]:
            raise ValueError(
                f"ViTVQA.forward reads patch tokens [B, P, {self.cls.shape[0]}], got "
                f"{tuple(features.shape)}: call embed_proposals on the patch pixels first"
            )
        visual = features + self.types[1]
        if proposal_shift is not None:
            visual = visual + proposal_shift.unsqueeze(-1)
        words = self.token_proj(self.embedding(question_tokens)) + self.types[0]
        text = torch.cat([self.cls.expand(batch, 1, -1), words], dim=1)
        x = torch.cat([text + self.positions[: length + 1], visual], dim=1)
        if proposal_mask is None:
            proposal_mask = torch.ones(features.shape[:2], dtype=torch.bool, device=x.device)
        keep = torch.cat(
            [
                torch.ones(batch, 1, dtype=torch.bool, device=x.device),
                question_tokens != 0,
                proposal_mask,
            ],
            dim=1,
        )
        recording = self._recording
        full_last_layer = recording is not None and recording.attention_maps
        if recording is not None:
            recording.attentions, recording.proposal_start = [], length + 1
            recording.layer_tokens = []
        weights = x
        for index, layer in enumerate(self.layers):
            if recording is not None:  # route the patch part through a tensor of its own
                patches = x[:, length + 1 :]
                recording.layer_tokens.append(patches)
                x = torch.cat([x[:, : length + 1], patches], dim=1)
            last = index == len(self.layers) - 1
            x, weights = layer(x, keep, 1 if last and not full_last_layer else None)
            if recording is not None and recording.attention_maps:
                recording.attentions.append(weights)
        to_patches = weights[:, :, 0, length + 1 :].mean(dim=1)
        total = to_patches.sum(dim=1, keepdim=True)
        attention = torch.where(total > 0, to_patches / total.clamp(min=1e-12), 0.0)
        return VQAOutput(self.classifier(self.norm(x[:, 0])), attention)
