"""Plausibility metrics equal Quantus 0.6 on the same box vectors, VisFIS's IoU@k, scipy's rho."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from hint_lightning.metrics import Plausibility
from hint_lightning.metrics.functional.plausibility import (
    human_relevance_mask,
    iou_at_k,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    roc_auc,
    top_k_intersection,
)

quantus = pytest.importorskip("quantus")


def quantus_scores(metric: object, importance: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """A Quantus localisation metric on box vectors: ``[B, 1, N]``, no model, no normalising."""
    batch, slots = importance.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = metric(
            model=None,
            x_batch=np.zeros((batch, 1, slots), dtype=np.float32),
            y_batch=np.zeros(batch, dtype=int),
            a_batch=importance.reshape(batch, 1, slots),
            s_batch=relevant.reshape(batch, 1, slots).astype(int),  # bool/int under numpy 2
        )
    return np.asarray(scores, dtype=np.float64)


def quantus_metric(name: str, **options: object) -> object:
    return getattr(quantus, name)(normalise=False, abs=False, disable_warnings=True, **options)


@pytest.fixture
def boxes() -> tuple[torch.Tensor, torch.Tensor]:
    """64 questions x 36 proposals: signed importance, 0-12 relevant proposals per question."""
    generator = torch.Generator().manual_seed(0)
    importance = torch.randn(64, 36, generator=generator, dtype=torch.float64)
    counts = torch.randint(0, 13, (64, 1), generator=generator)
    order = torch.rand(64, 36, generator=generator).argsort(dim=1)
    relevant = order < counts
    relevant[1] = True  # every proposal relevant
    return importance, relevant


def assert_same(ours: torch.Tensor, theirs: np.ndarray, tolerance: float = 1e-12) -> None:
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=tolerance, atol=tolerance)


def test_pointing_game_equals_quantus(boxes: tuple[torch.Tensor, torch.Tensor]) -> None:
    importance, relevant = boxes
    ours = pointing_game(importance, relevant)
    theirs = quantus_scores(quantus_metric("PointingGame"), importance.numpy(), relevant.numpy())
    defined = relevant.any(dim=1).numpy()
    assert_same(ours[defined], theirs[defined])
    # Quantus 0.6 writes NaN into a bool array, which makes it True; ours says "undefined".
    assert ours[~defined].isnan().all() and (theirs[~defined] == 1.0).all()


def test_pointing_game_counts_every_proposal_tied_at_the_maximum() -> None:
    importance = torch.tensor([[2.0, 5.0, 5.0, 1.0]])
    assert pointing_game(importance, torch.tensor([[False, False, True, False]])).item() == 1.0
    assert pointing_game(importance, torch.tensor([[True, False, False, True]])).item() == 0.0


@pytest.mark.parametrize("positive_only", [False, True])
def test_relevance_mass_equals_quantus(
    boxes: tuple[torch.Tensor, torch.Tensor], positive_only: bool
) -> None:
    importance, relevant = boxes
    ours = relevance_mass_accuracy(importance, relevant, positive_only=positive_only)
    # Ours over the positive part = Quantus's signed definition on relu(importance).
    given = importance.clamp(min=0) if positive_only else importance
    theirs = quantus_scores(
        quantus_metric("RelevanceMassAccuracy"), given.numpy(), relevant.numpy()
    )
    assert_same(ours, theirs)
    if not positive_only:  # signed sums leave [0, 1]: the reason for the positive default
        assert (ours[relevant.any(dim=1)] > 1).any()


def test_relevance_mass_without_positive_importance_is_zero_as_model_guidance() -> None:
    importance = torch.tensor([[-1.0, -2.0, 0.0], [1.0, 3.0, 0.0]])
    relevant = torch.tensor([[True, False, False], [False, True, True]])
    assert relevance_mass_accuracy(importance, relevant).tolist() == [0.0, 0.75]


def test_relevance_rank_accuracy_equals_quantus(boxes: tuple[torch.Tensor, torch.Tensor]) -> None:
    importance, relevant = boxes
    ours = relevance_rank_accuracy(importance, relevant)
    metric = quantus_metric("RelevanceRankAccuracy")
    assert_same(ours, quantus_scores(metric, importance.numpy(), relevant.numpy()))


@pytest.mark.parametrize("k", [1, 3, 10, 35])
def test_top_k_intersection_equals_quantus(
    boxes: tuple[torch.Tensor, torch.Tensor], k: int
) -> None:
    importance, relevant = boxes
    for concept_influence in (False, True):
        ours = top_k_intersection(importance, relevant, k=k, concept_influence=concept_influence)
        metric = quantus_metric("TopKIntersection", k=k, concept_influence=concept_influence)
        assert_same(ours, quantus_scores(metric, importance.numpy(), relevant.numpy()))


def test_top_k_with_fewer_real_proposals_than_k_uses_them_all() -> None:
    # Quantus refuses k >= the input size; a padded row can have fewer than k real proposals:
    # like Quantus's slice [:k], the top set is then every real proposal.
    importance = torch.tensor([[3.0, 2.0, 1.0, 9.0]])
    real = torch.tensor([[True, True, True, False]])
    relevant = torch.tensor([[True, False, False, False]])
    assert top_k_intersection(importance, relevant, real, k=5).item() == pytest.approx(1 / 3)


def test_roc_auc_equals_quantus(boxes: tuple[torch.Tensor, torch.Tensor]) -> None:
    importance, relevant = boxes
    ties = importance.round(decimals=0)  # many ties: half credit, as sklearn's ROC curve
    for given in (importance, ties):
        ours = roc_auc(given, relevant)
        theirs = quantus_scores(quantus_metric("AUC"), given.numpy(), relevant.numpy())
        assert_same(ours, theirs)
    assert ours[1].isnan()  # every proposal relevant: no negative, undefined


def test_ties_rank_the_lower_index_first_as_a_stable_sort() -> None:
    importance = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0]])
    relevant = torch.tensor([[False, False, False, True, True]])
    # Descending stable order: 1, 2, 3, 0, 4. Two relevant -> top-2 = {1, 2}: no hit.
    assert relevance_rank_accuracy(importance, relevant).item() == 0.0
    assert top_k_intersection(importance, relevant, k=3).item() == pytest.approx(1 / 3)
    stable = np.argsort(-importance.numpy()[0], kind="stable")
    assert stable.tolist() == [1, 2, 3, 0, 4]


def test_padded_proposals_take_no_part(boxes: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Each padded row scores as its real proposals alone (checked with Quantus per row)."""
    importance, relevant = boxes
    sizes = torch.randint(10, 37, (64, 1), generator=torch.Generator().manual_seed(3))
    real = torch.arange(36).expand(64, 36) < sizes
    padded = importance.masked_fill(~real, 100.0)  # a padded value must never win
    names = ("PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy", "AUC")
    functions = (pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, roc_auc)
    for name, function in zip(names, functions, strict=True):
        kwargs = {"positive_only": False} if function is relevance_mass_accuracy else {}
        ours = function(padded, relevant, real, **kwargs)
        for row in range(0, 64, 7):
            keep = real[row]
            imp, rel = importance[row, keep][None], relevant[row, keep][None]
            if not rel.any():
                assert ours[row].isnan()
                continue
            theirs = quantus_scores(quantus_metric(name), imp.numpy(), rel.numpy())
            np.testing.assert_allclose(ours[row].item(), theirs[0], rtol=1e-12, atol=1e-12)


def visfis_iou(importance: np.ndarray, human: np.ndarray, threshold: float, f: float) -> float:
    """VisFIS's ``plau_iou`` of one question, loop by loop (``generate_mask('keep_top')``)."""
    n = len(importance)
    cut = int(n * f)
    cutoff = sorted(importance, reverse=True)[cut]
    top = [importance[i] > cutoff and importance[i] > 0 for i in range(n)]
    mask = [human[i] > threshold for i in range(n)]
    inter = sum(t and m for t, m in zip(top, mask, strict=True))
    union = sum(t or m for t, m in zip(top, mask, strict=True))
    return inter / union if union else float("nan")


def test_iou_at_k_equals_visfis_per_question(boxes: tuple[torch.Tensor, torch.Tensor]) -> None:
    importance, _ = boxes
    human = torch.rand(64, 36, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    human[5] = 0.0  # no relevant proposal
    importance[5] = -importance[5].abs()  # and an empty top set: NaN
    importance[6, :10] = 2.0  # ties at the cut-off leave them all out
    ours = iou_at_k(importance, human_relevance_mask(human, 0.55), fractions=(0.1, 0.25, 0.5))
    for row in range(64):
        for index, f in enumerate((0.1, 0.25, 0.5)):
            expected = visfis_iou(importance[row].numpy(), human[row].numpy(), 0.55, f)
            np.testing.assert_allclose(ours[index, row].item(), expected, rtol=1e-12)


def test_iou_hand_worked() -> None:
    # n = 4, k = int(4 * 0.5) = 2: the cut-off is the 3rd largest value (0.3); only positive.
    importance = torch.tensor([[0.9, -0.1, 0.3, 0.5]])
    relevant = torch.tensor([[True, True, False, False]])
    # top = {0, 3}; relevant = {0, 1}: 1 / 3.
    assert iou_at_k(importance, relevant, fractions=(0.5,)).item() == pytest.approx(1 / 3)


def test_plausibility_metric_means_and_rho_equal_the_references(
    boxes: tuple[torch.Tensor, torch.Tensor],
) -> None:
    importance, _ = boxes
    human = torch.rand(64, 36, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    has = torch.arange(64) % 5 != 0
    metric = Plausibility(threshold=0.55, top_k=3)
    values = metric.per_question(importance, human, has_importance=has)
    rho = [spearmanr(importance[i].numpy(), human[i].numpy())[0] for i in range(64)]
    np.testing.assert_allclose(values["rho"][has].numpy(), np.array(rho)[has.numpy()], atol=1e-6)
    assert values["pointing_game"][~has].isnan().all()
    expected_iou = torch.stack([values["iou_10"], values["iou_25"], values["iou_50"]]).mean(0)
    torch.testing.assert_close(values["iou"], expected_iou, equal_nan=True)
    # Two halves (two processes) merged give the single-pass means: sums and counts.
    whole, first, second = (Plausibility(threshold=0.55) for _ in range(3))
    whole.update(whole.per_question(importance, human, has_importance=has))
    first.update(first.per_question(importance[:30], human[:30], has_importance=has[:30]))
    second.update(second.per_question(importance[30:], human[30:], has_importance=has[30:]))
    first.merge_state(second)
    for name, value in whole.compute().items():
        torch.testing.assert_close(first.compute()[name], value)
        assert torch.isclose(
            value, torch.tensor(np.nanmean(values[name].numpy()), dtype=value.dtype)
        )
    assert whole.counts()["pointing_game"] == int(has.sum())
    assert int(whole.questions) == 64


def test_bad_inputs_name_the_argument() -> None:
    importance = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="relevant must be a bool mask"):
        pointing_game(importance, torch.ones(2, 3))
    with pytest.raises(ValueError, match="shaped like importance"):
        pointing_game(importance, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN or infinite"):
        roc_auc(torch.tensor([[float("nan"), 0.0, 1.0]]), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="iou_fractions must lie strictly between 0 and 1"):
        Plausibility(iou_fractions=(0.5, 1.0))
