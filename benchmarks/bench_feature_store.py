"""Benchmark: bottom-up TSV -> HDF5 conversion rate and FeatureStore random-access read rate.

Run from the repository root::

    python -m benchmarks.bench_feature_store [--images 2000] [--boxes 36] [--feature-dim 2048]

It writes a synthetic TSV in exactly the distributed format (2,000 images x 36 x 2048 by
default: ~790 MB) into a temporary folder, then for float32 and float16 stores

* converts it (:func:`hint_lightning.prepare.features.convert_tsv_to_hdf5`): images/s and MB/s
  of TSV read;
* reads ``--reads`` random images (with replacement) through :meth:`FeatureStore.get`: items/s.

Each phase runs in its own subprocess so that its peak RSS is its own: ``peak_rss_mb`` is the
process's ``VmHWM`` (from ``/proc/self/status``; ``ru_maxrss`` where that is missing) at the end
of the phase, ``baseline_rss_mb`` its ``VmRSS`` after the imports (torch, h5py) and before the
work, and ``work_rss_mb`` the difference: the memory the phase itself needed. The store was
just written, so reads come from the page cache: this is the reader's CPU cost, not disk speed.
One JSON object is printed on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import images, memory, run_phase, status_mb
from hint_lightning.prepare.bottom_up_tsv import write_bottom_up_tsv


def _phase_convert(tsv: Path, out: Path, feature_dim: int, float16: bool) -> dict[str, Any]:
    """Convert in this process; stats plus memory."""
    from hint_lightning.prepare.features import convert_tsv_to_hdf5

    baseline = status_mb("VmRSS")
    stats = convert_tsv_to_hdf5(
        [tsv], out, feature_dim=feature_dim, float16=float16, max_boxes=100, progress=False
    )
    stats.pop("path")
    stats["store_mb"] = round(out.stat().st_size / 1e6, 1)
    return {**stats, **memory(baseline)}


def _phase_read(store_path: Path, reads: int, seed: int) -> dict[str, Any]:
    """Random-access ``FeatureStore.get`` in this process; rate plus memory."""
    from hint_lightning.stores.features import FeatureStore

    baseline = status_mb("VmRSS")
    store = FeatureStore(store_path)
    ids = np.random.default_rng(seed).choice(store.image_ids, size=reads).tolist()
    store.get(ids[0])  # opens the handle: not part of the rate
    start = time.perf_counter()
    nbytes = 0
    for image_id in ids:
        features, boxes = store.get(image_id)
        nbytes += features.nbytes + boxes.nbytes
    seconds = time.perf_counter() - start
    result = {
        "reads": reads,
        "seconds": round(seconds, 3),
        "items_per_s": round(reads / seconds, 1),
        "mb_per_s": round(nbytes / 1e6 / seconds, 1),
    }
    return {**result, **memory(baseline)}


def _run_phase(*args: str) -> dict[str, Any]:
    """Run one phase of this script in a fresh interpreter and parse its JSON."""
    return run_phase("benchmarks.bench_feature_store", *args)


def _benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Write the TSV, then convert and read float32 and float16 stores."""
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="bench_feature_store_") as folder:
        tsv = Path(folder) / "trainval_resnet101_faster_rcnn_genome_36.tsv"
        start = time.perf_counter()
        write_bottom_up_tsv(tsv, images(args.images, args.boxes, args.feature_dim, args.seed))
        result: dict[str, Any] = {
            "images": args.images,
            "boxes_per_image": args.boxes,
            "feature_dim": args.feature_dim,
            "tsv_mb": round(tsv.stat().st_size / 1e6, 1),
            "write_tsv_seconds": round(time.perf_counter() - start, 2),
            "convert": {},
            "read": {},
        }
        for name in ("float32", "float16"):
            store = Path(folder) / f"{name}.h5"
            dim = str(args.feature_dim)
            result["convert"][name] = _run_phase("convert", str(tsv), str(store), dim, name)
            result["read"][name] = _run_phase("read", str(store), str(args.reads), str(args.seed))
            store.unlink()
    result["rss"] = "per-phase subprocess: VmHWM at the end, VmRSS after imports, difference"
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        # Other processes may share the CPUs: 1-minute load before and after the benchmark.
        "load_average_1m": [load_before, round(os.getloadavg()[0], 2)],
    }
    return result


def _phase(argv: list[str]) -> dict[str, Any]:
    """Dispatch one subprocess phase: ``convert TSV OUT DIM DTYPE`` or ``read STORE N SEED``."""
    if argv[0] == "convert":
        tsv, out, dim, dtype = argv[1:]
        return _phase_convert(Path(tsv), Path(out), int(dim), dtype == "float16")
    store, reads, seed = argv[1:]
    return _phase_read(Path(store), int(reads), int(seed))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark (or one phase of it) and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--boxes", type=int, default=36)
    parser.add_argument("--feature-dim", type=int, default=2048)
    parser.add_argument("--reads", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    result = _phase(args.phase) if args.phase else _benchmark(args)
    print(json.dumps(result, indent=None if args.phase else 2))


if __name__ == "__main__":
    main()
