"""The evaluation suite wired into train and evaluate: metrics.json keys, per_question.jsonl,
values recomputed by hand from the checkpoint, and one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from testkit import QUIET_TRAINER, quick_overrides

from hint_lightning.checkpoints import load_weights
from hint_lightning.compose import compose_train_config
from hint_lightning.evaluate import evaluate
from hint_lightning.metrics.per_question import read_per_question
from hint_lightning.stored_run import build_datamodule, build_model, read_run
from hint_lightning.train import CONFIG_DIR, train
from hint_lightning.utils.cli_errors import ConfigError

pytestmark = pytest.mark.slow  # train and evaluate end to end

ALL = "metrics=[plausibility,faithfulness,fpvg]"
TEST_BATCHES = 2


@pytest.fixture(scope="module")
def trained(easyvqa_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny UpDn run on easy-VQA-CP; its test runs the default suite (plausibility)."""
    out = tmp_path_factory.mktemp("suite_train")
    cfg = compose_train_config(
        [
            "experiment=easyvqa_cp_updn",
            f"paths.data_dir={easyvqa_data_dir}",
            "data.num_workers=0",
            *quick_overrides(train=3, val=1, test=TEST_BATCHES),
        ],
        out,
    )
    return train(cfg)


def eval_config(ckpt: str, out: Path, *overrides: str) -> Any:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="eval.yaml",
            overrides=[
                f"ckpt_path={ckpt}",
                f"trainer.limit_test_batches={TEST_BATCHES}",
                "+data.num_workers=0",
                *QUIET_TRAINER,
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.root_dir = str(out)
    return cfg


@pytest.fixture(scope="module")
def evaluated(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("suite_eval")
    metrics = evaluate(eval_config(trained["ckpt/last"], out, ALL))
    return {"metrics": metrics, "stored": json.loads((out / "metrics.json").read_text())}


def _mean(records: list[dict[str, Any]], column: str) -> float:
    values = [r[column] for r in records if r[column] is not None]
    return sum(values) / len(values)


def test_train_tests_with_plausibility_by_default(trained: dict[str, Any]) -> None:
    out = Path(trained["output_dir"])
    stored = json.loads((out / "metrics.json").read_text())
    assert "test/plausibility/pointing_game" in stored
    assert not any(key.startswith("test/faithfulness/") for key in stored)
    records = read_per_question(out)
    assert len(records) == stored["test/questions"]
    assert len({r["question_id"] for r in records}) == len(records)
    assert {r["split"] for r in records} == {"test"} and {r["seed"] for r in records} == {0}
    # The per-question file averages to metrics.json (the same questions, each once).
    assert _mean(records, "acc") == pytest.approx(stored["test/acc"], abs=1e-3)
    for name in ("pointing_game", "relevance_mass", "iou"):
        column = f"plausibility/{name}"
        assert _mean(records, column) == pytest.approx(stored[f"test/{column}"], abs=1e-6)
    # The plausibility rho is the existing rank correlation.
    assert stored["test/plausibility/rho"] == pytest.approx(stored["test/rho"], abs=1e-5)


def test_evaluate_writes_every_family_and_the_removal_curves(evaluated: dict[str, Any]) -> None:
    stored = evaluated["stored"]
    for key in (
        "test/plausibility/relevance_rank",
        "test/faithfulness/sufficiency_aopc",
        "test/faithfulness/comprehensiveness_aopc",
        "test/faithfulness/curve_area",
        "test/fpvg/fpvg_plus",
        "test/fpvg/ggc",
    ):
        assert isinstance(stored[key], float) and math.isfinite(stored[key]), key
    fractions = stored["test/removal_curve/fractions"]
    assert fractions == [0.1, 0.25, 0.5, 0.75, 0.9]
    for order, prefix in (("most_first", "morf"), ("least_first", "lerf")):
        curve = stored[f"test/removal_curve/{order}"]
        expected = [stored[f"test/faithfulness/{prefix}_{round(100 * f):d}"] for f in fractions]
        assert curve == pytest.approx(expected)
    shares = sum(stored[f"test/fpvg/{c}"] for c in ("ggc", "ggw", "bgc", "bgw"))
    assert shares == pytest.approx(1.0)
    records = read_per_question(Path(stored["per_question"]).parent)
    assert len(records) == stored["test/questions"]
    for column in ("faithfulness/comprehensiveness_aopc", "fpvg/fpvg_plus", "fpvg/bgw"):
        assert _mean(records, column) == pytest.approx(stored[f"test/{column}"], abs=1e-6)


def test_per_question_values_match_a_recomputation_from_the_checkpoint(
    trained: dict[str, Any], evaluated: dict[str, Any]
) -> None:
    """Importance by autograd on the features (the reference path, not the shift probe), the
    top half by importance removed with the mask, the top answer's logit: comprehensiveness_50
    and morf_50; FPVG's answer with all proposals: accuracy_all."""
    ckpt = trained["ckpt/last"]
    run = read_run(ckpt)
    assert run is not None
    model = build_model(run).eval()
    load_weights(model, ckpt)
    datamodule = build_datamodule(run, {"num_workers": 0})
    datamodule.prepare_data()
    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    features = batch["features"].clone().requires_grad_(True)
    mask = batch["proposal_mask"]
    top = batch["targets"].argmax(dim=1)

    def logit(P: torch.Tensor, m: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        logits, _ = model.net(P, batch["boxes"][rows], batch["question_tokens"][rows], m)
        return logits.gather(1, top[rows, None]).squeeze(1)

    full = logit(features, mask)
    (gradient,) = torch.autograd.grad(full.sum(), features)
    importance = gradient.sum(dim=-1)
    run_dir = Path(evaluated["stored"]["per_question"]).parent
    records = {r["question_id"]: r for r in read_per_question(run_dir)}
    checked = 0
    with torch.no_grad():
        for b in range(8):
            record, one = records[int(batch["question_id"][b])], slice(b, b + 1)
            n = int(mask[b].sum())
            k = int(n * 0.5)
            order = torch.argsort(-importance[b, :n], stable=True)
            kept = mask[one].clone()
            kept[0, order[:k]] = False  # MoRF at 50%: the k most important removed
            morf = float(logit(features[one], kept, one)[0])
            assert record["faithfulness/morf_50"] == pytest.approx(morf, abs=1e-4)
            # VisFIS's top set: positive and strictly above the (k+1)-th largest value.
            values = importance[b, :n]
            cut = values.sort(descending=True).values[k]
            top_set = (values > cut) & (values > 0)
            if top_set.any():
                removed = mask[one].clone()
                removed[0, :n] &= ~top_set
                comp = float(full[b] - logit(features[one], removed, one)[0])
                assert record["faithfulness/comprehensiveness_50"] == pytest.approx(comp, abs=1e-4)
                checked += 1
            net_inputs = (batch["boxes"][one], batch["question_tokens"][one], mask[one])
            answer = int(model.net(features[one], *net_inputs)[0].argmax())
            if record["fpvg/accuracy_all"] is not None:
                right = float(batch["answer_scores"][b, answer]) >= 1.0
                assert record["fpvg/accuracy_all"] == float(right)
            assert record["answer"] == datamodule.info.answers[answer]
    assert checked > 0


def test_grounding_metrics_off_with_families_is_one_line(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    cfg = eval_config(trained["ckpt/last"], tmp_path, ALL, "+model.grounding_metrics=false")
    with pytest.raises(ConfigError, match=r"metrics=\[plausibility, faithfulness, fpvg\] needs"):
        evaluate(cfg)


def test_drop_on_a_backbone_without_mask_names_the_metric_and_the_backbone(
    tmp_path: Path,
) -> None:
    from hint_lightning.build import build_model as build
    from hint_lightning.data.decoy_digits import DecoyDigitsInfo
    from hint_lightning.modules.metric_suite import suite_config

    cfg = compose_train_config(
        ["experiment=decoy_digits_plain", "metrics=[faithfulness]"], tmp_path
    )
    model = build(cfg.model, DecoyDigitsInfo(), None, "data=decoy_digits")
    with pytest.raises(
        ConfigError, match=r"metrics\.faithfulness: replacement=drop .*PatchMLP does not"
    ):
        model.configure_metric_suite(suite_config(cfg.metrics, cfg.data))
    # Another replacement is accepted.
    cfg.metrics.faithfulness.replacement = "zeros"
    model.configure_metric_suite(suite_config(cfg.metrics, cfg.data))
    assert model.suite is not None and list(model.suite.families) == ["faithfulness"]


def test_the_stored_dataset_threshold_reaches_evaluation() -> None:
    from hint_lightning.modules.metric_suite import suite_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="eval.yaml", overrides=["ckpt_path=x", ALL])
    options = suite_config(cfg.metrics, {"human_importance_threshold": 0.3})
    assert options is not None
    assert options["plausibility"]["threshold"] == 0.3
    assert options["fpvg"]["relevant_threshold"] == 0.3
    assert suite_config(cfg.metrics, {})["plausibility"]["threshold"] == 0.55  # type: ignore[index]


def test_a_split_without_human_importance_names_the_split_and_the_metric(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    import pytorch_lightning as pl

    ckpt = trained["ckpt/last"]
    run = read_run(ckpt)
    assert run is not None
    model = build_model(run)
    load_weights(model, ckpt)
    model.configure_metric_suite({"plausibility": {}, "faithfulness": {}}, split="val")
    datamodule = build_datamodule(run, {"num_workers": 0})
    datamodule.prepare_data()
    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    batch["has_importance"] = torch.zeros_like(batch["has_importance"])
    batch["human_importance"] = torch.zeros_like(batch["human_importance"])
    trainer = pl.Trainer(
        accelerator="cpu", inference_mode=False, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    message = r"split val has no human importance, which metrics\.plausibility needs \(metrics"
    with pytest.raises(ConfigError, match=message):
        loader = torch.utils.data.DataLoader([batch], batch_size=None)
        trainer.test(model, dataloaders=loader, verbose=False)
    # train's default families only warn: a finished run is not failed at its test.
    model.configure_metric_suite({"plausibility": {}, "faithfulness": {}}, strict=False)
    trainer.test(model, dataloaders=loader, verbose=False)
    assert "test/faithfulness/curve_area" in model.suite_results
    assert not any("plausibility" in key for key in model.suite_results)
    assert model.suite_results["per_question"] == str(tmp_path / "per_question.jsonl")


def test_a_checkpoint_without_a_data_config_names_the_run_that_wrote_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from hint_lightning.modules.base import CHECKPOINT_KEY

    info = {"answers": ["yes"], "tokens": ["<pad>"], "feature_dim": 1, "max_proposals": 1}
    payload = {"config": {"task_name": "old_run", "seed": 3}, "data_info": info}
    ckpt = tmp_path / "old.ckpt"
    torch.save({CHECKPOINT_KEY: payload, "state_dict": {}}, ckpt)
    result = subprocess.run(
        [sys.executable, "-m", "hint_lightning.evaluate", f"ckpt_path={ckpt}", ALL,
         f"hydra.run.dir={tmp_path / 'eval'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[0].startswith("Error: ") and "Traceback" not in result.stderr, result.stderr
    assert "the run that produced it (task_name=old_run, seed=3) stored no data" in lines[0]


def test_bf16_mixed_gives_finite_suite_values_close_to_float32(
    trained: dict[str, Any], evaluated: dict[str, Any], tmp_path: Path
) -> None:
    """bf16 autocast (what trainer=gpu uses) over the same questions: no NaN/inf where float32
    is defined, means within bf16's rounding of the float32 ones."""
    cfg = eval_config(trained["ckpt/last"], tmp_path, ALL, "trainer.precision=bf16-mixed")
    low = evaluate(cfg)
    full = evaluated["stored"]
    for key in ("plausibility/relevance_mass", "plausibility/iou", "faithfulness/curve_area",
                "faithfulness/comprehensiveness_aopc", "faithfulness/morf_50"):  # fmt: skip
        value = low[f"test/{key}"]
        assert math.isfinite(value), key
        tolerance = 0.01 if key.startswith("plausibility") else 2e-3  # scores are ~0.05 here
        assert value == pytest.approx(full[f"test/{key}"], abs=tolerance), key
    assert abs(low["test/fpvg/fpvg_plus"] - full["test/fpvg/fpvg_plus"]) < 0.05
