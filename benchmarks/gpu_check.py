"""``make gpu-check``: the CUDA path, checked in minutes on one GPU (CPU-only machines too).

Run from the repository root::

    python -m benchmarks.gpu_check [--quick] [--device auto|cpu|cuda] [--output PATH]

Parts (each isolated in its own subprocess, with a time limit; a failure is recorded in the
JSON and the next part runs):

1. ``device_tests``: ``pytest -m device --device cuda`` (on a machine without CUDA: ``--device
   cpu``): importance against finite differences, the HINT loss and its second-order gradients
   in float32 and under bf16 autocast against float64, the shift fast path against the
   reference path (``tests/test_devices.py``).
2. ``training_runs``: a short ``experiment=easyvqa_cp_updn trainer=gpu`` run (the baseline),
   then ``experiment=easyvqa_cp_hint trainer=gpu`` (bf16-mixed) and ``experiment=easyvqa_cp_hint
   trainer=ddp trainer.devices=1`` initialized from it; each must finish and write
   ``metrics.json``, ``test_results.json`` and ``checkpoints/last.ckpt``. Without CUDA:
   ``trainer=cpu`` and ``trainer=ddp_cpu trainer.devices=1``, both with bf16-mixed precision.
3. ``train_step``: ``make bench``'s training step (paper-scale UpDn: plain, HINT, HINT without
   importance, Attn. Align) in bf16 and in float32, batch 512 (CPU: 8; ``--quick``: 2).
4. ``precision``: float32 vs bf16 HINT loss and second-order gradients at paper scale.
5. ``loader``: the VQA loader's samples/s against the HINT step's, with the number of workers
   that reaches the target.

One JSON object (the card, torch, CUDA and cuDNN versions, every figure, ``targets`` with
pass/fail) is printed and written to ``benchmarks/results/gpu_check.json`` (``--quick``:
``gpu_check_quick.json``), also after every part, so a killed run leaves what it measured.
The targets are stated for one CUDA card; without CUDA they are reported but not evaluated.
Exit status 1 when a target fails or a part fails on an available device; 2 for bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, print_json
from benchmarks.gpu_check_runs import (
    BUDGET_S,
    Budget,
    device_tests,
    log,
    run_command,
    training_runs,
)
from hint_lightning.utils.io import write_json

RESULTS = ROOT / "benchmarks" / "results"
HINT_TO_PLAIN_MAX = 1.3
HINT_LOSS_BF16_RTOL = 0.05
LOADER_TO_HINT_MIN = 2.0


class DeviceUnavailable(Exception):
    """``--device cuda`` on a machine without CUDA."""


def run_part(name: str, args: list[str], budget: Budget) -> dict[str, Any]:
    """``python -m benchmarks.gpu_check --part name *args`` in a subprocess: its JSON or error."""
    limit = budget.limit(name)
    if limit < 5:
        return {"error": "skipped: the time budget is spent"}
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--part", name, *args]
    code, stdout, tail, seconds = run_command(command, limit)
    budget.charge(name, seconds)
    try:
        result = json.loads(stdout) if code == 0 else {"error": f"exit {code}: {tail}"}
    except json.JSONDecodeError:
        result = {"error": f"no JSON on stdout: {tail}"}
    return result | {"wall_s": seconds}


def _target(
    description: str, measured: Any, unit: str, passed: bool, evaluated: bool, **extra: Any
) -> dict[str, Any]:
    """One entry of ``targets``: ``pass`` is None where the target is not evaluated."""
    entry = {"target": description, "measured": measured, "unit": unit}
    entry["pass"] = bool(passed) if evaluated else None
    if not evaluated:
        entry["note"] = "not evaluated: the target is stated for one CUDA card"
    return entry | extra


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """Every target with its measured value and pass/fail (a missing figure fails on CUDA)."""
    evaluated = result.get("device") == "cuda"
    step = result.get("train_step", {})
    precision = result.get("precision", {})

    def hint_step() -> dict[str, Any]:
        bf16 = step["bfloat16"]
        ratio = bf16["hint_to_plain"]
        batch = bf16["batch_size"]
        return _target(
            f"HINT step <= {HINT_TO_PLAIN_MAX}x plain UpDn in bf16 at batch 512 (medians)",
            ratio,
            "x plain",
            ratio <= HINT_TO_PLAIN_MAX and batch == 512,
            evaluated,
            batch_size=batch,
        )

    def finite() -> dict[str, Any]:
        counts = {name: c["nonfinite_losses"] for name, c in step["bfloat16"]["configs"].items()}
        paths = precision["bf16_vs_float32"]
        finite_paths = {path: paths[path]["finite"] for path in paths}
        bad = sum(counts.values()) + sum(not ok for ok in finite_paths.values())
        return _target(
            "no NaN/inf in bf16: training-step losses, HINT importance, loss and gradients",
            bad,
            "non-finite results",
            bad == 0,
            evaluated,
            nonfinite_losses=counts,
            precision_finite=finite_paths,
        )

    def hint_loss() -> dict[str, Any]:
        compared = precision["bf16_vs_float32"]["shift"]
        return _target(
            f"HINT loss in bf16 within {HINT_LOSS_BF16_RTOL:.0%} (relative) of float32 at "
            f"paper scale (batch {precision['batch_size']}, fast path, TF32 off in float32)",
            round(compared["loss_relative_difference"], 4),
            "relative difference",
            compared["loss_relative_difference"] <= HINT_LOSS_BF16_RTOL,
            evaluated,
            tolerance=HINT_LOSS_BF16_RTOL,
            reference_path=precision["bf16_vs_float32"]["reference"]["loss_relative_difference"],
            alpha_spread_of_mean=precision["alpha_spread_of_mean"],
        )

    def loader() -> dict[str, Any]:
        loading = result["loader"]
        ratio = loading["best_ratio_to_hint"]
        return _target(
            f"VQA loader >= {LOADER_TO_HINT_MIN}x the HINT step's samples/s (bf16)",
            ratio,
            "x HINT",
            ratio is not None and ratio >= LOADER_TO_HINT_MIN,
            evaluated,
            workers=loading["workers_reaching_target"],
        )

    out = {}
    for name, check in {
        "hint_step_vs_plain_bf16": hint_step,
        "no_nan_inf_bf16": finite,
        "hint_loss_float32_vs_bf16": hint_loss,
        "loader_vs_hint_training": loader,
    }.items():
        try:
            out[name] = check()
        except Exception as error:  # a part failed or returned something else: say so
            out[name] = {"error": f"figure missing (part failed?): {error!r}"}
            out[name]["pass"] = False if evaluated else None
    return out


def _sizes(device: str, quick: bool, cpus: int) -> dict[str, Any]:
    """Batch sizes and loader settings: paper scale on CUDA, tiny on the CPU."""
    if device == "cuda":
        workers = sorted({w for w in (0, 2, 4, 8, 16, cpus) if w <= cpus})
        return {
            "batch": 512,
            "precision_batch": 512,
            "images": 1000,
            "workers": workers,
            "seconds": 1.0 if quick else 3.0,
        }
    return {
        "batch": 2 if quick else 8,
        "precision_batch": 2 if quick else 4,
        "images": 30 if quick else 60,
        "workers": [0, 2],
        "seconds": 0.5 if quick else 1.0,
    }


def _cpu_skips(reason: str, sizes: dict[str, Any]) -> list[str]:
    """The CUDA parts that a run without CUDA skips, and what it runs instead."""
    return [
        f"device tests on cuda: skipped ({reason}); running them on cpu",
        f"training runs with trainer=gpu and trainer=ddp: skipped ({reason}); running "
        "trainer=cpu and trainer=ddp_cpu trainer.devices=1 (bf16-mixed) at tiny size",
        f"training step at batch 512 on cuda: skipped ({reason}); measuring on cpu at batch "
        f"{sizes['batch']}",
        f"float32 vs bf16 at batch 512 on cuda: skipped ({reason}); measuring on cpu at batch "
        f"{sizes['precision_batch']}",
        f"loader vs the GPU's HINT step: skipped ({reason}); comparing with the CPU's",
        f"targets: not evaluated ({reason}); they are stated for one CUDA card",
    ]


def _train_steps(device: str, batch_size: int, quick: bool, budget: Budget) -> dict[str, Any]:
    """The training-step section in bf16, then in float32 (a subprocess each)."""
    steps: dict[str, Any] = {}
    for dtype in ("bfloat16", "float32"):
        log(f"training step, {dtype}, batch {batch_size} on {device} ...")
        args = ["--device", device, "--batch-size", str(batch_size), "--dtype", dtype]
        steps[dtype] = run_part("train_step", args + (["--quick"] if quick else []), budget)
    failed = [dtype for dtype, value in steps.items() if "error" in value]
    steps["wall_s"] = round(sum(value.get("wall_s", 0) for value in steps.values()), 1)
    return steps | ({"error": f"failed: {failed}"} if failed else {})


def _loader_args(steps: dict[str, Any], sizes: dict[str, Any]) -> list[str]:
    """The loader part's arguments, with the HINT step's samples/s (bf16, else float32)."""
    rates = [
        steps.get(dtype, {}).get("configs", {}).get("hint_fast_all", {}).get("samples_per_s")
        for dtype in ("bfloat16", "float32")
    ]
    rate = next((value for value in rates if value), None)
    log(f"loader vs the HINT step ({rate} samples/s) ...")
    args = ["--images", str(sizes["images"]), "--batch-size", str(sizes["batch"])]
    args += ["--workers", ",".join(map(str, sizes["workers"])), "--seconds", str(sizes["seconds"])]
    return args + (["--hint-samples-per-s", str(rate)] if rate else [])


def check(args: argparse.Namespace, output: Path) -> dict[str, Any]:
    """Run every part; the JSON object (also written to ``output`` after each part)."""
    start = time.perf_counter()
    budget = Budget(args.budget)
    result: dict[str, Any] = {"complete": False, "quick": args.quick}

    def save(part: str) -> None:
        failed = "error" in result.get(part, {})
        log(f"{part}: {'FAILED' if failed else 'done'} ({result[part].get('wall_s', '?')} s)")
        write_json(output, result)

    result["environment"] = run_part("environment", [], budget)
    save("environment")
    cuda = bool(result["environment"].get("cuda_available"))
    if args.device == "cuda" and not cuda:
        raise DeviceUnavailable(
            "--device cuda: no CUDA device (torch.cuda.is_available() is False)"
        )
    device = "cuda" if cuda and args.device != "cpu" else "cpu"
    sizes = _sizes(device, args.quick, result["environment"].get("cpus") or 1)
    result["device"] = device
    result["skipped"] = []
    if device == "cpu":
        reason = "--device cpu" if cuda else "no CUDA device: torch.cuda.is_available() is False"
        result["skipped"] = _cpu_skips(reason, sizes)
        for line in result["skipped"]:
            log(f"SKIP {line}")
    workdir = args.workdir or ROOT / "logs" / "gpu_check" / datetime.now().strftime(
        "%Y-%m-%d_%H-%M-%S_%f"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    result["workdir"] = str(workdir)

    log(f"device tests on {device} ...")
    result["device_tests"] = device_tests(device, workdir, budget)
    save("device_tests")
    data_dir = args.data_dir or ROOT / "data"
    result["training_runs"] = training_runs(device, args.quick, workdir, data_dir, budget)
    save("training_runs")

    result["train_step"] = _train_steps(device, sizes["batch"], args.quick, budget)
    save("train_step")

    log(f"float32 vs bf16 HINT at paper scale, batch {sizes['precision_batch']} ...")
    result["precision"] = run_part(
        "precision", ["--device", device, "--batch-size", str(sizes["precision_batch"])], budget
    )
    save("precision")

    result["loader"] = run_part("loader", _loader_args(result["train_step"], sizes), budget)
    save("loader")

    result["targets"] = targets(result)
    result["errors"] = [
        name for name, value in result.items() if isinstance(value, dict) and "error" in value
    ]
    failed_targets = [name for name, t in result["targets"].items() if t["pass"] is False]
    result["passed"] = not result["errors"] and not failed_targets
    result["complete"] = True
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    write_json(output, result)
    for name, entry in result["targets"].items():
        verdict = {True: "PASS", False: "FAIL", None: "N/A "}[entry["pass"]]
        log(f"{verdict} {name}: {entry.get('measured', entry.get('error'))}")
    return result


def _part(args: argparse.Namespace) -> dict[str, Any]:
    """Run one measuring part in this process (``--part``)."""
    from benchmarks import gpu_check_parts as parts

    if args.part == "environment":
        return parts.environment()
    if args.part == "train_step":
        return parts.train_step(args.device, args.batch_size, args.dtype, args.quick)
    if args.part == "precision":
        return parts.precision(args.device, args.batch_size)
    workers = [int(value) for value in args.workers.split(",")]
    return parts.loader(
        args.images,
        args.batch_size,
        workers,
        args.seconds,
        args.hint_samples_per_s,
        LOADER_TO_HINT_MIN,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the check (or one part), print the JSON; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and smaller sizes")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/)")
    parser.add_argument("--workdir", type=Path, help="run outputs (default logs/gpu_check/<time>)")
    parser.add_argument("--data-dir", type=Path, help="easy-VQA-CP data dir (default data/)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all parts")
    parser.add_argument(
        "--part",
        choices=("environment", "train_step", "precision", "loader"),
        help=argparse.SUPPRESS,
    )
    for option, kind in (
        ("--batch-size", int),
        ("--dtype", str),
        ("--images", int),
        ("--workers", str),
        ("--seconds", float),
        ("--hint-samples-per-s", float),
    ):
        parser.add_argument(option, type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        print_json(_part(args), compact=True)
        return 0
    output = args.output or RESULTS / ("gpu_check_quick.json" if args.quick else "gpu_check.json")
    try:
        result = check(args, output)
    except DeviceUnavailable as error:
        print(f"gpu-check: {error}", file=sys.stderr)
        return 2
    print_json(result)
    log(f"JSON written to {output}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
