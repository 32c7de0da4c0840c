"""Benchmark: training data loaders, in samples/s, to set against the training step's rate.

Run from the repository root::

    python -m benchmarks.bench_loaders [--quick]

* ``vqa``: the real VQA DataModule through :mod:`benchmarks.bench_vqa_loader` (its tree
  writer and its per-run subprocess): a float32 prepared tree of 1,000 images (``--quick``:
  200) x 36 x 2048, batch 64, 0 and 2 workers, each iterated for 3 s (``--quick``: 1 s).
* ``easyvqa_cp``: ``EasyVQACPDataModule`` built from ``conf/data/easyvqa_cp.yaml`` (the shipped
  settings; ``data_dir`` a temporary folder): the time to build its store, then two full
  epochs of ``train_dataloader()`` (the first one touches the freshly loaded arrays).

One JSON object is printed on stdout (the store's report goes to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, print_json, run_phase

VQA_BATCH = 64
VQA_WORKERS = (0, 2)


def write_vqa_tree(folder: Path, num_images: int, seed: int = 0) -> Path:
    """A float32 prepared VQA-CP v2 tree of ``num_images`` images x 36 x 2048 under ``folder``.

    Returns:
        Its data directory (``paths.data_dir`` of a ``vqacp_v2`` run).
    """
    from benchmarks.bench_vqa_loader import _write_trees

    return _write_trees(folder, num_images, seed, dtypes=("float32",))["float32"]


def measure_vqa_loader(tree: Path, batch_size: int, workers: int, seconds: float) -> dict[str, Any]:
    """Iterate the tree's shuffled train loader for ``seconds`` in a fresh subprocess.

    Returns:
        :mod:`benchmarks.bench_vqa_loader`'s ``load`` phase: ``samples_per_s``, ``batches``,
        ``seconds`` and memory.
    """
    return run_phase(
        "benchmarks.bench_vqa_loader",
        "load",
        str(tree),
        str(batch_size),
        str(workers),
        "batched",
        str(seconds),
    )


def bench_vqa_loader(num_images: int, seconds: float, seed: int = 0) -> dict[str, Any]:
    """The VQA train loader (float32, batch 64) with 0 and 2 workers, one subprocess each."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_loaders_") as folder:
        tree = write_vqa_tree(Path(folder), num_images, seed)
        write = time.perf_counter() - start
        runs = {
            f"workers_{workers}": measure_vqa_loader(tree, VQA_BATCH, workers, seconds)
            for workers in VQA_WORKERS
        }
    return {
        "images": num_images,
        "dtype": "float32",
        "batch_size": VQA_BATCH,
        "write_tree_s": round(write, 1),
        **runs,
        "best_samples_per_s": max(run["samples_per_s"] for run in runs.values()),
    }


def _epoch(loader: Any) -> dict[str, Any]:
    """One full pass over ``loader``: samples, batches, seconds, samples/s."""
    samples = batches = 0
    start = time.perf_counter()
    for batch in loader:
        samples += len(batch["question_id"])
        batches += 1
    seconds = time.perf_counter() - start
    return {
        "samples": samples,
        "batches": batches,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds, 1),
    }


def bench_easyvqa_loader() -> dict[str, Any]:
    """Build the easy-VQA-CP store in a temporary folder and time two train epochs."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = OmegaConf.load(ROOT / "conf" / "data" / "easyvqa_cp.yaml")
    with tempfile.TemporaryDirectory(prefix="bench_easyvqa_") as folder:
        config.data_dir = folder
        datamodule = instantiate(config)
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            datamodule.prepare_data()
        build = time.perf_counter() - start
        start = time.perf_counter()
        datamodule.setup("fit")
        setup = time.perf_counter() - start
        loader = datamodule.train_dataloader()
        epochs = [_epoch(loader) for _ in range(2)]
    return {
        "batch_size": int(config.batch_size),
        "num_workers": int(config.num_workers),
        "build_store_s": round(build, 1),
        "setup_s": round(setup, 2),
        "epoch_1": epochs[0],
        "epoch_2": epochs[1],
        "samples_per_s": epochs[1]["samples_per_s"],
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """The whole benchmark (``quick``: a smaller VQA tree and shorter runs)."""
    start = time.perf_counter()
    images, seconds = (200, 1.0) if quick else (1000, 3.0)
    return {
        "vqa": bench_vqa_loader(images, seconds, seed),
        "easyvqa_cp": bench_easyvqa_loader(),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller tree, shorter runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print_json(run(args.quick, args.seed))


if __name__ == "__main__":
    main()
