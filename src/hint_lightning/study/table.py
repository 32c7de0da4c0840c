"""A study's table: 95% intervals and paired differences from the finished runs.

The numbers come from :func:`hint_lightning.compare.summarize_runs` (the evaluation suite's
two-level bootstrap, :mod:`hint_lightning.stats.bootstrap`: seeds, then questions where the
runs wrote per-question values, else seeds only), called once per split the columns read. A
row with ``select:`` uses the runs of its chosen value (:func:`~.runner.select_values`, chosen
on a validation metric). Written as ``study_results.md``, ``.json`` and ``.csv`` (atomically).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hint_lightning.compare import summarize_runs
from hint_lightning.stats.runs import METRICS_FILE, RunRecord
from hint_lightning.study.config import StudyConfig
from hint_lightning.study.runner import MARKER, is_finished, plan_runs, run_dir_of, select_values
from hint_lightning.utils.io import atomic_path, write_json, write_text
from hint_lightning.utils.report import markdown_lines

__all__ = ["RESULTS_STEM", "build_table", "markdown_table", "row_records", "write_table"]

RESULTS_STEM = "study_results"
"""``study_results.md``, ``.json`` and ``.csv`` in the study's output folder."""


def _record(run_dir: Path, name: str, seed: int) -> RunRecord:
    path = run_dir / METRICS_FILE
    metrics = json.loads(path.read_text())
    numbers = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return RunRecord(run_dir, name, numbers, path.stat().st_mtime, seed, {})


def row_records(
    study: StudyConfig, output_dir: Path, selection: dict[str, dict[str, Any]]
) -> tuple[list[RunRecord], list[str]]:
    """The finished runs of every row (chosen candidate), and the rows with none."""
    records, missing = [], []
    for row in study.rows:
        value = selection.get(row.id, {}).get("chosen") if row.select else None
        found = [
            _record(run_dir_of(output_dir, row, seed, value), row.name, seed)
            for seed in study.seeds
            if not (row.select and value is None)
            and is_finished(run_dir_of(output_dir, row, seed, value))
        ]
        if not found:
            missing.append(row.name)
        records += found
    return records, missing


def build_table(study: StudyConfig, output_dir: Path, resamples: int = 2000) -> dict[str, Any]:
    """Select, read and summarize: ``{"study", "rows", "selection", "missing", "seeds", ...}``.

    Each row holds, per column key, ``{"mean", "std", "n", "low", "high", "interval_from"}``
    and, on rows other than the control, ``paired[key]`` (row minus control, same seeds and
    questions) with its interval.
    """
    selection = select_values(study, output_dir)
    records, missing = row_records(study, output_dir, selection)
    control = study.row(study.control).name if study.control else None
    present = {r.experiment for r in records}
    if control not in present:
        control = None
    merged: dict[str, dict[str, Any]] = {}
    for stage in study.stages():
        if not records:
            break
        rows = summarize_runs(records, stage, control=control, resamples=resamples)
        for row in rows:
            target = merged.setdefault(row["experiment"], {"paired": {}})
            target.update({k: v for k, v in row.items() if k != "paired"})
            target["paired"].update(row.get("paired", {}))
    others = [study.row(other).name for other in study.also_compare]
    matched = {row.name: study.row(row.versus).name for row in study.rows if row.versus}
    for other in (name for name in dict.fromkeys([*others, *matched.values()]) if name in present):
        for stage in study.stages():
            for row in summarize_runs(records, stage, control=other, resamples=resamples):
                target = merged[row["experiment"]].setdefault("paired_vs", {})
                target.setdefault(other, {}).update(row.get("paired", {}))
    ordered = []
    for row in study.rows:
        if row.name in merged:
            entry = merged[row.name]
            entry["id"] = row.id
            if row.select is not None:
                entry["selected"] = {row.select.key: selection[row.id]["chosen"]}
            ordered.append(entry)
    return {
        "run_seconds": _run_seconds(study, output_dir),
        "study": study.name,
        "title": study.title,
        "seeds": list(study.seeds),
        "control": control,
        "also_compare": [name for name in others if name in present] if control else [],
        "versus": {row: other for row, other in matched.items() if other in present},
        "selection": selection,
        "missing": missing,
        "columns": [column.__dict__ for column in study.columns],
        "rows": ordered,
    }


def _run_seconds(study: StudyConfig, output_dir: Path) -> dict[str, float]:
    """``{"runs", "seconds"}``: the study's finished runs and their summed time (markers)."""
    runs, seconds = 0, 0.0
    for spec in plan_runs(study, output_dir):
        marker = spec.run_dir / MARKER
        try:
            seconds += float(json.loads(marker.read_text()).get("seconds", 0.0))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        runs += 1
    return {"runs": runs, "seconds": seconds}


def _cell(stat: dict[str, Any] | None, digits: int, signed: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    sign = "+" if signed else ""
    text = f"{stat['mean']:{sign}.{digits}f}"
    if stat.get("low") is not None and stat.get("high") is not None:
        text += f" [{stat['low']:{sign}.{digits}f}, {stat['high']:{sign}.{digits}f}]"
    return text


def _selection_text(table: dict[str, Any]) -> str:
    parts = []
    for row_id, chosen in table["selection"].items():
        scores = ", ".join(f"{v}: {s:.2f}" for v, s in chosen["scores"].items())
        parts.append(
            f"{row_id}: {chosen['key']}={chosen['chosen']} (mean {chosen['metric']} over "
            f"the seeds: {scores})"
        )
    return "; ".join(parts)


def markdown_table(
    study: StudyConfig, table: dict[str, Any], command: str = "", wall_seconds: float | None = None
) -> str:
    """The table as Markdown, with the seeds, selection, control, command and wall time."""
    columns = study.columns
    paired = [c for c in columns if c.paired]
    control = table["control"]
    header = ["row", *[c.title for c in columns]]
    others = table.get("also_compare", [])
    header += [f"Δ {c.title} vs {control}" for c in paired] if control else []
    header += [f"Δ {c.title} vs {other}" for other in others for c in paired]
    versus = table.get("versus", {})
    header += [f"Δ {c.title} vs matched control" for c in paired] if versus else []
    body = []
    for row in table["rows"]:
        cells = [row["name"] if "name" in row else row["experiment"]]
        cells += [_cell(row.get(c.key), c.digits) for c in columns]
        if control:
            cells += [
                "(control)" if row["experiment"] == control
                else _cell(row["paired"].get(c.key), c.digits, signed=True)
                for c in paired
            ]  # fmt: skip
        for other in others:
            from_other = row.get("paired_vs", {}).get(other, {})
            cells += [
                "(control)" if row["experiment"] == other
                else _cell(from_other.get(c.key), c.digits, signed=True)
                for c in paired
            ]  # fmt: skip
        if versus:
            own = versus.get(row["experiment"])
            against = row.get("paired_vs", {}).get(own, {}) if own else {}
            cells += [
                _cell(against.get(c.key), c.digits, signed=True) if own
                else "(control)" if row["experiment"] in versus.values() else "—"
                for c in paired
            ]  # fmt: skip
        body.append(cells)
    seeds = table["seeds"]
    sources = sorted({
        row[c.key]["interval_from"] for row in table["rows"] for c in columns
        if isinstance(row.get(c.key), dict) and row[c.key].get("interval_from")
    })  # fmt: skip
    notes = [
        f"Mean over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}) [95% bootstrap interval"
        f" over {' and '.join(sources) or 'seeds'}]; accuracy in percent; — : not measured.",
    ]
    first = columns[0].key
    by_questions = [
        row["experiment"] for row in table["rows"]
        if (row.get(first) or {}).get("interval_from") == "questions"
    ]  # fmt: skip
    if by_questions and len(by_questions) < len(table["rows"]):
        notes.append(
            f"Intervals of {first} resample seeds and questions for the rows "
            f"{', '.join(by_questions)} (their runs wrote per-question values), seeds only for "
            "the others."
        )
    if control:
        controls = " and from ".join(f'"{name}"' for name in [control, *others])
        notes.append(f"Δ: paired difference from the control row {controls} (same seeds).")
    if versus:
        pairs = "; ".join(f"{row} vs {other}" for row, other in versus.items())
        notes.append(f"Matched controls (same seeds): {pairs}.")
    if table["selection"]:
        notes.append(f"Selected on validation, never on test: {_selection_text(table)}.")
    if table["missing"]:
        notes.append(f"Not run / not finished: {', '.join(table['missing'])}.")
    if len(seeds) < 5:
        notes.append(f"With {len(seeds)} seeds the seed level of the bootstrap is coarse.")
    spent = table.get("run_seconds") or {}
    if spent.get("runs"):
        notes.append(
            f"{spent['runs']} finished runs (candidates of select: included), "
            f"{spent['seconds'] / 60:.1f} min of run time in all."
        )
    if command:
        notes.append(f"Command: `{command}`" + (f" ({wall_seconds / 60:.1f} min wall time)."
                                                 if wall_seconds is not None else "."))  # fmt: skip
    return "\n".join(markdown_lines(header, body)) + "\n\n" + "\n".join(notes) + "\n"


def _csv_rows(table: dict[str, Any]) -> list[list[Any]]:
    lines: list[list[Any]] = [
        ["row", "metric", "mean", "low", "high", "std", "runs", "interval_from",
         "diff_mean", "diff_low", "diff_high"]
    ]  # fmt: skip
    for row in table["rows"]:
        for key, stat in row.items():
            if not isinstance(stat, dict) or "mean" not in stat:
                continue
            diff = row["paired"].get(key, {})
            lines.append([row["experiment"], key, stat["mean"], stat["low"], stat["high"],
                          stat["std"], stat["n"], stat["interval_from"], diff.get("mean"),
                          diff.get("low"), diff.get("high")])  # fmt: skip
    return lines


def write_table(
    output_dir: Path, table: dict[str, Any], markdown: str, extra: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``study_results.{md,json,csv}`` (atomically); returns the paths."""
    md = write_text(output_dir / f"{RESULTS_STEM}.md", markdown)
    js = write_json(output_dir / f"{RESULTS_STEM}.json", {**table, **(extra or {})})
    path = output_dir / f"{RESULTS_STEM}.csv"
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        csv.writer(handle).writerows(_csv_rows(table))
    return [md, js, path]


def column_keys(study: StudyConfig) -> Sequence[str]:
    """The metric keys of the columns."""
    return [c.key for c in study.columns]
