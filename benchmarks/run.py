"""Run every benchmark and merge the results into one JSON object (``make bench``).

Run from the repository root::

    python -m benchmarks.run [--quick] [--output PATH]

Sections (each benchmark runs in its own subprocess, so that one's memory and threads do not
leak into the next; each section records the 1-minute load average before and after it):

* ``machine``: CPUs, torch version and threads, CUDA, load averages at the start and the end
  (other processes may share the CPUs: read every timing next to them);
* ``train_step``: :mod:`benchmarks.bench_train_step` (UpDn at paper scale: none, HINT fast
  path with all and 10% hinted, HINT without human importance, HINT reference path, Attn.
  Align; median/IQR ms, ratio to none, samples/s, memory, profiler top operators);
* ``vqa_accuracy``: :mod:`benchmarks.bench_vqa_eval` (200,000 questions; ``AnswerScorer``);
* ``hat_scoring``: :mod:`benchmarks.bench_hat` (``proposal_importance``, ``hat_importance``);
* ``data_loading``: the VQA loader of :mod:`benchmarks.bench_loaders` next to the HINT
  training throughput, and their ratio;
* ``easyvqa_cp_loader``: one epoch of the easy-VQA-CP train loader;
* ``importance``: :mod:`benchmarks.bench_importance` (every importance method's forward passes
  and milliseconds per batch, evaluation and training, UpDn at paper scale; ``--quick``: a
  batch of 8, evaluation only);
* ``metrics``: :mod:`benchmarks.bench_metrics` (each grounding metric family on 512
  questions at paper scale, ``--quick``: 128; the faithfulness suite vs a plain evaluation
  pass; ``python -m benchmarks.bench_metrics --questions 10000`` for the issue's figure);
* ``vit``: :mod:`benchmarks.bench_vit` (HINT on the ViT's patch tokens vs a plain step, 16,
  64 and 256 patches, batch 64 on CPU, with the double backward's memory; ``--quick``: 16
  and 64, one round);
* ``targets``: each target with its measured value and whether it is met.

The object is printed on stdout and written to ``benchmarks/results/bench.json``
(``--quick``: ``bench_quick.json``; about a minute instead of about five). Progress goes to
stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, load_average, print_json, run_json

RESULTS = ROOT / "benchmarks" / "results"
HINT_TRAINING = ("hint_fast_all", "hint_fast_10pct")
"""The HINT training configurations whose throughput the loader must outpace."""


def machine_info() -> dict[str, Any]:
    """CPUs, torch (version, threads, CUDA) and the load averages now."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(torch.device("cuda")) if cuda else None,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def _section(name: str, module: str, quick: bool) -> dict[str, Any]:
    """Run one benchmark module in a subprocess; its JSON plus load averages and wall time."""
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    before, start = load_average(), time.perf_counter()
    try:
        result = run_json(module, *(["--quick"] if quick else []))
    except (RuntimeError, ValueError) as error:
        result = {"error": str(error)[-4000:]}
    seconds = round(time.perf_counter() - start, 1)
    print(f"[bench] {name}: {seconds} s", file=sys.stderr, flush=True)
    return {**result, "load_average_1m": [before, load_average()], "wall_s": seconds}


def data_loading(loaders: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """The VQA loader's samples/s next to HINT training's, and their ratios.

    The HINT rate is the fastest of :data:`HINT_TRAINING` (the most demanding for the loader).
    """
    vqa = loaders["vqa"]
    configs = train["configs"]
    hint_name = max(HINT_TRAINING, key=lambda name: configs[name]["samples_per_s"])
    hint = configs[hint_name]["samples_per_s"]
    runs = {key: value for key, value in vqa.items() if key.startswith("workers_")}
    return {
        "loader": vqa,
        "hint_training_config": hint_name,
        "hint_training_device": train["device"],
        "hint_training_batch_size": train["batch_size"],
        "hint_training_samples_per_s": hint,
        "ratio_loader_to_hint": {
            key: round(run["samples_per_s"] / hint, 2) for key, run in runs.items()
        },
        "best_ratio": round(vqa["best_samples_per_s"] / hint, 2),
    }


def _target(description: str, value: float, unit: str, passed: bool) -> dict[str, Any]:
    """One entry of the ``targets`` section."""
    return {"target": description, "measured": value, "unit": unit, "pass": bool(passed)}


def _no_importance_target(result: dict[str, Any]) -> dict[str, Any]:
    """Every objective's step on a batch without human importance within 10% of none."""
    configs = result["train_step"]["configs"]
    ratios = {
        name.removesuffix("_no_importance"): config["ratio_to_none"]
        for name, config in configs.items()
        if name.endswith("_no_importance")
    }
    worst = max(ratios.values(), key=lambda ratio: abs(ratio - 1.0))
    return _target(
        "every objective's step on a batch without human importance within 10% of none",
        worst,
        "x none (worst)",
        abs(worst - 1.0) <= 0.1,
    ) | {"ratios": ratios}


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """Every target with its measured value and pass/fail (skipped where a section failed)."""
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "hint_without_importance_costs_none": lambda: (
            _target(
                "HINT step on a batch without human importance within 10% of none (medians)",
                ratio := result["train_step"]["configs"]["hint_no_importance"]["ratio_to_none"],
                "x none",
                abs(ratio - 1.0) <= 0.1,
            )
            | {
                "ratio_min": result["train_step"]["configs"]["hint_no_importance"][
                    "ratio_min_to_none"
                ]
            }
        ),
        "no_importance_costs_none_every_objective": lambda: _no_importance_target(result),
        "hint_fast_within_1_2x_none": lambda: (
            _target(
                "HINT step (Gradient, fast path, every sample hinted) <= 1.2x none (medians)",
                ratio := result["train_step"]["configs"]["hint_fast_all"]["ratio_to_none"],
                "x none",
                ratio <= 1.2,
            )
            | {"ratio_min": result["train_step"]["configs"]["hint_fast_all"]["ratio_min_to_none"]}
        ),
        "vqa_accuracy_200k_questions": lambda: _target(
            "VQAAccuracy update + compute over 200,000 questions < 10 s",
            seconds := result["vqa_accuracy"]["metric_s"],
            "s",
            seconds < 10.0,
        ),
        "proposal_importance_480x640_36_boxes": lambda: _target(
            "proposal_importance of one 480x640 map against 36 boxes < 1 ms",
            micro := result["hat_scoring"]["proposal_importance"]["median_us"],
            "us",
            micro < 1000.0,
        ),
        "faithfulness_suite_vs_plain_evaluation": lambda: _target(
            "faithfulness suite (importance, suff./comp., curves, FPVG) <= 15x a plain "
            "evaluation pass (totals)",
            ratio := result["metrics"]["faithfulness_suite"]["ratio_to_plain"],
            "x plain",
            ratio <= 15.0,
        ),
        "hint_vit_within_2x_plain": lambda: (
            _target(
                "HINT on the ViT's 64 patch tokens <= 2x a plain step (CPU, batch 64, medians; "
                "importance at the last layer's input, layer=-1)",
                ratio := result["vit"]["configs"]["64"]["ratio_last_layer"],
                "x plain",
                ratio <= 2.0,
            )
            | {
                "ratio_min": result["vit"]["configs"]["64"]["ratio_min_last_layer"],
                "embedding_tokens_ratio": result["vit"]["configs"]["64"]["ratio"],
            }
        ),
        "loader_vs_hint_training": lambda: _target(
            "VQA loader (batch 64, best of 0/2 workers) >= 5x HINT training samples/s",
            ratio := result["data_loading"]["best_ratio"],
            "x",
            ratio >= 5.0,
        ),
    }
    out = {}
    for name, check in checks.items():
        try:
            out[name] = check()
        except (KeyError, TypeError) as error:
            out[name] = {"error": f"section missing or failed: {error!r}", "pass": False}
    return out


def _load_note(result: dict[str, Any]) -> str:
    """A warning when the 1-minute load exceeded the CPU count during some section."""
    cpus = result["machine"]["cpus"] or 1
    loads = [
        load
        for section in result.values()
        if isinstance(section, dict)
        for load in section.get("load_average_1m", [])
    ]
    loads += [result["machine"]["load_average_start"][0], result["machine"]["load_average_end"][0]]
    if max(loads) <= cpus:
        return f"1-minute load stayed <= {cpus} CPUs"
    return (
        f"1-minute load reached {max(loads)} on {cpus} CPUs: other processes competed for the "
        "CPUs, so timings (multi-threaded ones most) are inflated and noisy; prefer ratios "
        "and min_ms"
    )


def run(quick: bool) -> dict[str, Any]:
    """Run every benchmark; the merged JSON object."""
    start = time.perf_counter()
    result: dict[str, Any] = {"quick": quick, "machine": machine_info()}
    result["train_step"] = _section("train_step", "benchmarks.bench_train_step", quick)
    result["vqa_accuracy"] = _section("vqa_accuracy", "benchmarks.bench_vqa_eval", quick)
    result["hat_scoring"] = _section("hat_scoring", "benchmarks.bench_hat", quick)
    loaders = _section("loaders", "benchmarks.bench_loaders", quick)
    if "error" in loaders or "error" in result["train_step"]:
        result["data_loading"] = {"error": loaders.get("error", "train_step failed")}
    else:
        result["data_loading"] = data_loading(loaders, result["train_step"])
    result["data_loading"]["load_average_1m"] = loaders["load_average_1m"]
    result["easyvqa_cp_loader"] = loaders.get("easyvqa_cp", {"error": loaders.get("error")})
    result["importance"] = _section("importance", "benchmarks.bench_importance", quick)
    result["metrics"] = _section("metrics", "benchmarks.bench_metrics", quick)
    result["vit"] = _section("vit", "benchmarks.bench_vit", quick)
    result["targets"] = targets(result)
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"]["note"] = _load_note(result)
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print and write the JSON; 1 if a section failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute instead of five")
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    output = args.output or RESULTS / ("bench_quick.json" if args.quick else "bench.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print_json(result)
    failed = [
        name for name, value in result.items() if isinstance(value, dict) and "error" in value
    ]
    if failed:
        print(f"[bench] failed sections: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
