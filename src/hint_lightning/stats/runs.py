"""Finished runs on disk: where they are, what experiment and seed they are, their numbers.

A run folder holds ``metrics.json`` (written by ``train`` and ``evaluate``) and, when the
evaluation wrote them, per-question values (``per_question.jsonl``,
:mod:`hint_lightning.metrics.per_question`). Its identity:

* **experiment**: ``task_name`` from ``.hydra/config.yaml`` (runs launched through the Hydra
  CLI), else from the run config stored in its checkpoint (``checkpoints/last.ckpt`` first),
  else the folder's name (the demo's layout ``logs/demo/seed<k>/<experiment>/``). A run of
  ``python -m hint_lightning.evaluate`` (its ``metrics.json`` names a ``ckpt_path``) is
  ``<task_name of that checkpoint> (eval)``.
* **seed**: ``seed`` of the same config, else a ``seed<k>`` folder above the run.
* **overrides**: the command-line overrides of ``.hydra/overrides.yaml`` (``key=value``),
  which tell the jobs of a sweep apart (:func:`row_labels`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hint_lightning.metrics.per_question import per_question_files, read_per_question
from hint_lightning.stats.bootstrap import SeedQuestionTable

__all__ = [
    "IGNORED_OVERRIDES",
    "METRICS_FILE",
    "RunRecord",
    "experiment_name",
    "find_run_dirs",
    "load_run",
    "question_table",
    "row_labels",
    "seed_labels",
    "seed_table",
]

METRICS_FILE = "metrics.json"
"""The file every run writes at its end (``train`` and ``evaluate``)."""

IGNORED_OVERRIDES = (
    "seed",
    "init_from",
    "ckpt_path",
    "task_name",
    "tags",
    "paths.*",
    "hydra.*",
    "logger",
    "logger.*",
    "callbacks",
    "callbacks.*",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.accelerator",
    "data.num_workers",
    "data.data_dir",
)
"""Overrides that never make a run a different configuration (``prefix.*``: any key below)."""

_NOT_METRICS = {"question_id", "seed", "run", "split", "stage"}
"""Per-question columns that are not metrics."""

_SEED_FOLDER = re.compile(r"^seed[_-]?(\d+)$")


@dataclass(frozen=True)
class RunRecord:
    """One finished run.

    Attributes:
        path: the run folder (the one holding ``metrics.json``).
        experiment: its experiment (module docstring).
        metrics: its numeric metrics (``test/acc``, ``test/rho``, ...).
        finished: modification time of its ``metrics.json`` (seconds since the epoch).
        seed: its training seed, when known.
        overrides: its command-line overrides, ``key -> value`` as typed.
    """

    path: Path
    experiment: str
    metrics: dict[str, float]
    finished: float
    seed: int | str | None = None
    overrides: dict[str, str] = field(default_factory=dict)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run folder at or below ``paths`` (a run folder holds ``metrics.json``).

    Args:
        paths: run folders, folders holding runs at any depth, or ``metrics.json`` files.

    Returns:
        The run folders, deduplicated, sorted within each argument, in argument order.

    Raises:
        FileNotFoundError: naming the path, when a path does not exist or holds no run.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.name == METRICS_FILE:
            runs = [path.parent]
        elif path.is_dir():
            runs = sorted(file.parent for file in path.rglob(METRICS_FILE))
        else:
            raise FileNotFoundError(f"{path}: no such run folder")
        if not runs:
            raise FileNotFoundError(f"{path}: no {METRICS_FILE} at or below it (no finished run)")
        found += [run for run in runs if run not in found]
    return found


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The entries that are numbers (``metrics.json`` also holds paths)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _hydra_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``.hydra/config.yaml`` as a dict (unresolved), or None."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:  # a broken file: fall back to the next source
        return None
    return config if isinstance(config, dict) else None


def _checkpoint_config(ckpt_path: Path) -> dict[str, Any] | None:
    """The run config stored in one of our checkpoints, or None."""
    from hint_lightning.evaluate import stored_run  # imports Lightning: only when needed

    try:
        config, _ = stored_run(str(ckpt_path))
    except Exception:  # missing, unreadable or foreign checkpoint: fall back to the next source
        return None
    container = OmegaConf.to_container(config, resolve=False)
    return container if isinstance(container, dict) else None


def _run_checkpoint(run_dir: Path) -> Path | None:
    """The run's ``checkpoints/last.ckpt``, else its first checkpoint by name, else None."""
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"
    if last.is_file():
        return last
    others = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    return others[0] if others else None


def _identity(run_dir: Path, metrics: Mapping[str, Any]) -> tuple[str, int | str | None]:
    """``(experiment, seed)`` of a run (module docstring for the order of sources)."""
    evaluated = metrics.get("ckpt_path")
    if isinstance(evaluated, str) and evaluated:
        config = _checkpoint_config(Path(evaluated))
        if config is not None and config.get("task_name"):
            return f"{config['task_name']} (eval)", _seed(run_dir, config)
    config = _hydra_config(run_dir)
    if config is None or not config.get("task_name"):
        checkpoint = _run_checkpoint(run_dir)
        config = _checkpoint_config(checkpoint) if checkpoint is not None else None
    name = str(config["task_name"]) if config and config.get("task_name") else run_dir.name
    return name, _seed(run_dir, config)


def _seed(run_dir: Path, config: Mapping[str, Any] | None) -> int | str | None:
    """The run's seed: from its config, else from a ``seed<k>`` folder above it."""
    if config is not None and config.get("seed") is not None:
        seed = config["seed"]
        return seed if isinstance(seed, int) else str(seed)
    for folder in run_dir.parents:
        match = _SEED_FOLDER.match(folder.name)
        if match:
            return int(match.group(1))
    return None


def _overrides(run_dir: Path) -> dict[str, str]:
    """``.hydra/overrides.yaml`` as ``key -> value`` (``+``/``~`` prefixes dropped)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    try:
        items = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:
        return {}
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def experiment_name(run_dir: str | Path, metrics: dict[str, Any] | None = None) -> str:
    """The experiment a run belongs to (module docstring for the order of sources).

    Args:
        run_dir: the run folder.
        metrics: its ``metrics.json`` content (read when None).
    """
    run_dir = Path(run_dir)
    if metrics is None:
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
    return _identity(run_dir, metrics)[0]


def load_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder.

    Raises:
        ValueError: naming the file, when ``metrics.json`` is not a JSON object.
    """
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error.msg})") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object of metrics")
    experiment, seed = _identity(run_dir, metrics)
    return RunRecord(
        path=run_dir,
        experiment=experiment,
        metrics=_numeric(metrics),
        finished=path.stat().st_mtime,
        seed=seed,
        overrides=_overrides(run_dir),
    )


def _ignored(key: str, ignore: Sequence[str]) -> bool:
    return any(key == p or (p.endswith(".*") and key.startswith(p[:-1])) for p in ignore)


def row_labels(
    records: Sequence[RunRecord], ignore: Sequence[str] = IGNORED_OVERRIDES
) -> list[str]:
    """The table row of every run: its experiment plus the overrides that set it apart.

    Within one experiment, the override keys (other than ``ignore``) whose values are not the
    same in every run name the row, e.g. ``easyvqa_cp_hint [objective.weight=3]``; runs that
    differ only by ignored keys (seed, ``init_from``, paths, ...) share a row.

    Example:
        >>> runs = [RunRecord(Path(f"r{i}"), "hint", {}, 0.0, i, {"objective.weight": w})
        ...         for i, w in enumerate(["1", "3", "1"])]
        >>> row_labels(runs)
        ['hint [objective.weight=1]', 'hint [objective.weight=3]', 'hint [objective.weight=1]']
    """
    by_experiment: dict[str, list[RunRecord]] = {}
    for record in records:
        by_experiment.setdefault(record.experiment, []).append(record)
    differing: dict[str, list[str]] = {}
    for name, runs in by_experiment.items():
        keys = sorted({k for r in runs for k in r.overrides if not _ignored(k, ignore)})
        differing[name] = [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]
    labels = []
    for record in records:
        keys = differing[record.experiment]
        parts = [f"{k}={record.overrides[k]}" for k in keys if k in record.overrides]
        labels.append(f"{record.experiment} [{', '.join(parts)}]" if parts else record.experiment)
    return labels


def seed_labels(runs: Sequence[RunRecord]) -> list[str]:
    """One label per run: its seed; ``<seed>#<k>`` when a seed repeats; the folder when unknown."""
    labels = [str(r.seed) if r.seed is not None else r.path.name for r in runs]
    repeated = {label for label in labels if labels.count(label) > 1}
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        if label in repeated:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label}#{seen[label]}"
        out.append(label)
    return out


def question_table(
    runs: Sequence[RunRecord], seeds: Sequence[str], stage: str
) -> SeedQuestionTable | None:
    """Per-question values of a row's runs (``<stage>/<column>``), or None if a run has none."""
    records = []
    for run, seed in zip(runs, seeds, strict=True):
        named = stage if per_question_files(run.path, stage) else None  # a named test split
        if named is None and not per_question_files(run.path):
            return None
        for record in read_per_question(run.path, named):
            split = record.get("split", record.get("stage", stage))
            if split != stage:
                return None
            values = {
                f"{stage}/{key}": float(value) if value is not None else None
                for key, value in record.items()
                if key not in _NOT_METRICS and (value is None or (isinstance(value, (int, float))))
            }
            records.append((seed, record["question_id"], values))
    return SeedQuestionTable.from_records(records) if records else None


def seed_table(runs: Sequence[RunRecord], seeds: Sequence[str], stage: str) -> SeedQuestionTable:
    """The runs' ``metrics.json`` values of the stage, one per seed."""
    prefix = f"{stage}/"
    return SeedQuestionTable.from_seed_values(
        {
            seed: {k: v for k, v in run.metrics.items() if k.startswith(prefix)}
            for run, seed in zip(runs, seeds, strict=True)
        }
    )
