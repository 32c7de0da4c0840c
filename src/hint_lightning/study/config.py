"""Study configs: ``conf/study/<name>.yaml`` -> a checked :class:`StudyConfig`.

A study is a table: rows (an ``experiment=`` plus overrides, optionally fine-tuned from
another row's checkpoint of the same seed, optionally with one value chosen on a validation
metric among candidates), seeds, a control row and the columns to show. The file's keys::

    name: easyvqa_cp                  # must match the file name
    title: easy-VQA-CP                # the table's title
    description: ...                  # one paragraph, printed under the table
    seeds: [0, 1]
    control: lambda0                  # a row id: every other row gets its paired difference
    also_compare: [hint_random]       # optional: more control rows, a paired column each
    threads: 1                        # torch intra-op threads per run
    overrides: [...]                  # Hydra overrides for every run
    rows:
      - id: updn                      # short id (folder name)
        name: UpDn                    # title in the table
        experiment: easyvqa_cp_updn
        overrides: [...]              # Hydra overrides for this row
        init_from: updn               # start from that row's checkpoint of the same seed
        versus: updn_random           # optional: this row's matched control (one more Δ column)
        select:                       # choose one value of `key` for the row, same for all seeds
          key: objective.weight
          values: [0.1, 1, 10]
          metric: val/acc             # must be a val/ metric: the test split never selects
          mode: max
    columns:
      - {key: test/acc, title: CP-test acc, digits: 2, paired: true}
    curves: test                      # optional: the removal-curve plot of this split

A mistake (unknown study, unknown key, a row id used twice, a selection on a test metric) is a
:class:`StudyConfigError` whose message names the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "STUDY_DIR",
    "Column",
    "Row",
    "Selection",
    "StudyConfig",
    "StudyConfigError",
    "available_studies",
    "load_study",
]

STUDY_DIR = Path(__file__).resolve().parents[3] / "conf" / "study"
"""The repository's ``conf/study/`` folder (the package is installed editable)."""

_TOP_KEYS = {
    "name", "title", "description", "seeds", "control", "also_compare", "threads", "overrides",
    "rows", "columns", "curves",
}  # fmt: skip
_ROW_KEYS = {"id", "name", "experiment", "overrides", "init_from", "select", "versus"}
_SELECT_KEYS = {"key", "values", "metric", "mode"}
_COLUMN_KEYS = {"key", "title", "digits", "paired"}


class StudyConfigError(ValueError):
    """A study config that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Selection:
    """One value of ``key`` per row, the best mean of ``metric`` over the seeds.

    Attributes:
        key: the Hydra key the candidates set, e.g. ``objective.weight``.
        values: the candidates.
        metric: a validation metric, e.g. ``val/acc``.
        mode: ``max`` or ``min``.
    """

    key: str
    values: tuple[Any, ...]
    metric: str
    mode: str = "max"


@dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        id: short identifier (folder name; ``control`` and ``init_from`` refer to it).
        name: the row's title.
        experiment: the ``experiment=`` config.
        overrides: Hydra overrides of this row.
        init_from: the id of the row whose checkpoint (same seed) it starts from, or None.
        select: the value chosen on validation, or None.
        versus: the id of this row's matched control (e.g. the same objective on random
            importance): the table adds one column of paired differences from it, or None.
    """

    id: str
    name: str
    experiment: str
    overrides: tuple[str, ...] = ()
    init_from: str | None = None
    select: Selection | None = None
    versus: str | None = None


@dataclass(frozen=True)
class Column:
    """One column: metric key, title, decimals, and whether the paired difference is shown."""

    key: str
    title: str
    digits: int = 2
    paired: bool = False


@dataclass(frozen=True)
class StudyConfig:
    """A checked study (module docstring for the file's keys)."""

    name: str
    title: str
    seeds: tuple[int, ...]
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    control: str | None = None
    also_compare: tuple[str, ...] = ()
    description: str = ""
    threads: int = 1
    overrides: tuple[str, ...] = ()
    curves: str | None = None
    path: Path = field(default=Path("."), compare=False)

    def row(self, row_id: str) -> Row:
        """The row with this id."""
        return next(row for row in self.rows if row.id == row_id)

    def stages(self) -> list[str]:
        """The splits the columns (and selections) read, e.g. ``["test", "val"]``."""
        keys = [c.key for c in self.columns]
        return list(dict.fromkeys(key.split("/", 1)[0] for key in keys))


def available_studies(study_dir: Path = STUDY_DIR) -> list[str]:
    """The names of the shipped studies."""
    return sorted(path.stem for path in study_dir.glob("*.yaml"))


def _unknown(where: str, found: dict[str, Any], allowed: set[str], path: Path) -> None:
    extra = sorted(set(found) - allowed)
    if extra:
        raise StudyConfigError(
            f"{path}: unknown key {extra[0]!r} in {where} (allowed: {', '.join(sorted(allowed))})"
        )


def _strings(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StudyConfigError(f"{path}: {where} must be a list of 'key=value' strings")
    return tuple(value)


def _selection(raw: Any, where: str, path: Path) -> Selection | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise StudyConfigError(f"{path}: {where}.select must be a mapping")
    _unknown(f"{where}.select", raw, _SELECT_KEYS, path)
    missing = sorted({"key", "values", "metric"} - set(raw))
    if missing:
        raise StudyConfigError(f"{path}: {where}.select needs {missing[0]!r}")
    metric = str(raw["metric"])
    if not metric.startswith("val/"):
        raise StudyConfigError(
            f"{path}: {where}.select.metric is {metric!r}: selection reads a val/ metric, "
            "never the test split"
        )
    mode = str(raw.get("mode", "max"))
    if mode not in ("max", "min"):
        raise StudyConfigError(f"{path}: {where}.select.mode must be max or min, got {mode!r}")
    values = raw["values"]
    if not isinstance(values, list) or not values:
        raise StudyConfigError(f"{path}: {where}.select.values must be a non-empty list")
    return Selection(str(raw["key"]), tuple(values), metric, mode)


def _row(raw: Any, index: int, path: Path) -> Row:
    where = f"rows[{index}]"
    if not isinstance(raw, dict):
        raise StudyConfigError(f"{path}: {where} must be a mapping")
    _unknown(where, raw, _ROW_KEYS, path)
    for key in ("id", "experiment"):
        if not raw.get(key):
            raise StudyConfigError(f"{path}: {where} needs {key!r}")
    row_id = str(raw["id"])
    if not row_id.replace("_", "").replace("-", "").isalnum():
        raise StudyConfigError(f"{path}: {where}.id {row_id!r}: letters, digits, - and _ only")
    return Row(
        id=row_id,
        name=str(raw.get("name", row_id)),
        experiment=str(raw["experiment"]),
        overrides=_strings(raw.get("overrides"), f"{where}.overrides", path),
        init_from=str(raw["init_from"]) if raw.get("init_from") else None,
        select=_selection(raw.get("select"), where, path),
        versus=str(raw["versus"]) if raw.get("versus") else None,
    )


def _column(raw: Any, index: int, path: Path) -> Column:
    where = f"columns[{index}]"
    if isinstance(raw, str):
        raw = {"key": raw}
    if not isinstance(raw, dict) or "key" not in raw:
        raise StudyConfigError(f"{path}: {where} must be a metric key or a mapping with 'key'")
    _unknown(where, raw, _COLUMN_KEYS, path)
    key = str(raw["key"])
    if "/" not in key:
        raise StudyConfigError(f"{path}: {where}.key {key!r} must read '<split>/<metric>'")
    return Column(
        key, str(raw.get("title", key)), int(raw.get("digits", 2)), bool(raw.get("paired", False))
    )


def _check_rows(rows: tuple[Row, ...], control: str | None, path: Path) -> None:
    ids = [row.id for row in rows]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise StudyConfigError(f"{path}: row id {repeated[0]!r} is used twice")
    if control is not None and control not in ids:
        raise StudyConfigError(f"{path}: control {control!r} is not a row id ({', '.join(ids)})")
    for row in rows:
        if row.versus is not None and (row.versus not in ids or row.versus == row.id):
            raise StudyConfigError(
                f"{path}: row {row.id!r}: versus {row.versus!r} is not another row"
            )
        if row.init_from is None:
            continue
        if row.init_from not in ids or row.init_from == row.id:
            raise StudyConfigError(
                f"{path}: row {row.id!r}: init_from {row.init_from!r} is not another row"
            )
        parent = next(r for r in rows if r.id == row.init_from)
        if parent.select is not None or parent.init_from is not None:
            raise StudyConfigError(
                f"{path}: row {row.id!r}: init_from must name a row trained from scratch "
                "without select"
            )


def load_study(name_or_path: str | Path, study_dir: Path = STUDY_DIR) -> StudyConfig:
    """Read and check a study config (a name in ``conf/study/`` or a path to a YAML file).

    Raises:
        StudyConfigError: one line naming the file and the problem.
    """
    candidate = Path(name_or_path)
    path = (
        candidate if candidate.suffix in (".yaml", ".yml") else study_dir / f"{name_or_path}.yaml"
    )
    if not path.is_file():
        known = ", ".join(available_studies(study_dir)) or "none"
        raise StudyConfigError(f"unknown study {str(name_or_path)!r} (known: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise StudyConfigError(f"{path}: expected a mapping of study keys")
    _unknown("the study", raw, _TOP_KEYS, path)
    for key in ("rows", "seeds", "columns"):
        if not raw.get(key):
            raise StudyConfigError(f"{path}: the study needs a non-empty {key!r}")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise StudyConfigError(f"{path}: seeds must be a list of integers")
    rows = tuple(_row(r, i, path) for i, r in enumerate(raw["rows"]))
    control = str(raw["control"]) if raw.get("control") else None
    _check_rows(rows, control, path)
    also_compare = _strings(raw.get("also_compare"), "also_compare", path)
    ids = [row.id for row in rows]
    for other in also_compare:
        if other not in ids:
            raise StudyConfigError(
                f"{path}: also_compare {other!r} is not a row id ({', '.join(ids)})"
            )
    if also_compare and control is None:
        raise StudyConfigError(f"{path}: also_compare needs a control row first")
    name = str(raw.get("name", path.stem))
    if name != path.stem:
        raise StudyConfigError(f"{path}: name {name!r} must match the file name {path.stem!r}")
    return StudyConfig(
        name=name,
        title=str(raw.get("title", name)),
        description=str(raw.get("description", "")).strip(),
        seeds=tuple(seeds),
        rows=rows,
        columns=tuple(_column(c, i, path) for i, c in enumerate(raw["columns"])),
        control=control,
        also_compare=also_compare,
        threads=int(raw.get("threads", 1)),
        overrides=_strings(raw.get("overrides"), "overrides", path),
        curves=str(raw["curves"]) if raw.get("curves") else None,
        path=path,
    )
