"""Decoding captions with :class:`~hint_lightning.models.updn_captioner.UpDnCaptioner`.

Greedy decoding and batched beam search over the model's :meth:`encode`, :meth:`initial_state`
and :meth:`step` (the model's ``greedy_decode`` and ``beam_search`` call these).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hint_lightning.text.tokens import BOS_INDEX, EOS_INDEX, PAD_INDEX

if TYPE_CHECKING:
    from hint_lightning.models.updn_captioner import UpDnCaptioner

__all__ = ["beam_search", "greedy_decode"]


@torch.no_grad()
def greedy_decode(
    model: UpDnCaptioner,
    features: Tensor,
    boxes: Tensor,
    proposal_mask: Tensor | None = None,
    max_length: int = 16,
) -> Tensor:
    """The most likely word at every step, until ``<eos>`` or ``max_length`` words.

    Runs under ``torch.no_grad``; call ``eval()`` first to turn dropout off.

    Args:
        model: The captioner.
        features: ``[B, N, D]`` proposal features.
        boxes: ``[B, N, 4]`` boxes (ignored).
        proposal_mask: ``[B, N]`` bool, False for padded proposals (None: all real).
        max_length: the most words per caption, ``<eos>`` included.

    Returns:
        ``[B, L]`` word ids, ``<eos>`` included, 0 after it; ``L <= max_length`` is the
        longest caption of the batch (a caption that never ends fills ``max_length``).
    """
    _check_decoding(max_length=max_length)
    proposals = model.encode(features, boxes, proposal_mask)
    state = model.initial_state(proposals)
    tokens = torch.full((features.shape[0],), BOS_INDEX, device=features.device)
    finished = torch.zeros_like(tokens, dtype=torch.bool)
    words = []
    for _ in range(max_length):
        logits, _, state = model.step(proposals, tokens, state)
        tokens = logits.argmax(dim=-1).masked_fill(finished, PAD_INDEX)
        words.append(tokens)
        finished = finished | (tokens == EOS_INDEX)
        if bool(finished.all()):
            break
    return torch.stack(words, dim=1)


@torch.no_grad()
def beam_search(
    model: UpDnCaptioner,
    features: Tensor,
    boxes: Tensor,
    proposal_mask: Tensor | None = None,
    beam_size: int = 3,
    max_length: int = 16,
) -> Tensor:
    """The most likely caption found by beam search, all images and beams at once.

    A hypothesis scores the *sum* of its words' log-probabilities, ``<eos>`` included (no
    length normalization: the score is the log-probability of the caption, comparable with
    greedy decoding's, and ``beam_size=1`` is greedy decoding exactly). At each step the
    ``beam_size`` best extensions of the live hypotheses are kept; those among them that
    end with ``<eos>`` leave the beam for the finished pool and the beam is refilled with
    the best extensions that don't end. An image is done once its best finished caption
    scores at least its best live hypothesis (log-probabilities only decrease); after
    ``max_length`` words, unfinished hypotheses compete with the finished ones as they are.

    Runs under ``torch.no_grad``; call ``eval()`` first to turn dropout off.

    Args:
        model: The captioner.
        features: ``[B, N, D]`` proposal features.
        boxes: ``[B, N, 4]`` boxes (ignored).
        proposal_mask: ``[B, N]`` bool, False for padded proposals (None: all real).
        beam_size: K, hypotheses kept per image.
        max_length: the most words per caption, ``<eos>`` included.

    Returns:
        ``[B, L]`` the best caption per image, ``<eos>`` included, 0 after it; ``L <=
        max_length`` is the longest of them.
    """
    _check_decoding(max_length=max_length, beam_size=beam_size)
    batch, k = features.shape[0], beam_size
    proposals = model.encode(features, boxes, proposal_mask)
    proposals = type(proposals)(
        *(None if x is None else x.repeat_interleave(k, dim=0) for x in proposals)
    )
    state = model.initial_state(proposals)
    rows = torch.arange(batch, device=features.device)
    tokens = torch.full((batch * k,), BOS_INDEX, device=features.device)
    # One live hypothesis at first: the others would only duplicate it.
    scores = features.new_full((batch, k), float("-inf"))
    scores[:, 0] = 0.0
    sequences = tokens.new_zeros(batch, k, 0)
    best_scores = features.new_full((batch,), float("-inf"))
    best = tokens.new_zeros(batch, max_length)
    best_lengths = tokens.new_zeros(batch)
    for t in range(max_length):
        logits, _, state = model.step(proposals, tokens, state)
        log_probs = torch.log_softmax(logits, dim=-1).view(batch, k, -1)
        vocab = log_probs.shape[-1]
        candidates = (scores.unsqueeze(-1) + log_probs).view(batch, k * vocab)
        # 2K candidates hold at least K that don't end (a hypothesis ends in one way only).
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)
        origin, word = top_index // vocab, top_index % vocab
        ends = word == EOS_INDEX

        # Finished: hypotheses ending with <eos> among the K best extensions.
        ended_scores = top_scores[:, :k].masked_fill(~ends[:, :k], float("-inf"))
        ended_best, rank = ended_scores.max(dim=1)
        improved = ended_best > best_scores
        if bool(improved.any()):
            prefix = sequences[rows, origin[rows, rank]]  # [B, t]
            ended = torch.cat([prefix, torch.full_like(rows, EOS_INDEX)[:, None]], dim=1)
            best[:, : t + 1] = torch.where(improved[:, None], ended, best[:, : t + 1])
            best[:, t + 1 :] = best[:, t + 1 :].masked_fill(improved[:, None], PAD_INDEX)
            best_scores = torch.where(improved, ended_best, best_scores)
            best_lengths = torch.where(improved, t + 1, best_lengths)

        # Live: the K best extensions that don't end (stable: best first).
        keep = torch.argsort(ends.to(torch.uint8), dim=1, stable=True)[:, :k]
        scores = top_scores.gather(1, keep)
        origin, word = origin.gather(1, keep), word.gather(1, keep)
        sequences = torch.cat(
            [sequences.gather(1, origin.unsqueeze(-1).expand(-1, -1, t)), word.unsqueeze(-1)],
            dim=2,
        )
        flat = (rows.unsqueeze(1) * k + origin).view(-1)
        state = type(state)(*(s[flat] for s in state))
        tokens = word.view(-1)
        if bool((best_scores >= scores.max(dim=1).values).all()):
            break

    live_best, live_rank = scores.max(dim=1)
    open_best = live_best > best_scores  # still open after max_length words, and better
    if bool(open_best.any()):
        length = sequences.shape[2]
        best[:, :length] = torch.where(
            open_best[:, None], sequences[rows, live_rank], best[:, :length]
        )
        best_lengths = torch.where(open_best, length, best_lengths)
    return best[:, : int(best_lengths.max())]


def _check_decoding(max_length: int, beam_size: int = 1) -> None:
    """Reject decoding settings that cannot produce a caption."""
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
