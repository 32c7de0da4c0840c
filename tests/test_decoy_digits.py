"""Decoy digits (Ross et al. 2017): the data, the RRR objective, the experiments and the driver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from testkit import QUICK_TRAINER

from hint_lightning.compose import compose_train_config
from hint_lightning.data import decoy_digits as D
from hint_lightning.objectives.base import GroundingInputs
from hint_lightning.objectives.rrr import RRRObjective, rrr_penalty
from hint_lightning.train import train

pytest.importorskip("sklearn")

TINY = QUICK_TRAINER


@pytest.fixture(scope="module")
def splits() -> dict[str, D.DecoySplit]:
    return D.make_decoy_digits(seed=0)


def _decoy_pixels(split: D.DecoySplit) -> np.ndarray:
    """``[M, 16]`` pixels of each image's decoy cell."""
    patches = D.image_patches(split.images)
    return patches[np.arange(len(patches)), split.decoy_index]


def test_splits_partition_the_digits(splits: dict[str, D.DecoySplit]) -> None:
    sizes = {name: len(split.labels) for name, split in splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == round(0.3 * 1797)


@pytest.mark.parametrize("name", ["train", "val"])
def test_decoy_is_present_and_codes_the_label(splits: dict[str, D.DecoySplit], name: str) -> None:
    split = splits[name]
    pixels = _decoy_pixels(split)
    expected = D.decoy_shade(split.labels)
    np.testing.assert_allclose(pixels, np.repeat(expected[:, None], 16, axis=1))
    assert set(np.unique(split.decoy_index)) == set(D.CORNER_CELLS)  # every corner is used


def test_decoy_is_random_in_test(splits: dict[str, D.DecoySplit]) -> None:
    split = splits["test"]
    pixels = _decoy_pixels(split)
    assert (pixels == pixels[:, :1]).all()  # a uniform patch...
    assert (pixels[:, 0] > 0).all()  # ...present in every image...
    agreement = np.mean(np.isclose(pixels[:, 0], D.decoy_shade(split.labels)))
    assert agreement < 0.2  # ...whose shade matches the label only by chance (~10%)


def test_only_the_decoy_cell_is_painted_outside_the_digit(
    splits: dict[str, D.DecoySplit],
) -> None:
    split = splits["train"]
    patches = D.image_patches(split.images)
    inner = {r * D.GRID + c for r in range(1, D.GRID - 1) for c in range(1, D.GRID - 1)}
    for m in range(50):
        painted = set(np.flatnonzero(patches[m].sum(axis=1) > 0).tolist())
        assert painted - inner == {int(split.decoy_index[m])}


def test_human_importance_is_zero_on_the_decoy(splits: dict[str, D.DecoySplit]) -> None:
    for split in splits.values():
        h = split.human_importance
        assert (h[np.arange(len(h)), split.decoy_index] == 0).all()
        np.testing.assert_allclose(h.sum(axis=1), 1.0)
        assert split.has_importance.all()


def test_hinted_fraction_marks_a_share_of_training_images() -> None:
    splits = D.make_decoy_digits(seed=1, hinted_fraction=0.1)
    share = splits["train"].has_importance.mean()
    assert 0.05 < share < 0.15
    assert splits["test"].has_importance.all()


def test_datamodule_batches() -> None:
    datamodule = D.DecoyDigitsDataModule(batch_size=8)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    info = datamodule.info
    assert batch[D.FEATURES].shape == (8, info.num_proposals, info.feature_dim)
    assert batch[D.HUMAN_IMPORTANCE].shape == (8, info.num_proposals)
    assert batch[D.LABEL].dtype == torch.int64


def test_rrr_penalty_hand_made_case() -> None:
    alpha = torch.tensor([[1.0, -2.0, 3.0, 4.0], [0.5, 0.0, 0.0, 2.0]])
    human = torch.tensor([[0.0, 0.7, 0.0, 0.3], [0.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    # sample 0: irrelevant real proposals 0 and 2 -> 1 + 9; sample 1: 0, 1, 3 -> 0.25 + 0 + 4.
    torch.testing.assert_close(rrr_penalty(alpha, human, mask), torch.tensor([10.0, 4.25]))
    objective = RRRObjective(weight=2.0)
    inputs = GroundingInputs(human_importance=human, proposal_mask=mask, network_importance=alpha)
    torch.testing.assert_close(objective(inputs), torch.tensor(2.0 * (10.0 + 4.25) / 2))


def test_rrr_objective_needs_network_importance() -> None:
    objective = RRRObjective()
    assert objective.needs_network_importance
    inputs = GroundingInputs(human_importance=torch.zeros(1, 2), proposal_mask=torch.ones(1, 2))
    with pytest.raises(ValueError, match="network importance"):
        objective(inputs)


def test_rrr_config_builds_the_objective(tmp_path: Path) -> None:
    cfg = compose_train_config(["objective=rrr", "objective.weight=3"], output_dir=tmp_path)
    objective = instantiate(cfg.objective)
    assert isinstance(objective, RRRObjective) and objective.weight == 3.0


@pytest.mark.parametrize(
    "experiment", ["decoy_digits_plain", "decoy_digits_hint", "decoy_digits_rrr"]
)
def test_experiment_runs_in_process(experiment: str, tmp_path: Path) -> None:
    cfg = compose_train_config(
        [f"experiment={experiment}", *TINY, "callbacks=none"], output_dir=tmp_path
    )
    metrics = train(cfg)
    for key in ("val/acc", "test/acc", "test/rho", "test/decoy_share", "train/acc"):
        assert key in metrics, key
    assert 0.0 <= metrics["test/acc"] <= 100.0
    if experiment != "decoy_digits_plain":
        assert metrics["train/hinted_frac"] == 1.0


def test_random_validation_decoy_keeps_train_and_test_and_randomizes_val() -> None:
    coded = D.make_decoy_digits(seed=3)
    shuffled = D.make_decoy_digits(seed=3, val_decoy="random")
    for split in ("train", "test"):
        np.testing.assert_array_equal(coded[split].images, shuffled[split].images)
    np.testing.assert_array_equal(coded["val"].labels, shuffled["val"].labels)
    assert (coded["val"].shades == D.decoy_shade(coded["val"].labels)).all()
    agree = (shuffled["val"].shades == D.decoy_shade(shuffled["val"].labels)).mean()
    assert agree < 0.3  # a random label's shade: right by chance about 1 time in 10
    with pytest.raises(ValueError, match="val_decoy"):
        D.make_decoy_digits(seed=3, val_decoy="flipped")
