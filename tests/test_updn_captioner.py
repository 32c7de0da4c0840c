"""The UpDn captioner: shapes, masking, causality, decoders, and exact fast network importance."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from hint_lightning.models.updn_captioner import (
    BOS_INDEX,
    EOS_INDEX,
    PAD_INDEX,
    UNK_INDEX,
    UpDnCaptioner,
)
from hint_lightning.objectives.hint import hint_ranking_loss
from hint_lightning.objectives.importance import network_importance, network_importance_from_shift

VOCAB, FEATURES = 9, 6


def tiny_model(dtype: torch.dtype = torch.float32, sharpen: float = 1.0) -> UpDnCaptioner:
    """A small captioner; ``sharpen`` scales every parameter (peakier word distributions)."""
    torch.manual_seed(0)
    model = UpDnCaptioner(
        VOCAB, feature_dim=FEATURES, embedding_dim=4, hidden_dim=5, attention_dim=3, dropout=0.0
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(sharpen)
    return model.to(dtype).eval()


def image(
    batch: int = 3, proposals: int = 5, dtype: torch.dtype = torch.float32, seed: int = 1
) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, proposals, FEATURES, generator=generator, dtype=dtype)
    boxes = torch.rand(batch, proposals, 4, generator=generator, dtype=dtype)
    return features, boxes


def captions_for(batch: int, steps: int, seed: int = 2) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    words = torch.randint(UNK_INDEX, VOCAB, (batch, steps), generator=generator)
    words[:, 0] = BOS_INDEX
    return words


def log_probability(model: UpDnCaptioner, features: Tensor, boxes: Tensor, words: Tensor) -> Tensor:
    """``[B]`` log p(words | image): every word up to and including the first <eos>."""
    bos = torch.full_like(words[:, :1], BOS_INDEX)
    logits, _ = model(features, boxes, torch.cat([bos, words[:, :-1]], dim=1))
    per_word = torch.log_softmax(logits, dim=-1).gather(2, words.unsqueeze(-1)).squeeze(-1)
    is_eos = (words == EOS_INDEX).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return per_word.masked_fill(after_eos, 0.0).sum(dim=1)


# Shapes, masking, causality ---------------------------------------------------------------


def test_token_conventions() -> None:
    assert (PAD_INDEX, BOS_INDEX, EOS_INDEX, UNK_INDEX) == (0, 1, 2, 3)


def test_output_shapes_and_attention_is_a_distribution() -> None:
    model = tiny_model()
    features, boxes = image(3, 5)
    logits, attention = model(features, boxes, captions_for(3, 4))
    assert logits.shape == (3, 4, VOCAB) and attention.shape == (3, 4, 5)
    torch.testing.assert_close(attention.sum(dim=2), torch.ones(3, 4))


def test_reference_sizes_by_default() -> None:
    model = UpDnCaptioner(vocab_size=100)
    assert model.embedding.embedding_dim == 1000
    assert model.attention_lstm.input_size == 1000 + 2048 + 1000
    assert model.attention_lstm.hidden_size == 1000
    assert model.language_lstm.input_size == 2048 + 1000
    assert model.attention.proposal_proj.out_features == 512
    assert model.classifier.out_features == 100
    assert model.dropout.p == 0.5


def test_decoder_uses_lstm_cells_so_double_backward_works_on_gpu_too() -> None:
    # cuDNN's nn.LSTM/GRU have no double backward; LSTMCell's CUDA kernel has a differentiable
    # backward and the CPU cell is a composite of differentiable ops.
    modules = list(UpDnCaptioner(vocab_size=10, feature_dim=4, hidden_dim=3).modules())
    assert sum(isinstance(m, nn.LSTMCell) for m in modules) == 2
    assert not any(isinstance(m, nn.RNNBase) for m in modules)


def test_padded_proposals_get_no_attention_and_do_not_change_anything() -> None:
    model = tiny_model(sharpen=3.0)
    features, boxes = image(2, 4)
    captions = captions_for(2, 5)
    logits, _ = model(features, boxes, captions)
    garbage = 100 * torch.randn(2, 3, FEATURES)
    padded = torch.cat([features, garbage], dim=1)
    padded_boxes = torch.cat([boxes, torch.rand(2, 3, 4)], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 3] * 2)
    padded_logits, attention = model(padded, padded_boxes, captions, mask)
    assert torch.all(attention[:, :, 4:] == 0)
    torch.testing.assert_close(padded_logits, logits)
    torch.testing.assert_close(
        model.greedy_decode(padded, padded_boxes, mask), model.greedy_decode(features, boxes)
    )
    torch.testing.assert_close(
        model.beam_search(padded, padded_boxes, mask), model.beam_search(features, boxes)
    )


def test_different_numbers_of_real_proposals_in_one_batch() -> None:
    model = tiny_model()
    features, boxes = image(2, 5)
    captions = captions_for(2, 3)
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    logits, _ = model(features, boxes, captions, mask)
    alone, _ = model(features[1:, :2], boxes[1:, :2], captions[1:])
    torch.testing.assert_close(logits[1:], alone)


def test_logits_at_step_t_do_not_depend_on_later_tokens() -> None:
    model = tiny_model()
    features, boxes = image(3, 5)
    captions = captions_for(3, 6)
    logits, attention = model(features, boxes, captions)
    for t in range(6):
        changed = captions.clone()
        changed[:, t + 1 :] = torch.randint(0, VOCAB, changed[:, t + 1 :].shape)
        other_logits, other_attention = model(features, boxes, changed)
        torch.testing.assert_close(other_logits[:, : t + 1], logits[:, : t + 1])
        torch.testing.assert_close(other_attention[:, : t + 1], attention[:, : t + 1])


def test_teacher_forcing_equals_stepping_one_word_at_a_time() -> None:
    model = tiny_model()
    features, boxes = image(2, 5)
    captions = captions_for(2, 4)
    logits, _ = model(features, boxes, captions)
    proposals = model.encode(features, boxes)
    state = model.initial_state(proposals)
    for t in range(4):
        step_logits, _, state = model.step(proposals, captions[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t])


# Decoding ----------------------------------------------------------------------------------


def fixed_sequence_model(next_word: dict[int, int], vocab: int = 8) -> UpDnCaptioner:
    """A captioner whose next word is ``next_word[previous word]`` (else <eos>), near-certainly.

    Embeddings are one-hot; the attention LSTM writes the one-hot of the next word into its
    cell, the language LSTM copies it, and the classifier reads it out with weight 10. Every
    weight that reads the image is 0.
    """
    hidden, features = vocab, 3
    model = UpDnCaptioner(
        vocab, feature_dim=features, embedding_dim=vocab, hidden_dim=hidden, attention_dim=2
    ).eval()
    transition = torch.zeros(vocab, vocab)
    for previous in range(vocab):
        transition[next_word.get(previous, EOS_INDEX), previous] = 1.0
    gate = slice(2 * hidden, 3 * hidden)  # LSTMCell gates are ordered i, f, g, o
    with torch.no_grad():
        for lstm in (model.attention_lstm, model.language_lstm):
            for parameter in lstm.parameters():
                parameter.zero_()
            lstm.bias_ih[:hidden] = 10.0  # input gate open
            lstm.bias_ih[hidden : 2 * hidden] = -10.0  # forget gate closed
            lstm.bias_ih[3 * hidden :] = 10.0  # output gate open
        model.embedding.weight.copy_(torch.eye(vocab))
        model.attention_lstm.weight_ih[gate, hidden + features :] = 10.0 * transition
        model.language_lstm.weight_ih[gate, features:] = 10.0 * torch.eye(hidden)
        model.classifier.weight = 10.0 * torch.eye(vocab)  # through the weight-norm parametrization
        model.classifier.bias.zero_()
    return model


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_decoders_return_the_only_likely_caption_and_stop_at_eos(decoder: str) -> None:
    model = fixed_sequence_model({BOS_INDEX: 5, 5: 6, 6: 7, 7: EOS_INDEX})
    features, boxes = torch.randn(2, 4, 3), torch.rand(2, 4, 4)

    def decode(max_length: int) -> Tensor:
        if decoder == "greedy":
            return model.greedy_decode(features, boxes, max_length=max_length)
        return model.beam_search(features, boxes, beam_size=3, max_length=max_length)

    expected = torch.tensor([[5, 6, 7, EOS_INDEX]] * 2)
    torch.testing.assert_close(decode(16), expected)
    torch.testing.assert_close(decode(3), expected[:, :3])  # cut short: no <eos>


@pytest.mark.parametrize(("decoder", "eos_bias"), [("greedy", 1.5), ("beam", 1.0)])
def test_captions_of_different_lengths_are_padded_with_zeros_after_eos(
    decoder: str, eos_bias: float
) -> None:
    model = tiny_model(sharpen=3.0)
    with torch.no_grad():
        model.classifier.bias[EOS_INDEX] += eos_bias  # end at different steps
    features, boxes = image(16, 5, seed=7)
    decode = model.greedy_decode if decoder == "greedy" else model.beam_search
    words = decode(features, boxes, max_length=12)
    is_eos = (words == EOS_INDEX).long()
    after = (is_eos.cumsum(dim=1) - is_eos) > 0
    assert torch.all(words[after] == PAD_INDEX)
    assert torch.all(is_eos.sum(dim=1) <= 1)
    lengths = torch.where(is_eos.any(dim=1), is_eos.argmax(dim=1) + 1, 12)
    assert len(set(lengths.tolist())) > 2  # the test really has different lengths
    assert words.shape[1] == int(lengths.max()) <= 12


@pytest.mark.parametrize("eos_bias", [0.0, 2.0])
def test_greedy_equals_beam_search_with_one_beam(eos_bias: float) -> None:
    model = tiny_model(sharpen=3.0)
    with torch.no_grad():
        model.classifier.bias[EOS_INDEX] += eos_bias
    features, boxes = image(8, 5, seed=3)
    greedy = model.greedy_decode(features, boxes, max_length=10)
    torch.testing.assert_close(
        model.beam_search(features, boxes, beam_size=1, max_length=10), greedy
    )


@pytest.mark.parametrize("beam_size", [2, 3, 5])
def test_beam_search_finds_a_caption_at_least_as_likely_as_greedy(beam_size: int) -> None:
    # Not a theorem for beam search in general (the greedy prefix can leave the beam), but it
    # holds here, and an unnormalized search that loses it on a tiny model would be suspicious.
    model = tiny_model(sharpen=3.0)
    with torch.no_grad():
        model.classifier.bias[EOS_INDEX] += 1.0
    features, boxes = image(8, 5, seed=4)
    greedy = model.greedy_decode(features, boxes, max_length=8)
    beam = model.beam_search(features, boxes, beam_size=beam_size, max_length=8)
    greedy_score = log_probability(model, features, boxes, greedy)
    beam_score = log_probability(model, features, boxes, beam)
    assert torch.all(beam_score >= greedy_score - 1e-5)
    assert torch.any(beam_score > greedy_score + 1e-3)  # and the search does find better ones


def test_beam_search_with_a_beam_wider_than_all_prefixes_is_exhaustive_search() -> None:
    vocab, max_length = 5, 3
    torch.manual_seed(0)
    model = UpDnCaptioner(
        vocab, feature_dim=FEATURES, embedding_dim=4, hidden_dim=5, attention_dim=3
    ).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    features, boxes = image(2, 4, seed=5)
    # Every caption: ends with its first <eos> within max_length words, or has no <eos> at all.
    captions = []
    for length in range(1, max_length + 1):
        for words in itertools.product(range(vocab), repeat=length):
            if EOS_INDEX in words[:-1] or (length < max_length and words[-1] != EOS_INDEX):
                continue
            captions.append(list(words) + [PAD_INDEX] * (max_length - length))
    candidates = torch.tensor(captions)
    scores = torch.stack(
        [
            log_probability(
                model,
                features[b : b + 1].expand(len(captions), -1, -1),
                boxes[b : b + 1].expand(len(captions), -1, -1),
                candidates,
            )
            for b in range(2)
        ]
    )
    beam = model.beam_search(features, boxes, beam_size=vocab**max_length, max_length=max_length)
    beam = torch.nn.functional.pad(beam, (0, max_length - beam.shape[1]))
    torch.testing.assert_close(beam, candidates[scores.argmax(dim=1)])


def test_decoders_reject_impossible_settings() -> None:
    model = tiny_model()
    features, boxes = image(1, 2)
    with pytest.raises(ValueError, match="max_length"):
        model.greedy_decode(features, boxes, max_length=0)
    with pytest.raises(ValueError, match="beam_size"):
        model.beam_search(features, boxes, beam_size=0)


# Network importance -----------------------------------------------------------------------
# HINT's importance for the word at step t is the full gradient d o_t / d P (see the module
# docstring): the [B, N] shift shared by all steps is its exact fast path, one decision per row.


def importance_setup() -> tuple[UpDnCaptioner, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    model = tiny_model(torch.float64, sharpen=2.0)
    features, boxes = image(3, 5, torch.float64)
    captions = captions_for(3, 4)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    steps = torch.tensor([2, 0, 3])  # one decision per row: the word predicted at this step
    words = torch.tensor([4, 7, 5])
    return model, features, boxes, captions, mask, steps, words


def decision_scores(logits: Tensor, steps: Tensor, words: Tensor) -> Tensor:
    return logits[torch.arange(logits.shape[0]), steps, words]


def test_shared_shift_equals_shifting_every_feature_at_every_step() -> None:
    model, features, boxes, captions, mask, _, _ = importance_setup()
    shift = torch.randn(3, 5, dtype=torch.float64)
    shifted = model(features + shift[..., None], boxes, captions, mask)
    fast = model(features, boxes, captions, mask, proposal_shift=shift)
    torch.testing.assert_close(fast.logits, shifted.logits)
    torch.testing.assert_close(fast.attention, shifted.attention)


def run_with_features_per_step(
    model: UpDnCaptioner, per_step: list[Tensor], boxes: Tensor, captions: Tensor, mask: Tensor
) -> Tensor:
    """Reference: step t reads ``per_step[t]`` as its proposal features; ``[B, T, V]``."""
    logits, state = [], None
    for t, features in enumerate(per_step):
        proposals = model.encode(features, boxes, mask)
        state = model.initial_state(proposals) if state is None else state
        output = model.step(proposals, captions[:, t], state)
        logits.append(output.logits)
        state = output.state
    return torch.stack(logits, dim=1)


def test_per_step_shift_equals_shifting_the_features_read_at_that_step_only() -> None:
    model, features, boxes, captions, mask, _, _ = importance_setup()
    shift = torch.randn(3, 4, 5, dtype=torch.float64)
    reference = run_with_features_per_step(
        model, [features + shift[:, t, :, None] for t in range(4)], boxes, captions, mask
    )
    fast, _ = model(features, boxes, captions, mask, proposal_shift=shift)
    torch.testing.assert_close(fast, reference)


def test_fast_importance_equals_the_reference_gradient_and_its_gradient() -> None:
    model, features, boxes, captions, mask, steps, words = importance_setup()
    human = torch.rand(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    parameter = model.attention.hidden_proj.parametrizations.weight.original1

    features = features.requires_grad_(True)
    logits, _ = model(features, boxes, captions, mask)
    reference = network_importance(decision_scores(logits, steps, words), features)
    (reference_grad,) = torch.autograd.grad(
        hint_ranking_loss(reference, human, mask).sum(), parameter
    )

    shift = torch.zeros(3, 5, dtype=torch.float64, requires_grad=True)
    logits, _ = model(features.detach(), boxes, captions, mask, proposal_shift=shift)
    fast = network_importance_from_shift(decision_scores(logits, steps, words), shift)
    (fast_grad,) = torch.autograd.grad(hint_ranking_loss(fast, human, mask).sum(), parameter)

    torch.testing.assert_close(fast, reference)
    torch.testing.assert_close(fast_grad, reference_grad)  # the second-order path agrees too
    assert torch.all(fast[~mask] == 0)  # padded proposals have no importance
    assert torch.all(reference[~mask] == 0)


def test_per_step_shift_decomposes_the_full_importance_by_the_step_that_reads() -> None:
    model, features, boxes, captions, mask, steps, words = importance_setup()
    # Reference: a separate leaf for the features each step reads.
    leaves = [features.clone().requires_grad_(True) for _ in range(4)]
    logits = run_with_features_per_step(model, leaves, boxes, captions, mask)
    gradients = torch.autograd.grad(
        decision_scores(logits, steps, words).sum(), leaves, materialize_grads=True
    )
    per_step_reference = torch.stack([g.sum(dim=-1) for g in gradients], dim=1)  # [B, T, N]

    shift = torch.zeros(3, 4, 5, dtype=torch.float64, requires_grad=True)
    logits, _ = model(features, boxes, captions, mask, proposal_shift=shift)
    (per_step,) = torch.autograd.grad(decision_scores(logits, steps, words).sum(), shift)
    torch.testing.assert_close(per_step, per_step_reference)

    rows = torch.arange(3)
    later = torch.arange(4)[None, :] > steps[:, None]
    assert torch.all(per_step[later] == 0)  # later steps cannot change the decision
    full = per_step.sum(dim=1)  # all reads: the full importance ...
    features = features.clone().requires_grad_(True)
    logits, _ = model(features, boxes, captions, mask)
    torch.testing.assert_close(
        full, network_importance(decision_scores(logits, steps, words), features)
    )
    own_use = per_step[rows, steps]  # ... of which the decision step's own reads are a part
    assert not torch.allclose(own_use[steps > 0], full[steps > 0])
    torch.testing.assert_close(own_use[steps == 0], full[steps == 0])


def test_several_decisions_of_one_caption_need_one_row_each() -> None:
    model, features, boxes, captions, mask, _, _ = importance_setup()
    decisions = [(0, 1, 4), (0, 3, 6), (2, 2, 5)]  # (row, step, word): two in row 0
    rows = torch.tensor([b for b, _, _ in decisions])
    steps, words = (
        torch.tensor([t for _, t, _ in decisions]),
        torch.tensor([w for *_, w in decisions]),
    )

    # One row per decision, one backward for all of them.
    shift = torch.zeros(len(decisions), 5, dtype=torch.float64, requires_grad=True)
    logits, _ = model(features[rows], boxes[rows], captions[rows], mask[rows], proposal_shift=shift)
    fast = network_importance_from_shift(decision_scores(logits, steps, words), shift)

    for i, (b, t, w) in enumerate(decisions):
        single = features[b : b + 1].clone().requires_grad_(True)
        logits, _ = model(single, boxes[b : b + 1], captions[b : b + 1], mask[b : b + 1])
        torch.testing.assert_close(fast[i : i + 1], network_importance(logits[:, t, w], single))

    # Summing both decisions in one row gives the sum of their importances, not each.
    shift = torch.zeros(3, 5, dtype=torch.float64, requires_grad=True)
    logits, _ = model(features, boxes, captions, mask, proposal_shift=shift)
    mixed = network_importance_from_shift((logits[0, 1, 4] + logits[0, 3, 6]).reshape(1), shift)
    torch.testing.assert_close(mixed[0], fast[0] + fast[1])


def test_double_backward_of_a_hint_loss_passes_gradcheck() -> None:
    model = UpDnCaptioner(6, feature_dim=4, embedding_dim=3, hidden_dim=3, attention_dim=3)
    model = model.double().eval()
    features, boxes = image(2, 3, torch.float64, seed=9)
    features = features[..., :4].contiguous().requires_grad_(True)
    captions = torch.tensor([[BOS_INDEX, 4, 5], [BOS_INDEX, 3, 4]])
    targets = torch.tensor([[4, 5, EOS_INDEX], [3, 4, 5]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    steps, words = torch.tensor([1, 2]), torch.tensor([5, 5])
    human = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.7, 0.0]], dtype=torch.float64)
    names = [
        "attention.proposal_proj.parametrizations.weight.original1",
        "attention_lstm.weight_hh",
        "language_lstm.bias_hh",
        "classifier.parametrizations.weight.original1",
    ]
    parameters = dict(model.named_parameters())
    inputs = [features] + [parameters[n].detach().clone().requires_grad_(True) for n in names]

    def hint_loss(features: Tensor, *values: Tensor) -> Tensor:
        with torch.enable_grad():
            shift = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
            logits, _ = functional_call(
                model,
                dict(zip(names, values, strict=True)),
                (features, boxes, captions),
                {"proposal_mask": mask, "proposal_shift": shift},
            )
            alpha = network_importance_from_shift(decision_scores(logits, steps, words), shift)
            task = nn.functional.cross_entropy(logits.reshape(-1, 6), targets.reshape(-1))
            return hint_ranking_loss(alpha, human, mask).sum() + task

    assert torch.autograd.gradcheck(hint_loss, tuple(inputs))


def test_rejects_a_shift_of_the_wrong_shape() -> None:
    model = tiny_model()
    features, boxes = image(2, 5)
    with pytest.raises(ValueError, match="proposal_shift"):
        model(features, boxes, captions_for(2, 3), proposal_shift=torch.zeros(2, 4, 5))
