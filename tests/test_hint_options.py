"""HINT objective options: ``rank_on`` (signed / abs), ``normalize`` (none / per_sample), the
legacy ``normalize: true`` spelling of ``pair_mean``, and clear errors. Values are hand-worked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hint_lightning.objectives.base import GroundingInputs
from hint_lightning.objectives.hint import HintObjective, importance_scale

CONF = Path(__file__).resolve().parents[1] / "conf" / "objective" / "hint.yaml"

# humans rank 0 > 2 > 1; ordered pairs (0,1), (0,2), (2,1).
ALPHA = [[1.0, -2.0, 3.0]]
HUMAN = torch.tensor([[0.9, 0.1, 0.5]])


def _loss(objective: HintObjective, alpha: torch.Tensor, mask: torch.Tensor | None = None):
    mask = torch.ones_like(alpha, dtype=torch.bool) if mask is None else mask
    return objective(GroundingInputs(HUMAN, mask, None, alpha))


@pytest.mark.parametrize(
    ("normalize", "rank_on", "expected"),
    [
        # signed: only (0,2) is misranked, 3 - 1 = 2.
        ("none", "signed", 2.0),
        # |alpha| = 1, 2, 3: (0,1) 2 - 1 = 1, (0,2) 2, (2,1) none -> 3.
        ("none", "abs", 3.0),
        # scale = mean |alpha| = 2: alpha / 2 = .5, -1, 1.5 -> (0,2) 1.
        ("per_sample", "signed", 1.0),
        # |alpha| / 2 = .5, 1, 1.5 -> .5 + 1 = 1.5.
        ("per_sample", "abs", 1.5),
    ],
)
def test_hand_worked_values(normalize: str, rank_on: str, expected: float) -> None:
    objective = HintObjective(normalize=normalize, rank_on=rank_on)
    assert _loss(objective, torch.tensor(ALPHA)).item() == pytest.approx(expected)


def test_per_sample_is_scale_invariant_and_plain_is_not() -> None:
    alpha = torch.tensor(ALPHA)
    invariant = HintObjective(normalize="per_sample")
    plain = HintObjective()
    assert _loss(invariant, 0.01 * alpha).item() == pytest.approx(_loss(invariant, alpha).item())
    assert _loss(plain, 0.01 * alpha).item() == pytest.approx(0.01 * _loss(plain, alpha).item())


def test_scale_is_not_detached_hand_worked_gradient() -> None:
    # L = (a2 - a0) / s, s = (|a0| + |a1| + |a2|) / 3 = 2, a2 - a0 = 2:
    # dL/da0 = -1/s - 2/s^2 * 1/3 = -2/3; dL/da1 = -2/s^2 * (-1/3) = 1/6; dL/da2 = 1/2 - 1/6.
    alpha = torch.tensor(ALPHA, requires_grad=True)
    _loss(HintObjective(normalize="per_sample"), alpha).backward()
    torch.testing.assert_close(alpha.grad, torch.tensor([[-2 / 3, 1 / 6, 1 / 3]]))
    # A detached scale would give -1/2, 0, 1/2: the gradient that shrinks the scale is kept.


def test_scale_counts_only_real_proposals() -> None:
    alpha = torch.tensor([[1.0, -2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    torch.testing.assert_close(importance_scale(alpha, mask), torch.tensor([[2.0]]))
    torch.testing.assert_close(importance_scale(alpha), torch.tensor([[26.5]]))
    assert importance_scale(torch.zeros(1, 3)).item() > 0  # an all-zero sample gives no NaN
    human = torch.tensor([[0.9, 0.1, 0.5, 0.0]])
    objective = HintObjective(normalize="per_sample")
    loss = objective(GroundingInputs(human, mask, None, alpha))
    assert loss.item() == pytest.approx(1.0)


def test_legacy_normalize_true_means_pair_mean() -> None:
    alpha = torch.tensor(ALPHA)
    legacy = HintObjective(normalize=True)
    assert (legacy.normalize, legacy.pair_mean) == ("none", True)
    assert _loss(legacy, alpha).item() == pytest.approx(2.0 / 3)  # 3 ordered pairs
    assert HintObjective(normalize=False).normalize == "none"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"normalize": "per_batch"}, "objective.normalize"), ({"rank_on": "sq"}, "objective.rank_on")],
)
def test_bad_options_fail_with_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        HintObjective(**kwargs)
    assert "\n" not in str(error.value)


def test_config_defaults_are_the_paper_and_options_instantiate() -> None:
    config = OmegaConf.load(CONF)
    default = instantiate(config)
    assert (default.normalize, default.rank_on, default.pair_mean) == ("none", "signed", False)
    config.normalize, config.rank_on = "per_sample", "abs"
    assert (instantiate(config).normalize, instantiate(config).rank_on) == ("per_sample", "abs")


def test_margin_makes_ties_cost_hand_worked() -> None:
    # alpha all equal: every ordered pair costs the margin; 3 pairs x 0.5 = 1.5.
    tied = torch.tensor([[2.0, 2.0, 2.0]])
    assert _loss(HintObjective(), tied).item() == 0.0
    assert _loss(HintObjective(margin=0.5), tied).item() == pytest.approx(1.5)
    # per_sample: alpha / 2 = .5, -1, 1.5; pairs (0,1): relu(-1.5 + .5) = 0,
    # (0,2): relu(1 + .5) = 1.5, (2,1): relu(-2.5 + .5) = 0 -> 1.5.
    objective = HintObjective(normalize="per_sample", margin=0.5)
    assert _loss(objective, torch.tensor(ALPHA)).item() == pytest.approx(1.5)
    assert _loss(objective, 100 * torch.tensor(ALPHA)).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"objective\.margin"):
        HintObjective(margin=-1.0)
