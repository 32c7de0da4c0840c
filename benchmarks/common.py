"""Helpers shared by the benchmark scripts: memory readings, subprocess phases, statistics.

Every benchmark prints one JSON object on stdout, so each can also run on its own
(``python -m benchmarks.<name>``); :mod:`benchmarks.run` runs them all and merges the objects.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hint_lightning.prepare.bottom_up_tsv import BottomUpImage
from hint_lightning.prepare.fixture.bottom_up import random_bottom_up_images

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: the working directory of every benchmark subprocess."""

_BATCH = 100


def status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MB (``ru_maxrss`` when /proc is missing).

    Args:
        field: a ``/proc/self/status`` field, ``"VmRSS"`` (now) or ``"VmHWM"`` (peak).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def memory(baseline: float) -> dict[str, float]:
    """Peak, baseline and work RSS in MB.

    Args:
        baseline: ``VmRSS`` (MB) read before the work.

    Returns:
        ``peak_rss_mb`` (``VmHWM`` now), ``baseline_rss_mb`` and ``work_rss_mb`` (their
        difference: the memory the work itself needed).
    """
    peak = status_mb("VmHWM")
    return {
        "peak_rss_mb": peak,
        "baseline_rss_mb": baseline,
        "work_rss_mb": round(peak - baseline, 1),
    }


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux ``clear_refs`` 5).

    Returns:
        Whether the reset worked (False where ``/proc/self/clear_refs`` is missing).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def images(num_images: int, boxes: int, feature_dim: int, seed: int) -> Iterator[BottomUpImage]:
    """Synthetic bottom-up images, generated ``_BATCH`` at a time (never all in memory)."""
    for start in range(0, num_images, _BATCH):
        count = min(_BATCH, num_images - start)
        yield from random_bottom_up_images(
            count, feature_dim=feature_dim, boxes=boxes, seed=seed + start, first_image_id=start + 1
        )


def run_json(
    module: str, *args: str, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run ``python -m module *args`` from the repository root and parse its stdout as JSON.

    Args:
        module: e.g. ``"benchmarks.bench_vqa_loader"``.
        *args: command-line arguments.
        env: extra environment variables for the subprocess.
        timeout: seconds before the subprocess is killed (None: no limit).

    Raises:
        RuntimeError: when the subprocess fails (its stderr is in the message).
    """
    command = [sys.executable, "-m", module, *args]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if done.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def run_phase(module: str, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one ``--phase`` of a benchmark module in a fresh interpreter and parse its JSON."""
    return run_json(module, "--phase", *args, env=env)


def load_average() -> float:
    """The 1-minute load average (other processes may share the CPUs)."""
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, Any]:
    """Python version, CPU count and the 1-minute load average now."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": load_average(),
    }


def summarize(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """Median, interquartile range, minimum and count of some measurements.

    Args:
        values: the measurements (at least one).
        scale: factor applied to every value (e.g. 1000 for seconds -> milliseconds).
        digits: rounding of the results.

    Returns:
        ``median``, ``iqr`` (75th - 25th percentile; 0 for fewer than 2 values), ``min``, ``n``.
    """
    scaled = [v * scale for v in values]
    if len(scaled) >= 2:
        quartiles = statistics.quantiles(scaled, n=4, method="inclusive")
        iqr = quartiles[2] - quartiles[0]
    else:
        iqr = 0.0
    return {
        "median": round(statistics.median(scaled), digits),
        "iqr": round(iqr, digits),
        "min": round(min(scaled), digits),
        "n": len(scaled),
    }


def print_json(result: Mapping[str, Any], compact: bool = False) -> None:
    """Print one JSON object on stdout (indented unless ``compact``)."""
    print(json.dumps(result, indent=None if compact else 2))
