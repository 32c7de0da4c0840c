"""Benchmark: human importance of proposals from VQA-HAT maps (what prepare runs per question).

Run from the repository root::

    python -m benchmarks.bench_hat [--quick]

* ``proposal_importance``: one 480x640 float64 attention map (a Gaussian blob) against 36
  random boxes: median microseconds per call (target < 1 ms).
* ``hat_importance``: a question's uint8 VQA-HAT maps (225x300, i.e. 300 wide) scaled to
  [0, 1], resized to a 640x480 image, averaged and scored against 36 boxes: one map (train)
  and three maps (val). Median milliseconds per question, per map, and maps per second; plus
  the median of each stage for three maps (``map_to_unit``, ``resize_map``,
  ``average_attention_maps``, ``proposal_importance`` of the float32 average).

Every call is timed on its own; the map and boxes change between repetitions (a pool of 8).
One JSON object is printed on stdout.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import print_json, summarize

IMAGE_SIZE = (640, 480)
HAT_SIZE = (300, 225)
NUM_BOXES = 36
_POOL = 8


def random_boxes(rng: np.random.Generator, width: int, height: int, count: int) -> np.ndarray:
    """``[count, 4]`` float boxes ``x1, y1, x2, y2`` inside a ``width x height`` image."""
    x = np.sort(rng.uniform(0, width, size=(count, 2)), axis=1)
    y = np.sort(rng.uniform(0, height, size=(count, 2)), axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def blob_map(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A ``[height, width]`` float64 map with one Gaussian blob, like a human attention map."""
    rows, cols = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    sigma = rng.uniform(0.1, 0.3) * min(width, height)
    return np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2))


def hat_maps(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """``count`` uint8 VQA-HAT maps of ``HAT_SIZE`` (width, height)."""
    width, height = HAT_SIZE
    return [np.rint(255 * blob_map(rng, width, height)).astype(np.uint8) for _ in range(count)]


def time_calls(function: Callable[[int], Any], repeats: int) -> list[float]:
    """Seconds of ``function(i)`` for ``i`` in ``range(repeats)``, after 3 untimed calls."""
    for i in range(3):
        function(i)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        function(i)
        times.append(time.perf_counter() - start)
    return times


def bench_proposal_importance(rng: np.random.Generator, repeats: int) -> dict[str, Any]:
    """``proposal_importance`` of a 480x640 map against 36 boxes: microseconds per call."""
    from hint_lightning.data.importance import proposal_importance

    width, height = IMAGE_SIZE
    maps = [blob_map(rng, width, height) for _ in range(_POOL)]
    boxes = [random_boxes(rng, width, height, NUM_BOXES) for _ in range(_POOL)]
    times = time_calls(lambda i: proposal_importance(maps[i % _POOL], boxes[i % _POOL]), repeats)
    stats = summarize(times, 1e6, digits=1)
    return {
        "map": [height, width],
        "boxes": NUM_BOXES,
        "median_us": stats["median"],
        "iqr_us": stats["iqr"],
        "min_us": stats["min"],
        "calls": stats["n"],
    }


def bench_hat_importance(rng: np.random.Generator, repeats: int) -> dict[str, Any]:
    """``hat_importance`` with 1 and 3 maps per question, and its stages for 3 maps."""
    from hint_lightning.data.importance import average_attention_maps, proposal_importance
    from hint_lightning.prepare.vqa_hat import hat_importance, map_to_unit, resize_map

    width, height = IMAGE_SIZE
    questions = [hat_maps(rng, 3) for _ in range(_POOL)]
    boxes = [random_boxes(rng, width, height, NUM_BOXES) for _ in range(_POOL)]
    result: dict[str, Any] = {"hat_map": [HAT_SIZE[1], HAT_SIZE[0]], "image": [height, width]}
    for count, name in ((1, "one_map"), (3, "three_maps")):
        times = time_calls(
            lambda i, n=count: hat_importance(
                questions[i % _POOL][:n], IMAGE_SIZE, boxes[i % _POOL]
            ),
            repeats,
        )
        ms = summarize(times, 1000)
        result[name] = {
            "median_ms_per_question": ms["median"],
            "iqr_ms": ms["iqr"],
            "median_ms_per_map": round(ms["median"] / count, 3),
            "maps_per_s": round(count / (ms["median"] / 1000), 1),
        }
    units = [[map_to_unit(m) for m in q] for q in questions]
    resized = [[resize_map(m, IMAGE_SIZE) for m in q] for q in units]
    averaged = [average_attention_maps(q) for q in resized]
    stages: dict[str, Callable[[int], Any]] = {
        "map_to_unit_x3": lambda i: [map_to_unit(m) for m in questions[i % _POOL]],
        "resize_map_x3": lambda i: [resize_map(m, IMAGE_SIZE) for m in units[i % _POOL]],
        "average_attention_maps": lambda i: average_attention_maps(resized[i % _POOL]),
        "proposal_importance": lambda i: proposal_importance(averaged[i % _POOL], boxes[i % _POOL]),
    }
    result["three_maps_stages_median_ms"] = {
        name: summarize(time_calls(function, repeats), 1000)["median"]
        for name, function in stages.items()
    }
    return result


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """The whole benchmark (``quick``: fewer repetitions)."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    repeats = 50 if quick else 300
    return {
        "proposal_importance": bench_proposal_importance(rng, repeats * 2),
        "hat_importance": bench_hat_importance(rng, repeats),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print_json(run(args.quick, args.seed))


if __name__ == "__main__":
    main()
