"""Run a study's (row, seed, candidate) trainings in subprocesses, resumably, in parallel.

Each run is one call of :func:`hint_lightning.train.train` in a fresh Python process
(``python -m hint_lightning.study.runner <spec.json>``), so runs do not share Hydra's global
state or torch's thread pool and ``--jobs N`` runs N at once. A run folder is
``<output>/<row id>/seed<k>`` (``.../<key>=<value>`` for a candidate of a ``select:``); when the
training returns, the worker writes ``study_run.json`` there (atomically) with
``"status": "finished"``. A folder with that marker and its ``metrics.json`` is finished and
never run again (resume); any other existing folder is a killed run: it is emptied and re-run.
A fine-tune row starts once the row it starts from has finished for the same seed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hint_lightning.study.config import Row, StudyConfig
from hint_lightning.utils.io import write_json

__all__ = [
    "MARKER",
    "RunSpec",
    "is_finished",
    "plan_runs",
    "run_study",
    "select_values",
]

MARKER = "study_run.json"
"""Written by the worker when its training returned: the run is finished."""

LOG_FILE = "study_log.txt"
"""The worker's stdout and stderr."""


@dataclass(frozen=True)
class RunSpec:
    """One training of a study.

    Attributes:
        row: the row id.
        seed: the training seed.
        value: the candidate of the row's ``select:`` (None without one).
        run_dir: the run's folder.
        overrides: its Hydra overrides (without ``init_from``, resolved when it starts).
        parent: the key of the run it starts from, or None.
    """

    row: str
    seed: int
    value: Any
    run_dir: Path
    overrides: tuple[str, ...]
    parent: tuple[str, int, Any] | None = None

    @property
    def key(self) -> tuple[str, int, Any]:
        """``(row, seed, value)``."""
        return (self.row, self.seed, self.value)


def candidate_folder(row: Row, value: Any) -> str:
    """``objective.weight=0.1`` for a candidate of ``select:``."""
    assert row.select is not None
    return f"{row.select.key}={value}"


def run_dir_of(output_dir: Path, row: Row, seed: int, value: Any = None) -> Path:
    """The folder of one run (module docstring)."""
    folder = output_dir / row.id / f"seed{seed}"
    return folder if row.select is None else folder / candidate_folder(row, value)


def plan_runs(
    study: StudyConfig, output_dir: Path, extra_overrides: Sequence[str] = ()
) -> list[RunSpec]:
    """Every run of the study, parents before the rows that start from them."""
    specs = []
    for seed in study.seeds:
        for row in study.rows:
            base = (
                f"experiment={row.experiment}",
                f"seed={seed}",
                *study.overrides,
                *row.overrides,
            )
            values = row.select.values if row.select is not None else (None,)
            parent = (row.init_from, seed, None) if row.init_from else None
            for value in values:
                chosen = () if row.select is None else (f"{row.select.key}={value}",)
                specs.append(
                    RunSpec(
                        row.id,
                        seed,
                        value,
                        run_dir_of(output_dir, row, seed, value),
                        (*base, *chosen, *extra_overrides),
                        parent,
                    )
                )
    return specs


def is_finished(run_dir: Path) -> bool:
    """Whether the run's marker says finished and its ``metrics.json`` exists."""
    marker = run_dir / MARKER
    try:
        status = json.loads(marker.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return False
    return status == "finished" and (run_dir / "metrics.json").is_file()


def checkpoint_of(run_dir: Path) -> str:
    """The checkpoint a fine-tune starts from: the run's best, else its last."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    path = metrics.get("ckpt/best") or metrics.get("ckpt/last") or ""
    if not path:
        raise RuntimeError(f"{run_dir}: the run saved no checkpoint to start from")
    return str(path)


def _launch(spec: RunSpec, init_from: str | None, threads: int) -> tuple[bool, float]:
    """Run one training in a subprocess; ``(succeeded, seconds)``."""
    if spec.run_dir.exists():  # a killed run: start it again from scratch
        shutil.rmtree(spec.run_dir)
    spec.run_dir.mkdir(parents=True)
    overrides = [*spec.overrides, *([f"init_from={init_from}"] if init_from else [])]
    request = {"overrides": overrides, "threads": threads, "row": spec.row, "seed": spec.seed,
               "value": spec.value}  # fmt: skip
    request_path = write_json(spec.run_dir / "study_request.json", request)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with (spec.run_dir / LOG_FILE).open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hint_lightning.study.runner", str(request_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        _LIVE.add(process)
        try:
            code = process.wait()
        finally:
            _LIVE.discard(process)
    return code == 0 and is_finished(spec.run_dir), time.perf_counter() - start


_LIVE: set[subprocess.Popen[bytes]] = set()
"""Workers running now (stopped when the study is interrupted)."""


def stop_workers() -> None:
    """Terminate the running workers (their folders stay unfinished: re-run on resume)."""
    for process in list(_LIVE):
        process.terminate()
    for process in list(_LIVE):
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_study(
    study: StudyConfig,
    output_dir: Path,
    jobs: int = 1,
    extra_overrides: Sequence[str] = (),
    on_done: Callable[[RunSpec, str, float], None] | None = None,
) -> dict[str, Any]:
    """Run every unfinished run of the study, ``jobs`` at a time.

    Args:
        study: the study.
        output_dir: where the run folders go.
        jobs: runs at once (each a process with ``study.threads`` torch threads).
        extra_overrides: Hydra overrides for every run (command line).
        on_done: called with ``(spec, status, seconds)``; status ``finished``, ``skipped``
            (finished before: resume), ``failed`` or ``blocked`` (its parent failed).

    Returns:
        ``{"ran", "skipped", "failed"}``: lists of run folders.
    """
    specs = plan_runs(study, output_dir, extra_overrides)
    by_key = {spec.key: spec for spec in specs}
    report = on_done or (lambda spec, status, seconds: None)
    outcome: dict[str, list[str]] = {"ran": [], "skipped": [], "failed": []}
    done: dict[tuple[str, int, Any], bool] = {}
    pending = []
    for spec in specs:
        if is_finished(spec.run_dir):
            done[spec.key] = True
            outcome["skipped"].append(str(spec.run_dir))
            report(spec, "skipped", 0.0)
        else:
            pending.append(spec)
    _prepare_data(pending, output_dir, study.threads)
    running: dict[Future[tuple[bool, float]], RunSpec] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            _schedule(pending, running, done, outcome, by_key, pool, jobs, study.threads, report)
        except BaseException:  # Ctrl-C or SIGTERM: stop the workers, keep the finished runs
            stop_workers()
            raise
    return outcome


def _schedule(
    pending: list[RunSpec],
    running: dict[Future[tuple[bool, float]], RunSpec],
    done: dict[tuple[str, int, Any], bool],
    outcome: dict[str, list[str]],
    by_key: dict[tuple[str, int, Any], RunSpec],
    pool: ThreadPoolExecutor,
    jobs: int,
    threads: int,
    report: Callable[[RunSpec, str, float], None],
) -> None:
    """Start each run once its parent has finished, ``jobs`` at a time, until none is left."""
    while pending or running:
        for spec in list(pending):
            if len(running) >= max(1, jobs):
                break
            if spec.parent is not None and spec.parent not in done:
                continue
            pending.remove(spec)
            if spec.parent is not None and not done[spec.parent]:
                done[spec.key] = False
                outcome["failed"].append(str(spec.run_dir))
                report(spec, "blocked", 0.0)
                continue
            init = checkpoint_of(by_key[spec.parent].run_dir) if spec.parent else None
            running[pool.submit(_launch, spec, init, threads)] = spec
        if not running:
            continue
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            spec = running.pop(future)
            succeeded, seconds = future.result()
            done[spec.key] = succeeded
            outcome["ran" if succeeded else "failed"].append(str(spec.run_dir))
            report(spec, "finished" if succeeded else "failed", seconds)


def _prepare_data(pending: Sequence[RunSpec], output_dir: Path, threads: int) -> None:
    """Build the data of every experiment once, before runs start in parallel.

    Two processes preparing the same store at once would race; this runs ``prepare_data()``
    for each distinct experiment and ``data.`` overrides, in one subprocess, first (a no-op
    when the data exists).
    """
    firsts: dict[str, list[str]] = {}
    for spec in pending:
        data = tuple(o for o in spec.overrides if o.startswith(("experiment=", "data.")))
        firsts.setdefault(" ".join(data), list(spec.overrides))
    if not firsts:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    request = write_json(output_dir / "study_prepare.json", {"prepare": list(firsts.values())})
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with (output_dir / "study_prepare_log.txt").open("w") as log:
        subprocess.run(
            [sys.executable, "-m", "hint_lightning.study.runner", str(request)],
            stdout=log, stderr=subprocess.STDOUT, env=env, check=False,
        )  # fmt: skip


def _val_metric(run_dir: Path, metric: str) -> float | None:
    if not is_finished(run_dir):
        return None
    value = json.loads((run_dir / "metrics.json").read_text()).get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def select_values(study: StudyConfig, output_dir: Path) -> dict[str, dict[str, Any]]:
    """Per row with ``select:``, the candidate with the best mean validation metric over seeds.

    Only the runs' ``val/`` metrics are read (the config refuses any other). A candidate with a
    missing run is skipped; a row with no complete candidate gets ``chosen: None``.

    Returns:
        ``{row id: {"key", "metric", "mode", "chosen", "scores": {value: mean}}}``.
    """
    out = {}
    for row in study.rows:
        if row.select is None:
            continue
        scores: dict[str, float] = {}
        for value in row.select.values:
            found = [
                _val_metric(run_dir_of(output_dir, row, seed, value), row.select.metric)
                for seed in study.seeds
            ]
            if all(v is not None for v in found):
                scores[str(value)] = sum(found) / len(found)  # type: ignore[arg-type]
        best = None
        if scores:
            sign = 1.0 if row.select.mode == "max" else -1.0
            best_key = max(scores, key=lambda v: sign * scores[v])
            best = next(v for v in row.select.values if str(v) == best_key)
        out[row.id] = {"key": row.select.key, "metric": row.select.metric,
                       "mode": row.select.mode, "chosen": best, "scores": scores}  # fmt: skip
    return out


def _work(request_path: Path) -> None:
    """The worker: compose the config, train, write the marker."""
    import torch

    from hint_lightning.compose import compose_train_config
    from hint_lightning.train import train

    request = json.loads(request_path.read_text())
    if "prepare" in request:
        from hydra.utils import instantiate

        for overrides in request["prepare"]:
            cfg = compose_train_config(overrides, output_dir=request_path.parent)
            instantiate(cfg.data).prepare_data()
        return
    torch.set_num_threads(int(request["threads"]))
    run_dir = request_path.parent
    start = time.perf_counter()
    cfg = compose_train_config(request["overrides"], output_dir=run_dir)
    train(cfg)
    write_json(
        run_dir / MARKER,
        {"status": "finished", "seconds": time.perf_counter() - start, **request},
    )


if __name__ == "__main__":
    _work(Path(sys.argv[1]))
