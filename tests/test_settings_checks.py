"""Settings that used to run silently wrong are refused with one line: the value, why, and the
right option (negative grounding weights, runs that train nothing, resuming another run's
checkpoint, a model made for another task than the data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from hint_lightning.compose import compose_train_config
from hint_lightning.train import train
from hint_lightning.utils.runtime import check_config


def compose(tmp_path: Path, *overrides: str) -> Any:
    return compose_train_config(
        list(overrides), output_dir=tmp_path / "run", root_dir=str(tmp_path)
    )


# ------------------------------------------------------------------------ grounding weights
@pytest.mark.parametrize("weight", ["-1", "-0.001"])
def test_a_negative_objective_weight_is_refused(weight: str, tmp_path: Path) -> None:
    cfg = compose(
        tmp_path, "experiment=easyvqa_cp_hint", "init_from=b.ckpt", f"objective.weight={weight}"
    )
    with pytest.raises(ValueError) as caught:
        check_config(cfg)
    message = str(caught.value)
    assert message.startswith(f"objective.weight={weight} is negative")
    assert "data.importance_source=one_minus" in message and "\n" not in message


@pytest.mark.parametrize("weight", ["nan", "inf"])
def test_a_non_finite_objective_weight_is_refused(weight: str, tmp_path: Path) -> None:
    cfg = compose(tmp_path, "objective=hint", f"objective.weight={weight}")
    with pytest.raises(ValueError, match=rf"objective.weight={weight} is not finite"):
        check_config(cfg)


@pytest.mark.parametrize("weight", ["0", "0.5", "3"])
def test_zero_and_positive_weights_pass(weight: str, tmp_path: Path) -> None:
    check_config(compose(tmp_path, "objective=hint", f"objective.weight={weight}"))


def test_every_objective_of_a_list_or_mapping_is_checked() -> None:
    from hint_lightning.utils.settings_checks import check_objective_weights, objective_nodes

    listed = [{"_target_": "a.Hint", "weight": 1.0}, {"_target_": "a.Scr", "weight": -0.5}]
    with pytest.raises(ValueError, match=r"^objective\[1\]\.weight=-0.5 is negative"):
        check_objective_weights(objective_nodes(OmegaConf.create(listed)))
    named = {
        "hint": {"_target_": "a.Hint", "weight": 2},
        "scr": {"_target_": "a.Scr", "weight": -3},
    }
    with pytest.raises(ValueError, match=r"^objective\.scr\.weight=-3 is negative"):
        check_objective_weights(objective_nodes(named))
    with pytest.raises(ValueError, match=r"^objective\.weight=heavy is not a number"):
        check_objective_weights(objective_nodes({"_target_": "a.Hint", "weight": "heavy"}))
    check_objective_weights(objective_nodes(None))


# ------------------------------------------------------------------------ training length
@pytest.mark.parametrize(
    "option", ["trainer.max_epochs=0", "+trainer.max_steps=0", "trainer.limit_train_batches=0"]
)
def test_a_run_that_trains_nothing_is_refused_before_testing(option: str, tmp_path: Path) -> None:
    cfg = compose(
        tmp_path, "experiment=easyvqa_cp_updn", f"paths.data_dir={tmp_path / 'data'}", option
    )
    with pytest.raises(ValueError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith(f"{option.lstrip('+')} trains nothing")
    assert "python -m hint_lightning.evaluate ckpt_path=" in message
    assert not (tmp_path / "run" / "test_results.json").exists()
    assert not (tmp_path / "data").exists()  # refused before any data is prepared


def test_testing_only_with_train_false_is_not_refused(tmp_path: Path) -> None:
    check_config(compose(tmp_path, "train=false", "trainer.max_epochs=0"))


# ------------------------------------------------------------------ resuming another run
def stored_run_checkpoint(path: Path, tmp_path: Path, *overrides: str) -> Path:
    """A checkpoint holding the resolved run config of ``overrides`` (as train stores it)."""
    cfg = compose(tmp_path, *overrides)
    config = OmegaConf.to_container(cfg, resolve=True)
    info = {"answers": ["yes"], "tokens": ["<pad>"], "feature_dim": 4, "max_proposals": 3}
    torch.save({"state_dict": {}, "hint_lightning": {"config": config, "data_info": info}}, path)
    return path


def test_resuming_the_baseline_checkpoint_in_a_finetune_points_to_init_from(tmp_path: Path) -> None:
    ckpt = stored_run_checkpoint(tmp_path / "base.ckpt", tmp_path, "experiment=easyvqa_cp_updn")
    cfg = compose(
        tmp_path,
        "experiment=easyvqa_cp_hint",
        f"ckpt_path={ckpt}",
        f"paths.data_dir={tmp_path / 'd'}",
    )
    with pytest.raises(ValueError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith(f"ckpt_path={ckpt} was written by a different run (")
    assert "task_name: 'easyvqa_cp_updn' in the checkpoint, 'easyvqa_cp_hint' here" in message
    assert "model.optimizer.lr: 0.002 in the checkpoint, 0.0002 here" in message
    assert message.endswith(f"pass init_from={ckpt} instead") and "\n" not in message


def test_resuming_the_same_run_elsewhere_or_with_other_workers_is_accepted(tmp_path: Path) -> None:
    from hint_lightning.utils.settings_checks import check_resume_matches

    run = ("experiment=easyvqa_cp_hint", "init_from=base.ckpt")
    ckpt = stored_run_checkpoint(tmp_path / "last.ckpt", tmp_path, *run, "paths.data_dir=/old")
    stored = torch.load(ckpt, weights_only=True)["hint_lightning"]["config"]
    moved = compose(tmp_path, *run, "paths.data_dir=/new", "data.num_workers=3")
    check_resume_matches(str(ckpt), stored, moved)
    changed = compose(tmp_path, *run, "data.batch_size=32")
    with pytest.raises(ValueError, match=r"data.batch_size: 64 in the checkpoint, 32 here"):
        check_resume_matches(str(ckpt), stored, changed)


# --------------------------------------------------------------- model made for other data
def test_a_classification_model_on_vqa_data_names_both_options(tmp_path: Path) -> None:
    from hint_lightning.build import build_model
    from hint_lightning.data.batch import VQADataInfo

    cfg = compose(tmp_path, "model=patch_classifier", "objective=hint")
    info = VQADataInfo(answers=("yes",), tokens=("<pad>",), feature_dim=4, max_proposals=3)
    with pytest.raises(ValueError) as caught:
        build_model(cfg.model, info, None, "data=easyvqa_cp")
    message = str(caught.value)
    assert message.startswith("model ClassificationModule does not fit data=easyvqa_cp:")
    assert "VQADataInfo" in message and "\n" not in message


def test_a_vqa_model_on_classification_data_names_both_options(tmp_path: Path) -> None:
    from hint_lightning.build import build_model
    from hint_lightning.data.decoy_digits import DecoyDigitsInfo

    cfg = compose(tmp_path, "model=updn_vqa")
    with pytest.raises(
        ValueError, match=r"VQAModule is made for VQADataInfo, the data gives Decoy"
    ):
        build_model(cfg.model, DecoyDigitsInfo(), None, "data=decoy_digits")


def test_patch_classifier_with_hint_on_easyvqa_is_refused_in_train(
    easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose(
        tmp_path, "model=patch_classifier", "objective=hint", f"paths.data_dir={easyvqa_data_dir}"
    )
    with pytest.raises(ValueError, match=r"does not fit data EasyVQACPDataModule: it needs"):
        train(cfg)
