"""Real VQA formats end to end on the fixture tree: prepare -> train UpDn -> HINT -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from testkit import TINY_VQA_DATA, quick_overrides

from hint_lightning.compose import compose_train_config
from hint_lightning.evaluate import evaluate
from hint_lightning.train import train

QUICK = (*quick_overrides(train=None, val=None, test=None), *TINY_VQA_DATA)


@pytest.fixture(scope="module")
def prepared(prepared_vqacp: Path) -> Path:
    return prepared_vqacp


def run(experiment: str, data_dir: Path, out: Path, *extra: str) -> dict[str, Any]:
    overrides = [f"experiment={experiment}", f"paths.data_dir={data_dir}", *QUICK, *extra]
    return train(compose_train_config(overrides, output_dir=out))


@pytest.fixture(scope="module")
def baseline(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run("vqacp_updn", prepared, tmp_path_factory.mktemp("vqacp_updn"))


def test_training_without_prepared_data_names_the_files_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        run("vqacp_updn", tmp_path / "nothing", tmp_path / "out")
    message = str(error.value)
    assert "python -m hint_lightning.prepare vqacp_v2" in message
    assert "train.h5" in message


def test_baseline_on_the_fixture_writes_official_results(baseline: dict[str, Any]) -> None:
    out = Path(baseline["output_dir"])
    results = json.loads((out / "test_results.json").read_text())
    assert results and all(set(r) == {"question_id", "answer"} for r in results)
    assert all(isinstance(r["question_id"], int) and isinstance(r["answer"], str) for r in results)
    assert "test/acc" in baseline and 0 <= baseline["test/acc"] <= 100


@pytest.mark.parametrize("experiment", ["vqacp_hint", "vqacp_attn_align", "vqacp_hint_random"])
def test_finetunes_from_the_baseline_checkpoint(
    experiment: str, baseline: dict[str, Any], prepared: Path, tmp_path: Path
) -> None:
    metrics = run(experiment, prepared, tmp_path, f"init_from={baseline['ckpt/best']}")
    assert metrics["train/hinted_frac"] == 1.0 and metrics["train/loss_grounding"] >= 0
    assert "test/acc" in metrics


def test_evaluate_writes_results_and_grounding_metrics(
    baseline: dict[str, Any], tmp_path: Path
) -> None:
    cfg = OmegaConf.create(
        {
            "ckpt_path": baseline["ckpt/best"],
            "split": "test",
            "data": {},
            "trainer": {
                "_target_": "pytorch_lightning.Trainer",
                "default_root_dir": str(tmp_path),
                "accelerator": "cpu",
                "inference_mode": False,
                "enable_progress_bar": False,
            },
        }
    )
    metrics = evaluate(cfg)
    assert metrics["test/acc"] == pytest.approx(baseline["test/acc"], abs=1e-4)
    assert -1 <= metrics["test/rho"] <= 1
    # Undefined (not logged) when no question with human importance was answered correctly.
    misgrounded = metrics.get("test/misgrounded", 0.0)
    assert 0 <= misgrounded <= 100
    assert json.loads(Path(metrics["results"]).read_text())


def test_glove_vectors_initialize_the_word_embeddings(prepared: Path, tmp_path: Path) -> None:
    import numpy as np
    from hydra.utils import instantiate

    cfg = compose_train_config(
        ["experiment=vqacp_updn", f"paths.data_dir={prepared}", *QUICK], output_dir=tmp_path
    )
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = instantiate(cfg.model, _partial_=True)(objective=None, data_info=datamodule.info)
    assert model.initialize_from_data(datamodule)
    vectors = np.load(datamodule.word_vectors_path)
    embedding = model.net.question_encoder.embedding.weight.detach().numpy()
    np.testing.assert_allclose(embedding, vectors, rtol=1e-6)
