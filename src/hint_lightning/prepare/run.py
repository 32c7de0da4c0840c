"""What every prepare command shares: a run (paths, options, console, report) and its steps.

A step (:meth:`Run.step`) is rebuilt when its output is missing or changed, when one of its
inputs or options changed (the ledger of :mod:`hint_lightning.stores.prepare_state`), or with
``force``; otherwise it is skipped. The feature store is checked through its own ``sources``
attribute (:func:`feature_step`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import h5py
from rich.console import Console

from hint_lightning.prepare.features import convert_tsv_to_hdf5, feature_store_is_current
from hint_lightning.prepare.layout import DataLayout, MissingPreparedFilesError, RawFile
from hint_lightning.prepare.summary import PrepareReport
from hint_lightning.prepare.vqa_raw import load_annotations, load_questions
from hint_lightning.stores.prepare_state import BuildLedger

__all__ = [
    "GEOMETRY_DATASETS",
    "Run",
    "default_console",
    "feature_step",
    "finish",
    "require_prepared",
    "start",
]

LOG_WIDTH: Final = 120
"""Console width when the output is not a terminal (logs)."""
GEOMETRY_DATASETS: Final = ("image_ids", "image_w", "image_h", "num_boxes", "boxes")
"""What the importance stores depend on in a feature store (not the features themselves)."""


@dataclass
class Run:
    """State shared by the steps of one run.

    Attributes:
        layout: The data folder's paths.
        features: The feature variant.
        force: Rebuild every step.
        progress: Show progress bars.
        console: Where messages go.
        report: What happened to each output.
    """

    layout: DataLayout
    features: str
    force: bool
    progress: bool
    console: Console
    report: PrepareReport
    _loaded: dict[Path, list[dict]] = field(default_factory=dict)

    def step(
        self,
        ledger: BuildLedger,
        output: Path,
        stamp: Mapping[str, Any],
        build: Callable[[], None],
    ) -> bool:
        """Runs ``build`` unless ``output`` is up to date with ``stamp``; True when built."""
        name = self.report.name(output)
        if not self.force and ledger.is_current(output, stamp):
            self.console.print(f"[dim]skip   {name} (up to date)[/]")
            self.report.add(output, "skipped")
            return False
        ledger.forget(output)
        self.console.print(f"[bold]build[/]  {name}")
        start = time.perf_counter()
        build()
        ledger.record(output, stamp)
        self.report.add(output, "built", time.perf_counter() - start)
        return True

    def status(self, message: str) -> Any:
        """A spinner while something without its own progress bar runs."""
        return self.console.status(message) if self.progress else nullcontext()

    def load(self, raw: RawFile, kind: Literal["questions", "annotations"]) -> list[dict]:
        """The items of a raw question or annotation file, read once per run."""
        path = raw.resolve()
        if path not in self._loaded:
            if raw.layout is None:
                raise ValueError(f"{path} is not a question or annotation file")
            loader = load_questions if kind == "questions" else load_annotations
            with self.status(f"reading {path.name}"):
                self._loaded[path] = loader(path, raw.layout)
        return self._loaded[path]

    def release(self, *raws: RawFile) -> None:
        """Forgets loaded files (the real ones take gigabytes as Python objects)."""
        for raw in raws:
            self._loaded.pop(raw.resolve(), None)


def start(
    data_dir: str | os.PathLike[str],
    dataset: str | None,
    features: str,
    force: bool,
    progress: bool,
    console: Console | None,
) -> Run:
    """A new run over ``data_dir``."""
    layout = DataLayout(data_dir)
    layout.feature_store(features)  # validates the variant name
    if dataset is not None:
        layout.vqa_dir(dataset)  # validates the dataset name
    report = PrepareReport(layout.data_dir, layout.prepared, dataset)
    return Run(layout, features, force, progress, console or default_console(), report)


def default_console() -> Console:
    """A stdout console; 120 columns when writing to a file or pipe (rich would take 80)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, LOG_WIDTH)
    return console


def finish(run: Run, title: str, started: float) -> dict[str, Any]:
    """Prints the summary table and returns the report."""
    run.report.notes["seconds"] = round(time.perf_counter() - started, 3)
    run.console.print(run.report.table(f"{title} ({run.report.notes['seconds']:.1f} s)"))
    return run.report.as_dict()


def _stored_feature_dim(path: Path) -> int | None:
    """The ``feature_dim`` attribute of a feature store (None if unreadable)."""
    try:
        with h5py.File(path, "r") as handle:
            return int(handle.attrs["feature_dim"])
    except (OSError, KeyError, ValueError):
        return None


def feature_step(run: Run, float16: bool, feature_dim: int) -> None:
    """TSVs -> ``features/<name>.h5`` (checked through the store's own ``sources``)."""
    tsvs = run.layout.feature_tsvs(run.features)
    out = run.layout.feature_store(run.features)
    name = run.report.name(out)
    current = (
        not run.force
        and feature_store_is_current(out, tsvs, float16)
        and _stored_feature_dim(out) == feature_dim
    )
    if current:
        run.console.print(f"[dim]skip   {name} (up to date)[/]")
        run.report.add(out, "skipped")
        return
    run.console.print(f"[bold]build[/]  {name} from {len(tsvs)} TSV file(s)")
    start = time.perf_counter()
    stats = convert_tsv_to_hdf5(
        tsvs, out, feature_dim=feature_dim, float16=float16, progress=run.progress
    )
    run.console.print(
        f"       {stats['images']:,} images, {stats['boxes']:,} boxes, {stats['mb_per_s']} MB/s"
    )
    run.report.add(out, "built", time.perf_counter() - start)


def require_prepared(run: Run, paths: list[Path], command: str) -> None:
    """:class:`MissingPreparedFilesError` when a prepared input of a standalone step is missing."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise MissingPreparedFilesError(missing, run.layout.data_dir, command)
