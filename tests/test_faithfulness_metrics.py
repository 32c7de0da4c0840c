"""Sufficiency, comprehensiveness and removal curves against loops over proposals, by hand, and
on a caption-like decision (a visual word's log-probability)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hint_lightning.importance.replacement import REPLACEMENTS, tile_batch
from hint_lightning.metrics import Faithfulness
from hint_lightning.metrics.functional.faithfulness import (
    area_between_curves,
    removal_curves,
    sufficiency_comprehensiveness,
)

B, N, D, A = 6, 9, 5, 4


class ToyVQA(nn.Module):
    """Attention over proposals conditioned on a question vector, then an answer classifier."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.classifier = nn.Linear(D, A).double()

    def forward(self, proposals: Tensor, mask: Tensor, question: Tensor) -> Tensor:
        scores = (proposals * question.unsqueeze(1)).sum(-1).masked_fill(~mask, float("-inf"))
        attended = (scores.softmax(dim=1).unsqueeze(-1) * proposals).sum(dim=1)
        return self.classifier(attended * question)


@pytest.fixture
def case() -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(1)
    proposals = torch.randn(B, N, D, generator=generator, dtype=torch.float64)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[2, 6:] = False  # padded questions
    mask[4, 4:] = False
    question = torch.randn(B, D, generator=generator, dtype=torch.float64)
    importance = torch.randn(B, N, generator=generator, dtype=torch.float64)
    importance[3, 5] = importance[3, 1]  # a tie
    importance[5] = -importance[5].abs()  # nothing positive: an empty top set
    return {"proposals": proposals, "mask": mask, "question": question, "importance": importance}


def score_fn(model: ToyVQA, case: dict[str, Tensor]):
    """The decision's probability (softmax of the predicted answer), copy-major batches."""
    answers = model(case["proposals"], case["mask"], case["question"]).argmax(dim=1)

    def forward_fn(proposals: Tensor, mask: Tensor) -> Tensor:
        rows = proposals.shape[0]
        logits = model(proposals, mask, tile_batch(case["question"], rows))
        return logits.softmax(dim=1).gather(1, tile_batch(answers, rows).unsqueeze(1)).squeeze(1)

    return forward_fn


def replaced(case: dict[str, Tensor], row: int, removed: list[int], replacement: str):
    """One question's input with ``removed`` proposals replaced, built value by value."""
    proposals = case["proposals"][row].clone()
    mask = case["mask"][row].clone()
    real = case["mask"]
    for index in removed:
        if replacement == "drop":
            mask[index] = False
        elif replacement == "zeros":
            proposals[index] = 0.0
        elif replacement == "negative_ones":
            proposals[index] = -1.0
        elif replacement == "mean":  # the batch's mean real proposal
            proposals[index] = case["proposals"][real].mean(dim=0)
        elif replacement == "shuffle":  # the same slot of the next image of the batch
            proposals[index] = case["proposals"][(row + 1) % B, index]
    return proposals, mask


@torch.no_grad()
def one_score(model: ToyVQA, case: dict[str, Tensor], row: int, proposals: Tensor, mask: Tensor):
    full = model(
        case["proposals"][row : row + 1],
        case["mask"][row : row + 1],
        case["question"][row : row + 1],
    )
    answer = int(full.argmax())
    logits = model(proposals[None], mask[None], case["question"][row : row + 1])
    return float(logits.softmax(dim=1)[0, answer])


def visfis_top_set(importance: list[float], real: list[bool], fraction: float) -> list[int]:
    """VisFIS's keep-top rule, one proposal at a time."""
    values = [importance[i] for i in range(len(real)) if real[i]]
    cutoff = sorted(values, reverse=True)[int(len(values) * fraction)]
    return [i for i in range(len(real)) if real[i] and importance[i] > cutoff and importance[i] > 0]


@pytest.mark.parametrize("replacement", REPLACEMENTS)
def test_sufficiency_and_comprehensiveness_equal_a_loop_over_questions(
    case: dict[str, Tensor], replacement: str
) -> None:
    model = ToyVQA()
    fractions = (0.1, 0.25, 0.5)
    result = sufficiency_comprehensiveness(
        score_fn(model, case), case["proposals"], case["importance"], case["mask"],
        fractions=fractions, replacement=replacement,
    )  # fmt: skip
    for row in range(B):
        real = case["mask"][row].tolist()
        full = one_score(model, case, row, case["proposals"][row], case["mask"][row])
        assert result.full[row].item() == pytest.approx(full, abs=1e-12)
        for index, fraction in enumerate(fractions):
            top = visfis_top_set(case["importance"][row].tolist(), real, fraction)
            others = [i for i in range(N) if real[i] and i not in top]
            if replacement == "drop" and not top:  # nothing to keep: undefined
                assert result.sufficiency[index, row].isnan()
            else:
                kept = one_score(model, case, row, *replaced(case, row, others, replacement))
                assert result.sufficiency[index, row].item() == pytest.approx(
                    full - kept, abs=1e-12
                )
            removed = one_score(model, case, row, *replaced(case, row, top, replacement))
            assert result.comprehensiveness[index, row].item() == pytest.approx(
                full - removed, abs=1e-12
            )
    assert torch.equal(result.sufficiency_aopc.isnan(), result.sufficiency.isnan().any(0))
    torch.testing.assert_close(result.comprehensiveness_aopc, result.comprehensiveness.mean(0))


def test_sufficiency_hand_worked() -> None:
    # Score = sum of the weights of the kept proposals; importance orders them 0 > 1 > 2 > 3.
    weights = torch.tensor([0.5, 0.3, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])

    def forward_fn(proposals: Tensor, mask: Tensor) -> Tensor:
        return (mask.float() * weights).sum(dim=1)

    importance = torch.tensor([[9.0, 8.0, 7.0, 6.0, -1.0, -2.0, -3.0, -4.0, -5.0, 0.0]])
    result = sufficiency_comprehensiveness(
        forward_fn, torch.zeros(1, 10, 1), importance, fractions=(0.1, 0.25, 0.5)
    )
    # k = 1, 2, 5: keep {0}, {0, 1}, {0, 1, 2, 3} (only 4 positive): 0.5, 0.8, 1.0 of 1.0.
    torch.testing.assert_close(result.sufficiency[:, 0], torch.tensor([0.5, 0.2, 0.0]))
    torch.testing.assert_close(result.comprehensiveness[:, 0], torch.tensor([0.5, 0.8, 1.0]))
    torch.testing.assert_close(result.sufficiency_aopc, torch.tensor([0.7 / 3]))


def test_removal_curves_equal_a_loop_and_the_area_a_trapezoid(case: dict[str, Tensor]) -> None:
    model = ToyVQA()
    fractions = (0.1, 0.25, 0.5, 0.75, 0.9)
    curves = removal_curves(
        score_fn(model, case), case["proposals"], case["importance"], case["mask"],
        fractions=fractions,
    )  # fmt: skip
    for row in range(B):
        real = [i for i in range(N) if case["mask"][row, i]]
        # Most important first; ties: the lower index first (a stable sort).
        order = sorted(real, key=lambda i: (-case["importance"][row, i].item(), i))
        full = one_score(model, case, row, case["proposals"][row], case["mask"][row])
        morf, lerf = [], []
        for fraction in fractions:
            k = int(len(real) * fraction)
            most, least = order[:k], order[len(order) - k :]
            morf.append(one_score(model, case, row, *replaced(case, row, most, "drop")))
            lerf.append(one_score(model, case, row, *replaced(case, row, least, "drop")))
        np.testing.assert_allclose(curves.most_relevant_first[:, row].numpy(), morf, atol=1e-12)
        np.testing.assert_allclose(curves.least_relevant_first[:, row].numpy(), lerf, atol=1e-12)
        xs = [0.0, *fractions, 1.0]
        ys = [0.0, *(np.array(lerf) - np.array(morf)), 0.0]
        area = float(np.sum(np.diff(xs) * (np.array(ys[1:]) + np.array(ys[:-1])) / 2))
        assert curves.area_between[row].item() == pytest.approx(area, abs=1e-12)
        assert curves.full[row].item() == pytest.approx(full, abs=1e-12)


def test_curves_meet_at_both_ends_so_the_area_needs_no_end_points(case: dict[str, Tensor]) -> None:
    """Everything removed is the same input in both orders (here with zeros: runnable)."""
    model = ToyVQA()
    forward_fn = score_fn(model, case)
    mask = case["mask"]
    everything = torch.stack([mask, mask])  # both orders at f = 1
    from hint_lightning.metrics.functional.faithfulness import perturbed_outputs

    ends = perturbed_outputs(forward_fn, case["proposals"], mask, everything, "zeros")
    torch.testing.assert_close(ends[0], ends[1])


def test_a_faithful_importance_has_a_positive_area_and_its_reverse_a_negative_one() -> None:
    weights = torch.tensor([[0.4, 0.3, 0.2, 0.1, 0.0]])

    def forward_fn(proposals: Tensor, mask: Tensor) -> Tensor:
        return (mask.float() * weights).sum(dim=1)

    P = torch.zeros(1, 5, 1)
    right = removal_curves(forward_fn, P, weights, fractions=(0.2, 0.4, 0.6, 0.8))
    wrong = removal_curves(forward_fn, P, -weights, fractions=(0.2, 0.4, 0.6, 0.8))
    # MoRF removes 0.4, 0.7, 0.9, 1.0 of the mass; LeRF 0.0, 0.1, 0.3, 0.6.
    torch.testing.assert_close(right.most_relevant_first[:, 0], torch.tensor([0.6, 0.3, 0.1, 0.0]))
    torch.testing.assert_close(right.least_relevant_first[:, 0], torch.tensor([1.0, 0.9, 0.7, 0.4]))
    expected = 0.2 * (0.4 + 0.6 + 0.6 + 0.4)  # trapezoids over 0, .2, .4, .6, .8, 1
    assert right.area_between.item() == pytest.approx(expected)
    assert wrong.area_between.item() == pytest.approx(-expected)
    assert area_between_curves([0.5], torch.tensor([[2.0]])).item() == pytest.approx(1.0)


def test_one_batched_call_per_family_and_chunks_give_the_same_numbers(
    case: dict[str, Tensor],
) -> None:
    model = ToyVQA()
    inner = score_fn(model, case)
    calls: list[int] = []

    def forward_fn(proposals: Tensor, mask: Tensor) -> Tensor:
        assert mask.any(dim=1).all(), "a question without proposals was run under drop"
        calls.append(proposals.shape[0])
        return inner(proposals, mask)

    args = (forward_fn, case["proposals"], case["importance"], case["mask"])
    whole = sufficiency_comprehensiveness(*args)
    assert calls == [B, 6 * B]  # the full scores, then all 6 perturbations at once
    calls.clear()
    chunked = sufficiency_comprehensiveness(*args, max_rows=2 * B, full_scores=whole.full)
    assert calls == [2 * B, 2 * B, 2 * B]
    torch.testing.assert_close(chunked.sufficiency, whole.sufficiency, equal_nan=True)
    torch.testing.assert_close(chunked.comprehensiveness, whole.comprehensiveness)


def test_faithfulness_metric_names_values_and_merged_states(case: dict[str, Tensor]) -> None:
    model = ToyVQA()
    forward_fn = score_fn(model, case)
    metric = Faithfulness(fractions=(0.1, 0.25, 0.5), curve_fractions=(0.25, 0.5, 0.75))
    values = metric.per_question(forward_fn, case["proposals"], case["importance"], case["mask"])
    assert list(values) == list(metric.names)
    assert {"sufficiency_10", "comprehensiveness_aopc", "morf_75", "lerf_25", "curve_area"} <= set(
        values
    )
    halves = [Faithfulness(curve_fractions=(0.25, 0.5, 0.75)) for _ in range(2)]
    for half, rows in zip(halves, (slice(0, 3), slice(3, B)), strict=True):
        sub = {key: value[rows] for key, value in case.items()}
        args = (sub["proposals"], sub["importance"], sub["mask"])
        half.update(half.per_question(score_fn(model, sub), *args))
    metric.update(values)
    halves[0].merge_state(halves[1])
    for name, value in metric.compute().items():
        torch.testing.assert_close(halves[0].compute()[name], value, equal_nan=True)
    # int(9 x 0.1) = 0: an empty top set, nothing to keep under drop; question 5 has no positive
    # importance at all.
    assert metric.counts()["sufficiency_10"] == 0
    assert metric.counts()["sufficiency_25"] == B - 1
    only_morf = Faithfulness(fractions=(), orders=["most_relevant_first"])
    assert "curve_area" not in only_morf.names and "sufficiency_aopc" not in only_morf.names


def test_bad_options_are_one_clear_line() -> None:
    with pytest.raises(ValueError, match="unknown replacement 'blur'"):
        Faithfulness(replacement="blur")
    with pytest.raises(ValueError, match="strictly increasing"):
        Faithfulness(curve_fractions=(0.5, 0.25))
    with pytest.raises(ValueError, match="orders must be a subset"):
        Faithfulness(orders=["random"])
    with pytest.raises(ValueError, match="one output per row"):
        sufficiency_comprehensiveness(
            lambda P, m: torch.zeros(1), torch.zeros(2, 3, 1), torch.ones(2, 3)
        )


# --- captioning: the decision is a visual word's log-probability at its step -----------------


class ToyCaptioner(nn.Module):
    """Teacher-forced decoder: a state per step attends over proposals, then scores words."""

    def __init__(self, vocab: int = 7, steps: int = 4) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.states = nn.Parameter(torch.randn(steps, D, dtype=torch.float64))
        self.words = nn.Linear(D, vocab).double()

    def log_probs(self, proposals: Tensor, mask: Tensor, step: Tensor) -> Tensor:
        """``[R, vocab]`` log-probabilities at step ``step[r]`` of each decision row."""
        state = self.states[step]
        scores = (proposals * state.unsqueeze(1)).sum(-1).masked_fill(~mask, float("-inf"))
        attended = (scores.softmax(dim=1).unsqueeze(-1) * proposals).sum(dim=1)
        return self.words(attended + state).log_softmax(dim=1)


def test_caption_decisions_visual_word_log_probability() -> None:
    """One caption with two visual words: two decision rows sharing one image's proposals."""
    model = ToyCaptioner()
    generator = torch.Generator().manual_seed(4)
    image = torch.randn(1, N, D, generator=generator, dtype=torch.float64)
    proposals = image.expand(2, N, D).clone()  # one row per decision
    mask = torch.ones(2, N, dtype=torch.bool)
    step, word = torch.tensor([1, 3]), torch.tensor([2, 5])  # "dog" at step 1, "frisbee" at 3

    def forward_fn(P: Tensor, m: Tensor) -> Tensor:
        rows = P.shape[0]
        logp = model.log_probs(P, m, tile_batch(step, rows))
        return logp.gather(1, tile_batch(word, rows).unsqueeze(1)).squeeze(1)

    # Network importance of each decision: the gradient summed over the feature dimension.
    given = proposals.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward_fn(given, mask).sum(), given)
    importance = grad.sum(dim=-1)
    result = sufficiency_comprehensiveness(forward_fn, proposals, importance, mask)
    curves = removal_curves(forward_fn, proposals, importance, mask, fractions=(0.25, 0.5))

    @torch.no_grad()
    def word_log_prob(row: int, keep: list[int]) -> float:
        m = torch.zeros(1, N, dtype=torch.bool)
        m[0, keep] = True
        return float(model.log_probs(image, m, step[row : row + 1])[0, word[row]])

    for row in range(2):
        logp = functools.partial(word_log_prob, row)
        full = logp(list(range(N)))
        for index, fraction in enumerate((0.1, 0.25, 0.5)):
            top = visfis_top_set(importance[row].tolist(), [True] * N, fraction)
            rest = [i for i in range(N) if i not in top]
            if top:
                assert result.sufficiency[index, row].item() == pytest.approx(
                    full - logp(top), abs=1e-12
                )
            assert result.comprehensiveness[index, row].item() == pytest.approx(
                full - logp(rest), abs=1e-12
            )
        order = sorted(range(N), key=lambda i: (-importance[row, i].item(), i))
        for index, fraction in enumerate((0.25, 0.5)):
            k = int(N * fraction)
            assert curves.most_relevant_first[index, row].item() == pytest.approx(
                logp(order[k:]), abs=1e-12
            )
            assert curves.least_relevant_first[index, row].item() == pytest.approx(
                logp(order[: N - k]), abs=1e-12
            )
