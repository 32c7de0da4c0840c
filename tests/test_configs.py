"""Every config composes, and every experiment instantiates its pieces."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hint_lightning.compose import compose_train_config
from hint_lightning.train import CONFIG_DIR
from hint_lightning.utils.runtime import check_config

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
FINETUNES = {  # start from a baseline (decoy digits train from scratch)
    name
    for name in EXPERIMENTS
    if not name.endswith(("_updn", "_transformer", "_vit")) and not name.startswith("decoy_")
}
OBJECTIVE_CLASSES = {
    "hint": "HintObjective",
    "attn_align": "AttnAlignObjective",
    "rrr": "RRRObjective",
    "scr": "SCRObjective",
    "visfis": "VisFISObjective",
    "energy": "EnergyObjective",
    "amc": "AMCObjective",
    "robustvit": "RobustViTObjective",
}
DECOY_VQA = {
    "decoy_vqa_updn",
    "decoy_vqa_hint",
    "decoy_vqa_hint_random",
    "decoy_vqa_hint_one_minus",
    "decoy_vqa_hint_scale_invariant",
    "decoy_vqa_hint_margin",
    "decoy_vqa_scr",
    "decoy_vqa_visfis",
    "decoy_vqa_attn_align",
    "decoy_vqa_energy",
    "decoy_vqa_rrr",
    "decoy_vqa_reference",
}


def test_the_decoy_vqa_experiments_exist_and_select_on_val_random(tmp_path: Path) -> None:
    assert set(EXPERIMENTS) >= DECOY_VQA
    for experiment in sorted(DECOY_VQA):
        cfg = compose_train_config([f"experiment={experiment}"], output_dir=tmp_path)
        assert cfg.data.val_split == "val_random", experiment
        assert cfg.data.train_decoy == (experiment != "decoy_vqa_reference"), experiment
    invariant = compose_train_config(
        ["experiment=decoy_vqa_hint_scale_invariant"], output_dir=tmp_path
    )
    assert invariant.objective.normalize == "per_sample"


def test_the_easyvqa_experiments_exist() -> None:
    assert {
        "easyvqa_cp_updn",
        "easyvqa_cp_finetune",
        "easyvqa_cp_hint",
        "easyvqa_cp_attn_align",
        "easyvqa_cp_hint_random",
        "easyvqa_cp_hint_one_minus",
    } <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_resolves(experiment: str, tmp_path: Path) -> None:
    overrides = [f"experiment={experiment}"]
    if experiment in FINETUNES:
        overrides.append("init_from=baseline.ckpt")
    cfg = compose_train_config(overrides, output_dir=tmp_path)
    OmegaConf.resolve(cfg)  # every interpolation resolves outside a Hydra run too
    assert cfg.task_name == experiment
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs
    objective = instantiate(cfg.objective) if cfg.objective else None
    for name, cls in OBJECTIVE_CLASSES.items():
        if experiment.endswith(f"_{name}") or f"_{name}_" in experiment:
            assert type(objective).__name__ == cls
    if experiment in FINETUNES:
        assert cfg.finetune and cfg.data.hinted_only and cfg.test_ckpt == "last"


def test_finetune_without_baseline_is_a_clear_error(tmp_path: Path) -> None:
    cfg = compose_train_config(["experiment=easyvqa_cp_hint"], output_dir=tmp_path)
    with pytest.raises(ValueError, match="pass init_from="):
        check_config(cfg)


@pytest.mark.parametrize(
    "objective",
    ["none", "hint", "attn_align", "rrr", "scr", "visfis", "energy", "amc", "robustvit"],
)
def test_objective_group(objective: str, tmp_path: Path) -> None:
    cfg = compose_train_config([f"objective={objective}"], output_dir=tmp_path)
    built = instantiate(cfg.objective) if cfg.objective else None
    assert (built is None) == (objective == "none")
    if built is not None:
        assert built.name == objective


def test_several_objectives_from_the_command_line(tmp_path: Path) -> None:
    from hint_lightning.train import build_objective

    cfg = compose_train_config(
        [
            "experiment=easyvqa_cp_hint",
            "init_from=baseline.ckpt",
            "objective.weight=2",
            "+objective@objectives.rrr=rrr",
            "objectives.rrr.weight=0.5",
            "+objective@objectives.energy=energy",
        ],
        output_dir=tmp_path,
    )
    built = build_objective(cfg)
    assert {name: obj.weight for name, obj in built.items()} == {
        "hint": 2.0,
        "rrr": 0.5,
        "energy": 1.0,
    }


def test_several_objectives_under_objective_is_a_clear_error(tmp_path: Path) -> None:
    from hint_lightning.train import build_objective

    cfg = compose_train_config(["objective=[hint,rrr]"], output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"\+objective@objectives.<name>=<name>"):
        build_objective(cfg)


@pytest.mark.parametrize("model", ["updn_vqa", "transformer_vqa", "updn_captioner"])
def test_importance_methods_are_model_options(model: str, tmp_path: Path) -> None:
    cfg = compose_train_config(
        [f"model={model}", "model.eval_importance={name: gradient, use_shift: false}"],
        output_dir=tmp_path,
    )
    assert cfg.model.train_importance == "gradient"
    assert dict(cfg.model.eval_importance) == {"name": "gradient", "use_shift": False}


@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp", "ddp_cpu"])
def test_trainer_configs_compose(trainer: str, tmp_path: Path) -> None:
    cfg = compose_train_config([f"trainer={trainer}"], output_dir=tmp_path)
    assert cfg.trainer.inference_mode is False  # grounding metrics need gradients


@pytest.mark.parametrize(
    "experiment", ["decoy_vqa_vit", "decoy_vqa_vit_hint", "decoy_vqa_vit_hint_random"]
)
def test_decoy_vqa_vit_experiments_compose_on_patches(experiment: str, tmp_path: Path) -> None:
    cfg = compose_train_config([f"experiment={experiment}"], output_dir=tmp_path)
    assert cfg.data.proposals == "patches" and cfg.data.val_split == "val_random"
    assert cfg.model.net._target_.endswith("ViTVQA")
    assert cfg.model.train_importance == "token_input_x_gradient"
    data = instantiate(cfg.data)
    assert data.proposals == "patches" and data.patch_size == 8
    assert (not cfg.objective) == (experiment == "decoy_vqa_vit")
