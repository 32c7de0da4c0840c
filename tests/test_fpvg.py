"""FPVG against a re-implementation of the public script's logic (dreichCSL/FPVG
``calculate_FPVG.py``), and the three forward passes on a tiny model."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from hint_lightning.importance.replacement import tile_batch
from hint_lightning.metrics import FPVG
from hint_lightning.metrics.functional.fpvg import (
    fpvg_categories,
    fpvg_outcome,
    fpvg_proposal_sets,
)


def script_categories(
    test_all: dict[int, str],
    test_rel: dict[int, str],
    test_irrel: dict[int, str],
    gt: dict[int, str],
) -> dict[str, set[int]]:
    """The script's sets (CC_1, II_1_sub3, ...) as it builds them: lists, set intersections."""
    ok_all = {q: test_all[q] == gt[q] for q in gt}
    ok_rel = {q: test_rel[q] == gt[q] for q in gt}
    ok_irr = {q: test_irrel[q] == gt[q] for q in gt}
    change: dict[str, dict[str, list[int]]] = {"rel": {}, "irrel": {}}
    for key, ok in (("rel", ok_rel), ("irrel", ok_irr)):
        change[key]["c2c"] = [q for q in gt if ok_all[q] and ok[q]]
        change[key]["c2i"] = [q for q in gt if ok_all[q] and not ok[q]]
        change[key]["i2c"] = [q for q in gt if not ok_all[q] and ok[q]]
        change[key]["i2i"] = [q for q in gt if not ok_all[q] and not ok[q]]
    rel, irr = change["rel"], change["irrel"]
    cc_1 = set(rel["c2c"]) & set(irr["c2i"])
    cc_2 = set(rel["c2c"]) & set(irr["c2c"])
    ci_1 = set(rel["c2i"]) & set(irr["c2i"])
    ci_1_sub1 = {q for q in ci_1 if test_rel[q] == test_irrel[q]}
    ci_1_sub2 = {q for q in ci_1 if test_rel[q] != test_irrel[q]}
    ci_2 = set(rel["c2i"]) & set(irr["c2c"])
    ic_1 = set(rel["i2c"]) & set(irr["i2c"])
    ic_2 = set(rel["i2c"]) & set(irr["i2i"])
    ii_1 = set(rel["i2i"]) & set(irr["i2i"])
    a, r, i = test_all, test_rel, test_irrel
    ii_1_sub1 = {q for q in ii_1 if a[q] == r[q] == i[q]}
    ii_1_sub2 = {q for q in ii_1 if a[q] != r[q] and a[q] == i[q]}
    ii_1_sub3 = {q for q in ii_1 if a[q] == r[q] and a[q] != i[q]}
    ii_1_sub4 = {q for q in ii_1 if a[q] != r[q] and a[q] != i[q] and r[q] == i[q]}
    ii_1_sub5 = {q for q in ii_1 if a[q] != r[q] and a[q] != i[q] and r[q] != i[q]}
    ii_2 = set(rel["i2i"]) & set(irr["i2c"])
    ii_2_sub1 = {q for q in ii_2 if a[q] == r[q]}
    ii_2_sub2 = {q for q in ii_2 if a[q] != r[q]}
    return {
        "ggc": cc_1,
        "ggw": ii_1_sub3 | ii_2_sub1,
        "bgc": cc_2 | ci_2 | ci_1_sub1 | ci_1_sub2,
        "bgw": ic_1 | ic_2 | ii_2_sub2 | ii_1_sub1 | ii_1_sub2 | ii_1_sub4 | ii_1_sub5,
    }


def test_categories_equal_the_script_on_every_answer_pattern() -> None:
    """All 3^3 answer triples over a 3-answer space, with each answer as the ground truth."""
    words = ["yes", "no", "two"]
    triples = list(itertools.product(range(3), repeat=3))
    cases = [(triple, truth) for triple in triples for truth in range(3)]
    predictions = torch.tensor([[t[k] for t, _ in cases] for k in range(3)])
    truths = torch.tensor([truth for _, truth in cases])
    ours = fpvg_categories(
        predictions, predictions == truths, torch.ones(len(cases), dtype=torch.bool)
    )
    names = {q: [words[p] for p in triple] for q, (triple, _) in enumerate(cases)}
    script = script_categories(
        {q: n[0] for q, n in names.items()},
        {q: n[1] for q, n in names.items()},
        {q: n[2] for q, n in names.items()},
        {q: words[truth] for q, (_, truth) in enumerate(cases)},
    )
    for name, expected in script.items():
        assert set(torch.nonzero(ours[name]).flatten().tolist()) == expected, name
    covered = sum(len(s) for s in script.values())
    assert covered == len(cases)  # the four categories partition the questions
    assert ours["good"].sum() == len(script["ggc"]) + len(script["ggw"])


def test_relevant_and_irrelevant_sets_from_human_importance() -> None:
    human = torch.tensor([[0.9, 0.6, 0.5, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5]])
    mask = torch.tensor([[True, True, True, True, False], [True] * 5])
    rel, irr = fpvg_proposal_sets(human, mask, relevant_threshold=0.55)
    assert rel.tolist() == [[True, True, False, False, False], [False] * 5]
    assert irr.tolist() == [[False, False, True, True, False], [True] * 5]
    rel, irr = fpvg_proposal_sets(human, mask, 0.55, irrelevant_threshold=0.3)
    assert irr[0].tolist() == [False, False, False, True, False]  # 0.5: in neither set
    with pytest.raises(ValueError, match="must not exceed relevant_threshold"):
        fpvg_proposal_sets(human, mask, 0.3, 0.5)


def test_three_answers_drop_the_other_proposals_and_questions_without_both_sets_are_left_out() -> (
    None
):
    # The answer is the index of the first real proposal whose feature is positive (else 9).
    proposals = torch.tensor([[[1.0], [-1.0], [1.0], [1.0]]] * 3)
    human = torch.tensor([[0.0, 0.9, 0.9, 0.1], [0.9, 0.0, 0.1, 0.2], [0.9, 0.9, 0.9, 0.9]])
    seen: list[Tensor] = []

    def predict_fn(P: Tensor, mask: Tensor) -> Tensor:
        seen.append(mask.clone())
        positive = (P[..., 0] > 0) & mask
        first = torch.where(positive.any(1), positive.float().argmax(1), torch.tensor(9.0))
        return first.long()

    rel, irr = fpvg_proposal_sets(human, None, 0.55)
    truth = torch.tensor([0, 0, 0])
    outcome = fpvg_outcome(predict_fn, lambda p: p == truth, proposals, rel, irr)
    (masks,) = seen
    assert masks.shape == (9, 4)  # one batch: all, only relevant, only irrelevant (copy-major)
    assert masks[3:6].tolist() == rel.tolist() and masks[6:9].tolist()[:2] == irr.tolist()[:2]
    assert outcome.evaluated.tolist() == [True, True, False]  # question 2: nothing irrelevant
    # Q0: all -> 0 (correct), rel {1, 2} -> 2, irr {0, 3} -> 0: BGC. Q1: all 0, rel {0} -> 0,
    # irr {1, 2, 3} -> 2: GGC.
    assert outcome.predictions[:, :2].tolist() == [[0, 0], [2, 0], [0, 2]]
    assert outcome.categories["bgc"].tolist() == [True, False, False]
    assert outcome.categories["ggc"].tolist() == [False, True, False]


def test_fpvg_metric_shares_and_split_by_correctness() -> None:
    generator = torch.Generator().manual_seed(0)
    B, N = 40, 6
    proposals = torch.randn(B, N, 3, generator=generator)
    human = torch.rand(B, N, generator=generator)
    truth = torch.randint(0, 3, (B,), generator=generator)
    weights = torch.randn(3, 3, generator=generator)

    def predict_fn(P: Tensor, mask: Tensor) -> Tensor:
        pooled = (P * mask.unsqueeze(-1)).sum(1)
        return (pooled @ weights).argmax(1)

    def correct_fn(p: Tensor) -> Tensor:
        return p == truth

    metric = FPVG(relevant_threshold=0.55)
    has = torch.arange(B) % 4 != 0
    values = metric.per_question(predict_fn, correct_fn, proposals, human, has_importance=has)
    metric.update(values)
    result = metric.compute()
    shares = sum(result[name] for name in ("ggc", "ggw", "bgc", "bgw"))
    assert shares.item() == pytest.approx(1.0)
    assert result["fpvg_plus"].item() == pytest.approx((result["ggc"] + result["ggw"]).item())
    counts = metric.counts()
    assert counts["fpvg_plus_correct"] + counts["fpvg_plus_wrong"] == counts["fpvg_plus"]
    ggc = torch.nansum(values["ggc"])
    bgc = torch.nansum(values["bgc"])
    assert result["fpvg_plus_correct"].item() == pytest.approx((ggc / (ggc + bgc)).item())
    assert values["fpvg_plus"][~has].isnan().all()
    # Given the unperturbed predictions, the same values with one copy fewer.
    again = metric.per_question(
        predict_fn, correct_fn, proposals, human, has_importance=has,
        predictions=predict_fn(proposals, torch.ones(B, N, dtype=torch.bool)),
    )  # fmt: skip
    for name, value in values.items():
        torch.testing.assert_close(again[name], value, equal_nan=True)


def test_caption_decisions_predicted_word_at_a_visual_word_step() -> None:
    """Captioning: a decision row per visual word; the prediction is the arg-max word at its
    step, correct when it is the ground-truth word. Word w is predicted from the proposal
    the step attends to, so a step whose word lives in the relevant proposal grounds well."""
    # Proposal r's feature is a one-hot of word r; step s attends to proposal s when present.
    proposals = torch.eye(4).unsqueeze(0).expand(2, 4, 4).clone()
    step = torch.tensor([1, 2])  # decision rows: "dog" (word 1) at step 1, "cat" (2) at step 2
    word = torch.tensor([1, 2])

    def predict_fn(P: Tensor, mask: Tensor) -> Tensor:
        steps = tile_batch(step, P.shape[0])
        present = mask.gather(1, steps[:, None])[:, 0]
        attended = P[torch.arange(P.shape[0]), steps]
        return torch.where(present, attended.argmax(1), torch.zeros_like(steps))  # 0 = "a"

    # Row 0: people looked at proposal 1 (its word); row 1 at proposal 3 (not its word).
    human = torch.tensor([[0.0, 0.9, 0.1, 0.1], [0.0, 0.1, 0.1, 0.9]])
    metric = FPVG(relevant_threshold=0.5)
    values = metric.per_question(predict_fn, lambda p: p == word, proposals, human)
    assert values["ggc"].tolist() == [1.0, 0.0]  # kept with relevant, lost with irrelevant
    assert values["bgc"].tolist() == [0.0, 1.0]  # the word needs a proposal people ignored
