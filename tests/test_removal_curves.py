"""The removal-curve plot, reading curves back from metrics.json, and the suite's W&B outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from hint_lightning.suite_outputs import REMOVAL_CURVES_FILE, suite_rows, write_suite_outputs
from hint_lightning.viz.removal_curves import curves_from_metrics, plot_removal_curves

METRICS = {
    "test/acc": 50.0,
    "test/faithfulness/curve_area": 0.12,
    "test/fpvg/fpvg_plus": 0.4,
    "test/removal_curve/fractions": [0.1, 0.5, 0.9],
    "test/removal_curve/most_first": [0.8, 0.3, None],
    "test/removal_curve/least_first": [0.95, 0.9, 0.7],
}


def test_curves_round_trip_through_metrics_json(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(METRICS))
    curve = curves_from_metrics(path)
    assert curve == {
        "fractions": [0.1, 0.5, 0.9],
        "most_first": [0.8, 0.3, None],
        "least_first": [0.95, 0.9, 0.7],
    }
    assert curves_from_metrics(METRICS, split="val") is None


def test_several_rows_on_one_plot(tmp_path: Path) -> None:
    base = curves_from_metrics(METRICS)
    assert base is not None
    other = {**base, "most_first": [0.5, 0.1, 0.0]}
    path = plot_removal_curves({"UpDn": base, "+ HINT": other, "no faithfulness": None},
                               tmp_path / "plots" / "curves.png")  # fmt: skip
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 20  # lines drawn
    assert not list(path.parent.glob("*.tmp*"))  # written atomically


def test_bad_curves_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no removal curves to draw: evaluate with metrics="):
        plot_removal_curves({"a": None}, tmp_path / "x.png")
    bad = {"fractions": [0.1, 0.5], "most_first": [0.3]}
    with pytest.raises(ValueError, match=r"removal curve of 'a': 1 most_first values for 2"):
        plot_removal_curves({"a": bad}, tmp_path / "x.png")


@pytest.mark.slow  # starts an offline W&B run
def test_suite_outputs_write_the_plot_and_the_wandb_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytorch_lightning.loggers import WandbLogger

    from hint_lightning.utils.runtime import finish_wandb

    assert suite_rows(METRICS) == [
        ["test", "faithfulness", "curve_area", 0.12],
        ["test", "fpvg", "fpvg_plus", 0.4],
    ]
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    try:
        logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="suite")
        written = write_suite_outputs(METRICS, tmp_path, [logger], title="UpDn")
    finally:
        finish_wandb()
    assert written == {"removal_curves": str(tmp_path / REMOVAL_CURVES_FILE)}
    assert (tmp_path / REMOVAL_CURVES_FILE).stat().st_size > 1000
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs
    media = [p.name for p in runs[0].rglob("files/media/*/*")]
    assert any(name.startswith("grounding_metrics") for name in media), media
    assert any(name.startswith("removal_curves_") for name in media), media
    assert any(name.endswith(".png") for name in media), media
    # Nothing to plot: no file, no error.
    assert write_suite_outputs({"test/acc": 1.0}, tmp_path / "none") == {}
