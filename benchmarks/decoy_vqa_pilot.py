"""decoy_vqa pilot: which rows beat both controls on flipped-test shape accuracy?

Runs ``python -m hint_lightning.train experiment=decoy_vqa_<row> seed=<s>`` for every row and
seed (each run in its own process, one after the other; a finished run, recognised by its
``metrics.json``, is not run again, so a stopped pilot resumes), then prints a Markdown table:
shape-question accuracy on each test split, the decoy's share of |importance| (random-decoy
test), total |importance| per question (flipped test), rho (clean test) and the paired
differences of flipped-test shape accuracy against the lambda=0 control (``updn``) and the
random-importance control (``hint_random``), mean and 95% t-interval over the seeds. Model
selection is whatever the experiments say (``val/acc`` on ``val_random``).

    python -m benchmarks.decoy_vqa_pilot --seeds 0 1 2 --epochs 6 --out runs/decoy_vqa_pilot

Writes ``<out>/pilot.json`` (every run's metrics and the table) and ``<out>/pilot.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
CONTROLS = ("updn", "hint_random")
"""The rows every other row is compared with (paired by seed)."""
COLUMNS = (
    ("clean", "test_clean/acc_shape"),
    ("random", "test_random/acc_shape"),
    ("flipped", "test_flipped/acc_shape"),
    ("val_random", "val/acc_shape"),
    ("decoy % (random)", "test_random/decoy_share"),
    ("sum abs imp (flipped)", "test_flipped/importance_total"),
    ("rho (clean)", "test_clean/rho"),
)
TARGET = "test_flipped/acc_shape"


def run_one(row: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Trains and tests one row with one seed (or reads the finished run)."""
    out = Path(args.out) / f"{row}_seed{seed}"
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        return json.loads(metrics_path.read_text())
    command = [
        sys.executable,
        "-m",
        "hint_lightning.train",
        f"experiment=decoy_vqa_{row}",
        f"seed={seed}",
        f"data.data_dir={args.data_dir}",
        f"paths.output_dir={out}",
        f"trainer.max_epochs={args.epochs}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        *args.override,
    ]
    began = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{row} seed {seed} failed:\n{done.stderr[-3000:]}")
    print(f"{row} seed {seed}: {time.perf_counter() - began:.0f} s", flush=True)
    return json.loads(metrics_path.read_text())


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))


def _cell(values: list[float], digits: int = 1) -> str:
    mean, half = interval(values)
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} +/- {half:.{digits}f}"


def table(runs: dict[str, dict[int, dict[str, Any]]], seeds: list[int]) -> str:
    """The Markdown table (mean +/- 95% t half-width over the seeds)."""
    head = ["row", *(name for name, _ in COLUMNS), *(f"d flipped vs {c}" for c in CONTROLS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, by_seed in runs.items():
        cells = [row]
        for _, key in COLUMNS:
            values = [by_seed[s][key] for s in seeds if key in by_seed[s]]
            digits = 2 if "rho" in key or "importance_total" in key else 1
            cells.append(_cell(values, digits) if values else "-")
        for control in CONTROLS:
            if control == row or control not in runs:
                cells.append("-")
                continue
            deltas = [by_seed[s][TARGET] - runs[control][s][TARGET] for s in seeds]
            cells.append(_cell(deltas))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", nargs="+", default=["updn", "hint_random", "hint", "hint_scale_invariant"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "decoy_vqa_pilot"))
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    runs: dict[str, dict[int, dict[str, Any]]] = {row: {} for row in args.rows}
    for seed in args.seeds:  # seed-major: a pilot stopped early still has paired seeds
        for row in args.rows:
            runs[row][seed] = run_one(row, seed, args)
    text = table(runs, args.seeds)
    wall = time.perf_counter() - began
    out = Path(args.out)
    command = "python -m benchmarks.decoy_vqa_pilot " + " ".join(argv or sys.argv[1:])
    summary = {"command": command, "seeds": args.seeds, "epochs": args.epochs, "wall_s": wall}
    (out / "pilot.json").write_text(json.dumps({**summary, "runs": runs, "table": text}))
    (out / "pilot.md").write_text(f"{command}\n\n{text}\n")
    print(text)
    print(f"wall {wall:.0f} s (finished runs are reused)")


if __name__ == "__main__":
    main()
