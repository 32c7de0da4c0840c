"""Studies: config loading and errors, resume, selection, table with intervals, README blocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from testkit import QUICK_TRAINER

from hint_lightning.stats.bootstrap import SeedQuestionTable, bootstrap_intervals
from hint_lightning.study import StudyConfigError, available_studies, load_study, runner
from hint_lightning.study.cli import fill_readme
from hint_lightning.study.cli import main as study_main
from hint_lightning.study.runner import MARKER, is_finished, plan_runs, run_study
from hint_lightning.study.table import build_table, markdown_table

SYNTHETIC = """
name: synthetic
seeds: [0, 1, 2]
control: base
rows:
  - {id: base, name: baseline, experiment: decoy_digits_plain}
  - id: tuned
    name: tuned
    experiment: decoy_digits_hint
    select: {key: objective.weight, values: [1, 10], metric: val/acc}
columns:
  - {key: test/acc, title: test acc, paired: true}
  - {key: val/acc, title: val acc}
"""


def write_study(folder: Path, text: str = SYNTHETIC, name: str = "synthetic") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text.replace("name: synthetic", f"name: {name}"))
    return path


def finish(run_dir: Path, metrics: dict[str, float]) -> None:
    """A finished run folder, as the worker leaves it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / MARKER).write_text(json.dumps({"status": "finished"}))


@pytest.mark.parametrize("name", available_studies())
def test_every_shipped_study_loads_and_names_real_experiments(name: str) -> None:
    study = load_study(name)
    experiments = Path(__file__).resolve().parents[1] / "conf" / "experiment"
    assert study.rows and study.seeds and study.columns
    for row in study.rows:
        assert (experiments / f"{row.experiment}.yaml").is_file(), (name, row.experiment)
        assert row.select is None or row.select.metric.startswith("val/")


def test_the_shipped_studies_are_there() -> None:
    shipped = {"easyvqa_cp", "decoy_digits", "caption_smoke", "decoy_vqa", "decoy_vqa_vit"}
    shipped |= {"annotation_efficiency", "easyvqa_cp_vit"}
    assert shipped <= set(available_studies())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("seeds: [0, 1, 2]", "seeds: [0, 1, 2]\ncolour: red"),
            "unknown key 'colour' in the study",
        ),
        (("metric: val/acc", "metric: test/acc"), "never the test split"),
        (("control: base", "control: nope"), "control 'nope' is not a row id"),
        (("id: tuned", "id: base"), "row id 'base' is used twice"),
        (("name: tuned", "name: tuned\n    extra: 1"), "unknown key 'extra' in rows[1]"),
        (("key: test/acc", "key: acc"), "must read '<split>/<metric>'"),
    ],
)
def test_bad_configs_get_one_line_naming_file_and_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = write_study(tmp_path, SYNTHETIC.replace(*change))
    with pytest.raises(StudyConfigError) as error:
        load_study(path)
    assert message in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_study_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as code:
        study_main(["no_such_study"])
    assert code.value.code == 2
    out = capsys.readouterr().out
    assert "unknown study 'no_such_study'" in out and "easyvqa_cp" in out
    assert "Traceback" not in out


def test_finished_runs_are_skipped_and_killed_ones_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = load_study(write_study(tmp_path))
    out = tmp_path / "out"
    specs = plan_runs(study, out)
    assert len(specs) == 3 * (1 + 2)
    for spec in specs:
        finish(spec.run_dir, {"test/acc": 1.0, "val/acc": 1.0})
    killed = specs[0].run_dir
    (killed / MARKER).unlink()  # killed before the worker wrote its marker
    assert not is_finished(killed) and is_finished(specs[1].run_dir)
    launched: list[Path] = []

    def fake_launch(spec, init_from, threads):  # type: ignore[no-untyped-def]
        launched.append(spec.run_dir)
        finish(spec.run_dir, {"test/acc": 2.0, "val/acc": 2.0})
        return True, 0.0

    monkeypatch.setattr(runner, "_launch", fake_launch)
    monkeypatch.setattr(runner, "_prepare_data", lambda *args: None)
    seen: list[str] = []
    outcome = run_study(study, out, jobs=2, on_done=lambda s, status, _: seen.append(status))
    assert launched == [killed] and outcome["ran"] == [str(killed)]
    assert len(outcome["skipped"]) == len(specs) - 1 and seen.count("skipped") == len(specs) - 1
    launched.clear()
    outcome = run_study(study, out, jobs=2)  # everything finished: nothing starts
    assert launched == [] and outcome["ran"] == []


def test_a_fine_tune_waits_for_its_parent_and_is_blocked_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = SYNTHETIC.replace(
        "experiment: decoy_digits_hint", "experiment: decoy_digits_hint\n    init_from: base"
    )
    study = load_study(write_study(tmp_path, text.replace("seeds: [0, 1, 2]", "seeds: [0]")))
    order: list[str] = []

    def fake_launch(spec, init_from, threads):  # type: ignore[no-untyped-def]
        order.append(spec.row)
        return False, 0.0  # the parent fails

    monkeypatch.setattr(runner, "_launch", fake_launch)
    monkeypatch.setattr(runner, "_prepare_data", lambda *args: None)
    statuses: list[tuple[str, str]] = []
    outcome = run_study(study, tmp_path / "out", jobs=2,
                        on_done=lambda s, status, _: statuses.append((s.row, status)))  # fmt: skip
    assert order == ["base"] and len(outcome["failed"]) == 3
    assert statuses.count(("tuned", "blocked")) == 2


def synthetic_runs(out: Path) -> dict[str, np.ndarray]:
    """Three seeds: baseline, and a tuned row whose λ=10 wins on val but loses on test."""
    rng = np.random.default_rng(0)
    base = 50 + rng.normal(0, 5, size=3)
    values = {"base": base, "1": base + 4.0, "10": base - 6.0}
    for seed in range(3):
        finish(out / "base" / f"seed{seed}", {"test/acc": base[seed], "val/acc": 70.0})
        finish(out / "tuned" / f"seed{seed}" / "objective.weight=1",
               {"test/acc": values["1"][seed], "val/acc": 71.0})  # fmt: skip
        finish(out / "tuned" / f"seed{seed}" / "objective.weight=10",
               {"test/acc": values["10"][seed], "val/acc": 75.0 + seed})  # fmt: skip
    return values


def test_table_selects_on_val_and_pairs_with_the_control(tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path))
    values = synthetic_runs(tmp_path / "out")
    table = build_table(study, tmp_path / "out", resamples=500)
    assert table["selection"]["tuned"]["chosen"] == 10  # best val/acc, though worse on test
    assert table["selection"]["tuned"]["scores"] == {"1": 71.0, "10": 76.0}
    base, tuned = table["rows"]
    assert base["test/acc"]["mean"] == pytest.approx(values["base"].mean())
    assert tuned["test/acc"]["mean"] == pytest.approx(values["10"].mean())
    paired = tuned["paired"]["test/acc"]
    assert paired["mean"] == pytest.approx(-6.0)
    assert paired["low"] == pytest.approx(-6.0) and paired["high"] == pytest.approx(-6.0)
    expected = bootstrap_intervals(
        SeedQuestionTable.from_seed_values({str(s): {"a": values["base"][s]} for s in range(3)}),
        resamples=500,
    )["a"]
    assert base["test/acc"]["low"] == pytest.approx(expected.low)
    assert base["test/acc"]["high"] == pytest.approx(expected.high)
    text = markdown_table(study, table, "python -m hint_lightning.study synthetic", 60.0)
    assert "| tuned |" in text and "(control)" in text and "-6.00 [-6.00, -6.00]" in text
    assert "objective.weight=10" in text and "3 seed(s) (0, 1, 2)" in text and "1.0 min" in text


def test_also_compare_adds_paired_columns_against_a_second_control(tmp_path: Path) -> None:
    text = SYNTHETIC.replace("control: base", "control: base\nalso_compare: [tuned]")
    study = load_study(write_study(tmp_path, text))
    synthetic_runs(tmp_path / "out")
    table = build_table(study, tmp_path / "out", resamples=300)
    base = table["rows"][0]
    versus = base["paired_vs"]["tuned"]["test/acc"]  # base - tuned (λ=10) = +6 on every seed
    assert versus["mean"] == pytest.approx(6.0) and versus["low"] == pytest.approx(6.0)
    assert table["also_compare"] == ["tuned"]
    markdown = markdown_table(study, table)
    assert "Δ test acc vs tuned" in markdown and "+6.00 [+6.00, +6.00]" in markdown
    assert 'control row "baseline" and from "tuned"' in markdown
    broken = SYNTHETIC.replace("control: base", "control: base\nalso_compare: [nope]")
    with pytest.raises(StudyConfigError, match="'nope' is not a row id"):
        load_study(write_study(tmp_path, broken, "broken"))


def test_versus_pairs_each_row_with_its_matched_control(tmp_path: Path) -> None:
    text = SYNTHETIC.replace("    experiment: decoy_digits_hint\n",
                             "    experiment: decoy_digits_hint\n    versus: base\n")  # fmt: skip
    study = load_study(write_study(tmp_path, text))
    assert study.row("tuned").versus == "base"
    synthetic_runs(tmp_path / "out")
    table = build_table(study, tmp_path / "out", resamples=300)
    assert table["versus"] == {"tuned": "baseline"}
    markdown = markdown_table(study, table)
    header, _, base_line, tuned_line = markdown.splitlines()[:4]
    assert header.endswith("| Δ test acc vs matched control |")
    assert base_line.endswith("| (control) |") and tuned_line.endswith("| -6.00 [-6.00, -6.00] |")
    assert "Matched controls (same seeds): tuned vs baseline." in markdown
    broken = text.replace("versus: base", "versus: tuned")
    with pytest.raises(StudyConfigError, match="versus 'tuned' is not another row"):
        load_study(write_study(tmp_path, broken, "broken"))


def test_also_compare_and_versus_together_keep_their_own_columns(tmp_path: Path) -> None:
    text = SYNTHETIC.replace("control: base", "control: base\nalso_compare: [tuned]")
    text = text.replace("    experiment: decoy_digits_hint\n",
                        "    experiment: decoy_digits_hint\n    versus: base\n")  # fmt: skip
    study = load_study(write_study(tmp_path, text))
    synthetic_runs(tmp_path / "out")
    markdown = markdown_table(study, build_table(study, tmp_path / "out", resamples=300))
    header, _, base_line, tuned_line = markdown.splitlines()[:4]
    assert header.endswith("| Δ test acc vs tuned | Δ test acc vs matched control |")
    assert base_line.endswith("| +6.00 [+6.00, +6.00] | (control) |")
    assert tuned_line.endswith("| (control) | -6.00 [-6.00, -6.00] |")
    assert "Matched controls (same seeds): tuned vs baseline." in markdown


def test_missing_rows_are_said_not_faked(tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path))
    finish(tmp_path / "out" / "base" / "seed0", {"test/acc": 50.0, "val/acc": 60.0})
    table = build_table(study, tmp_path / "out", resamples=100)
    assert [row["id"] for row in table["rows"]] == ["base"]
    assert table["missing"] == ["tuned"]
    assert "Not run / not finished: tuned" in markdown_table(study, table)


def test_table_only_writes_files_and_fills_the_readme(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    synthetic_runs(tmp_path / "out")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- study:synthetic -->\nold\n<!-- /study:synthetic -->\nafter\n")
    study_main([str(path), "--table-only", "--output-dir", str(tmp_path / "out"),
                "--readme", str(readme), "--resamples", "100"])  # fmt: skip
    content = readme.read_text()
    assert "old" not in content and "| tuned |" in content and content.endswith("after\n")
    for suffix in ("md", "json", "csv"):
        assert (tmp_path / "out" / f"study_results.{suffix}").is_file()


def test_fill_readme_refuses_a_file_without_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no '<!-- study:x -->'"):
        fill_readme(readme, "x", "table")


@pytest.mark.slow
def test_a_tiny_real_study_runs_in_parallel_then_resumes(tmp_path: Path) -> None:
    text = SYNTHETIC.replace("seeds: [0, 1, 2]", "seeds: [0]")
    path = write_study(tmp_path, text, "tiny")
    out = tmp_path / "out"
    args = [str(path), "--jobs", "2", "--output-dir", str(out), "--resamples", "50"]
    table = study_main([*args, *QUICK_TRAINER, "callbacks=none"])
    assert [row["id"] for row in table["rows"]] == ["base", "tuned"]
    assert table["rows"][1]["test/acc"]["mean"] is not None
    markers = sorted(out.rglob(MARKER))
    assert len(markers) == 3
    stamps = [m.stat().st_mtime for m in markers]
    study_main([*args, *QUICK_TRAINER, "callbacks=none"])  # resume: nothing runs again
    assert [m.stat().st_mtime for m in sorted(out.rglob(MARKER))] == stamps


def test_removal_curves_are_averaged_over_seeds() -> None:
    from hint_lightning.study.curves import _mean_curve

    curves = [
        {"fractions": [0.1, 0.5], "most_first": [1.0, None], "least_first": [2.0, 2.0]},
        {"fractions": [0.1, 0.5], "most_first": [3.0, None], "least_first": [4.0, 0.0]},
    ]
    assert _mean_curve(curves) == {
        "fractions": [0.1, 0.5],
        "most_first": [2.0, None],
        "least_first": [3.0, 1.0],
    }


def test_the_study_draws_the_removal_curves_of_its_rows(tmp_path: Path) -> None:
    pytest.importorskip("hint_lightning.viz.removal_curves")
    from hint_lightning.study.curves import plot_study_curves

    runs = []
    for seed in range(2):
        run = tmp_path / f"seed{seed}"
        finish(run, {})
        (run / "metrics.json").write_text(json.dumps({
            "test/removal_curve/fractions": [0.1, 0.5],
            "test/removal_curve/most_first": [1.0, 0.2 * seed],
            "test/removal_curve/least_first": [1.0, 0.9],
        }))  # fmt: skip
        runs.append(str(run))
    table = {"title": "t", "rows": [{"experiment": "row", "run_dirs": runs}]}
    path = plot_study_curves(table, tmp_path, "test")
    assert path is not None and path.stat().st_size > 0
    assert plot_study_curves(table, tmp_path, "val") is None  # no curves of that split
