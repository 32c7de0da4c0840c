"""What a prepare run did: per output built / skipped / absent, sizes, counts, and a table.

The counts are read back from the files themselves (:func:`output_counts`), so a skipped output
is described exactly like a freshly built one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import h5py
import numpy as np
from rich.table import Table

__all__ = ["OutputRecord", "PrepareReport", "counts_text", "format_size", "output_counts"]

Status = Literal["built", "skipped", "absent"]
STATUSES: Final[tuple[str, ...]] = ("built", "skipped", "absent")


def format_size(size: int | None) -> str:
    """Bytes in a short human form.

    Example:
        >>> format_size(512), format_size(2_500_000), format_size(None)
        ('512 B', '2.4 MiB', '-')
    """
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def _h5_counts(path: Path) -> dict[str, int]:
    """Counts of a feature, split or importance store (read from its index datasets)."""
    with h5py.File(path, "r") as handle:
        if "offsets" in handle:
            return {
                "images": int(handle["image_ids"].shape[0]),
                "boxes": int(handle["features"].shape[0]),
                "feature_dim": int(handle.attrs["feature_dim"]),
                "max_boxes": int(handle.attrs["max_boxes"]),
            }
        if "has_importance" in handle:
            return {
                "questions": int(handle["question_id"].shape[0]),
                "with_importance": int(np.count_nonzero(handle["has_importance"][()])),
            }
        return {
            "questions": int(handle["question_id"].shape[0]),
            "images": int(np.unique(handle["image_id"][()]).size),
        }


def output_counts(path: str | Path) -> dict[str, int]:
    """What a prepared file holds, by its kind.

    Returns:
        Feature store: ``images``, ``boxes``, ``feature_dim``, ``max_boxes``; split store:
        ``questions``, ``images``; importance store: ``questions``, ``with_importance``;
        ``answers.json``: ``answers``; ``tokens.json``: ``tokens``; ``glove.npy``: ``rows``,
        ``dim``; ``hat_coverage.json``: ``maps``, ``hat_questions``, ``matched``,
        ``unmatched``. Empty for anything else.
    """
    path = Path(path)
    if path.suffix == ".h5":
        return _h5_counts(path)
    if path.suffix == ".npy":
        rows, dim = np.load(path, mmap_mode="r").shape
        return {"rows": int(rows), "dim": int(dim)}
    if path.name == "hat_coverage.json":
        report = json.loads(path.read_text())
        return {
            "maps": int(report["maps"]),
            "hat_questions": int(report["questions"]),
            "matched": int(report["matched_any"]),
            "unmatched": int(report["unmatched"]["count"]),
        }
    if path.suffix == ".json":
        return {path.stem: len(json.loads(path.read_text()))}
    return {}


_COUNT_FORMATS: Final[dict[str, str]] = {
    "feature_dim": "D={:d}",
    "dim": "D={:d}",
    "max_boxes": "<={:d} boxes/image",
    "hat_questions": "{:,} questions",
}


def counts_text(counts: dict[str, int]) -> str:
    """A short description of :func:`output_counts`.

    Example:
        >>> counts_text({"images": 1200, "boxes": 43200, "feature_dim": 2048, "max_boxes": 36})
        '1,200 images, 43,200 boxes, D=2048, <=36 boxes/image'
    """
    return ", ".join(
        _COUNT_FORMATS.get(name, "{:,} " + name.replace("_", " ")).format(value)
        for name, value in counts.items()
    )


@dataclass
class OutputRecord:
    """One output of a run.

    Attributes:
        path: The file.
        status: ``"built"``, ``"skipped"`` (up to date) or ``"absent"`` (optional input
            missing).
        seconds: Build time (built outputs).
        counts: :func:`output_counts` of the file (empty when absent).
        size: Bytes (None when absent).
    """

    path: Path
    status: Status
    seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    size: int | None = None


class PrepareReport:
    """Collects what a run did with each output, in order.

    Args:
        data_dir: The data folder.
        prepared: The ``prepared/`` folder (outputs are named relative to it).
        dataset: The dataset (None for the feature step alone).
    """

    def __init__(self, data_dir: Path, prepared: Path, dataset: str | None) -> None:
        self.data_dir = data_dir
        self.prepared = prepared
        self.dataset = dataset
        self.outputs: dict[str, OutputRecord] = {}
        self.notes: dict[str, Any] = {}

    def name(self, path: Path) -> str:
        """The report name of an output: its path relative to ``prepared/``."""
        try:
            return path.relative_to(self.prepared).as_posix()
        except ValueError:
            return str(path)

    def add(self, path: Path, status: Status, seconds: float | None = None) -> None:
        """Records an output (its counts and size are read from the file)."""
        exists = status != "absent" and path.is_file()
        self.outputs[self.name(path)] = OutputRecord(
            path=path,
            status=status,
            seconds=None if seconds is None else round(seconds, 3),
            counts=output_counts(path) if exists else {},
            size=path.stat().st_size if exists else None,
        )

    def names(self, status: Status) -> list[str]:
        """The outputs with a status, in run order."""
        return [name for name, record in self.outputs.items() if record.status == status]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (what the Python API returns)."""
        return {
            "dataset": self.dataset,
            "data_dir": str(self.data_dir),
            **{status: self.names(status) for status in STATUSES},  # type: ignore[arg-type]
            "outputs": {
                name: {
                    "path": str(record.path),
                    "status": record.status,
                    "size": record.size,
                    "counts": dict(record.counts),
                    "seconds": record.seconds,
                }
                for name, record in self.outputs.items()
            },
            **self.notes,
        }

    def table(self, title: str) -> Table:
        """A rich table: output, status, size, contents, build time."""
        table = Table(title=title, title_justify="left", caption="outputs under prepared/")
        table.add_column("output", no_wrap=True)
        table.add_column("status")
        table.add_column("size", justify="right")
        table.add_column("contents", overflow="fold")
        table.add_column("time", justify="right")
        style = {"built": "green", "skipped": "dim", "absent": "yellow"}
        for name, record in self.outputs.items():
            table.add_row(
                name,
                f"[{style[record.status]}]{record.status}[/]",
                format_size(record.size),
                counts_text(record.counts),
                "-" if record.seconds is None else f"{record.seconds:.2f} s",
            )
        return table
