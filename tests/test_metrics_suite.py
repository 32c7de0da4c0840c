"""The ``metrics`` config group composes, and GroundingMetrics runs every family on a batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch import Tensor

from hint_lightning.compose import compose_train_config
from hint_lightning.importance.replacement import tile_batch
from hint_lightning.metrics import GroundingMetrics
from hint_lightning.train import CONFIG_DIR

FAMILIES = ["plausibility", "faithfulness", "fpvg"]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_metrics_config_composes_and_builds(family: str, tmp_path: Path) -> None:
    cfg = compose_train_config([f"metrics=[{family}]"], output_dir=tmp_path)
    options = OmegaConf.to_container(cfg.metrics, resolve=True)
    assert list(options) == [family]
    metrics = GroundingMetrics.from_config(options)
    assert list(metrics.families) == [family]


def test_all_three_compose_into_eval_with_a_dataset_threshold() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="eval.yaml",
            overrides=[
                "metrics=[plausibility,faithfulness,fpvg]",
                "+data.human_importance_threshold=0.3",
            ],
        )
    options = OmegaConf.to_container(cfg.metrics, resolve=True)
    assert options["plausibility"]["threshold"] == 0.3  # e.g. GQA's VisFIS threshold
    assert options["fpvg"]["relevant_threshold"] == 0.3
    assert options["faithfulness"]["replacement"] == "drop"
    metrics = GroundingMetrics.from_config(options)
    assert {"pointing_game", "sufficiency_aopc", "curve_area", "fpvg_plus"} <= set(metrics.names)


def test_bad_metrics_config_names_the_family_and_option() -> None:
    with pytest.raises(ValueError, match=r"metrics\.energy: unknown metric family"):
        GroundingMetrics.from_config({"energy": {}})
    with pytest.raises(
        ValueError,
        match=r"metrics\.faithfulness: unknown option\(s\) k; the options are fractions, curve_",
    ):
        GroundingMetrics.from_config({"faithfulness": {"k": 3}})
    with pytest.raises(ValueError, match=r"metrics\.faithfulness: unknown replacement .blur."):
        GroundingMetrics.from_config({"faithfulness": {"replacement": "blur"}})


def test_one_update_runs_every_family_and_says_what_is_missing() -> None:
    generator = torch.Generator().manual_seed(0)
    B, N, D = 8, 10, 4
    proposals = torch.randn(B, N, D, generator=generator)
    human = torch.rand(B, N, generator=generator)
    weights = torch.randn(D, 3, generator=generator)
    truth = torch.randint(0, 3, (B,), generator=generator)

    def logits(P: Tensor, mask: Tensor) -> Tensor:  # attention on the first feature
        attention = P[..., 0].masked_fill(~mask, float("-inf")).softmax(dim=1)
        return (attention.unsqueeze(-1) * P).sum(1) @ weights

    mask = torch.ones(B, N, dtype=torch.bool)
    answers = logits(proposals, mask).argmax(1)

    def forward_fn(P: Tensor, m: Tensor) -> Tensor:
        return logits(P, m).softmax(1).gather(1, tile_batch(answers, P.shape[0])[:, None])[:, 0]

    given = proposals.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward_fn(given, mask).sum(), given)
    metrics = GroundingMetrics.from_config(
        {
            "plausibility": {"threshold": 0.5},
            "faithfulness": {},
            "fpvg": {"relevant_threshold": 0.5},
        }
    )
    values = metrics.update(
        importance=grad.sum(-1), proposals=proposals, human_importance=human,
        forward_fn=forward_fn, predict_fn=lambda P, m: logits(P, m).argmax(1),
        correct_fn=lambda p: p == truth,
    )  # fmt: skip
    assert set(values) == set(metrics.names)
    assert all(value.shape == (B,) for value in values.values())
    results = metrics.compute(prefix="test/")
    assert set(results) == {f"test/{name}" for name in metrics.names}
    assert metrics.counts()["rho"] == B
    metrics.reset()
    assert metrics.counts()["rho"] == 0
    with pytest.raises(ValueError, match=r"metrics\.plausibility needs human importance"):
        metrics.update(importance=grad.sum(-1), proposals=proposals, forward_fn=forward_fn)
    only_faithfulness = GroundingMetrics.from_config({"faithfulness": {}})
    with pytest.raises(ValueError, match=r"metrics\.faithfulness needs a forward_fn"):
        only_faithfulness.update(importance=grad.sum(-1), proposals=proposals)
