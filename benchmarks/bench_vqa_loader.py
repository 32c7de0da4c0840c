"""Benchmark: VQADataModule train-loader throughput (samples/s) and peak memory.

Run from the repository root::

    python -m benchmarks.bench_vqa_loader [--images 2000] [--seconds 3]

It writes, into a temporary folder, a prepared VQA-CP v2 tree with the real writers: a
feature store of ``--images`` images x 36 proposals x 2048 features (float32, ~590 MB, and a
float16 copy, ~295 MB), split stores of 5 questions per image (train: 90%, test: 10%) and
importance stores with VQA-HAT maps for 5% of the questions. Then, for each configuration
(feature dtype x batch size 64 / 512 x 0 / 2 workers), a fresh subprocess builds the
DataModule and iterates its shuffled train loader for ``--seconds`` after two warm-up
batches (which include starting the workers): ``samples_per_s``.

``mode``: ``"batched"`` is the DataModule as is (``VQASplitDataset.__getitems__`` builds the
batch with one HDF5 read per image); ``"items"`` is the baseline it replaces (per-item
``__getitem__`` and :class:`~hint_lightning.data.collate.VQACollate`), measured for float32.

Memory (MB): ``peak_rss_mb`` is the main process's ``VmHWM``, ``baseline_rss_mb`` its
``VmRSS`` after the imports, ``work_rss_mb`` the difference, and ``worker_peak_rss_mb`` the
largest peak RSS of a worker process (``RUSAGE_CHILDREN``, after the workers exited). Batches
from workers arrive in shared memory, counted in the RSS of the process that touched them.
The store was just written, so reads come from the page cache: this is the loader's CPU cost,
not disk speed. The loop only receives the batches (no model, no copy to a device). One JSON
object is printed on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import images, memory, run_phase, status_mb

_QUESTIONS_PER_IMAGE = 5
_BATCH_SIZES = (64, 512)
_WORKERS = (0, 2)


def _write_questions(data_dir: Path, num_images: int, seed: int) -> None:
    """Split stores, vocabularies and importance stores of a VQA-CP v2 tree.

    The feature store ``prepared/features/trainval_36.h5`` must exist.
    """
    from hint_lightning.prepare.fixture.vqa_files import (
        make_hat_maps,
        make_vqa_examples,
        write_hat_zip,
    )
    from hint_lightning.prepare.vqa_hat import write_importance_store
    from hint_lightning.prepare.vqa_questions import build_answer_vocab, write_split_store
    from hint_lightning.prepare.vqa_raw import join
    from hint_lightning.stores.features import FeatureStore
    from hint_lightning.text.question_types import load_question_types
    from hint_lightning.text.tokenize import build_token_vocab, tokenize
    from hint_lightning.utils.io import write_json

    folder = data_dir / "prepared" / "vqa" / "vqacp_v2"
    questions, annotations = make_vqa_examples(
        range(1, num_images + 1), questions_per_image=_QUESTIONS_PER_IMAGE, seed=seed
    )
    entries = join(questions, annotations, "questions.json", "annotations.json")
    answers = build_answer_vocab(entries, min_count=1)
    tokens = build_token_vocab(tokenize(e["question"]) for e in entries)
    write_json(folder / "answers.json", list(answers))
    write_json(folder / "tokens.json", list(tokens))
    hat = write_hat_zip(
        data_dir / "raw" / "vqahat_train.zip",
        make_hat_maps([e["question_id"] for e in entries[::20]], seed=seed),
    )
    splits = {"train": [e for i, e in enumerate(entries) if i % 10], "test": entries[::10]}
    with FeatureStore(data_dir / "prepared" / "features" / "trainval_36.h5") as store:
        for split, split_entries in splits.items():
            write_split_store(
                folder / f"{split}.h5",
                split_entries,
                answers=answers,
                token_index={t: i for i, t in enumerate(tokens)},
                question_types=load_question_types(),
                dataset="vqacp_v2",
                split=split,
                feature_store_name="trainval_36",
                sources=[],
                progress=False,
            )
            write_importance_store(
                folder / f"{split}_importance.h5",
                folder / f"{split}.h5",
                [hat],
                store,
                progress=False,
            )


def _write_trees(
    folder: Path, num_images: int, seed: int, dtypes: tuple[str, ...] = ("float32", "float16")
) -> dict[str, Path]:
    """A prepared tree per feature dtype (``float32``, ``float16``) under ``folder``."""
    from hint_lightning.prepare.bottom_up_tsv import write_bottom_up_tsv
    from hint_lightning.prepare.features import convert_tsv_to_hdf5

    tsv = folder / "trainval_resnet101_faster_rcnn_genome_36.tsv"
    write_bottom_up_tsv(tsv, images(num_images, 36, 2048, seed))
    trees = {}
    for name in dtypes:
        data_dir = folder / name
        store = data_dir / "prepared" / "features" / "trainval_36.h5"
        convert_tsv_to_hdf5([tsv], store, float16=name == "float16", progress=False)
        _write_questions(data_dir, num_images, seed)
        trees[name] = data_dir
    tsv.unlink()
    return trees


def _items_only(loader: Any) -> Any:
    """The same DataLoader, but fetching items one by one and collating them."""
    from torch.utils.data import DataLoader, Dataset

    dataset = loader.dataset

    class ItemsOnly(Dataset):
        """``__getitem__`` and ``__len__`` of the dataset, without ``__getitems__``."""

        def __len__(self) -> int:
            return len(dataset)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return dataset[index]

    return DataLoader(
        ItemsOnly(),
        batch_size=loader.batch_size,
        shuffle=True,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        persistent_workers=loader.persistent_workers,
    )


def _phase_load(data_dir: Path, batch_size: int, workers: int, mode: str, seconds: float) -> dict:
    """Iterate the train loader in this process; rate plus memory."""
    import torch

    from hint_lightning.data.vqa_datamodule import VQADataModule

    baseline = status_mb("VmRSS")
    dm = VQADataModule(str(data_dir), batch_size=batch_size, num_workers=workers)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    if mode == "items":
        loader = _items_only(loader)
    iterator = iter(loader)
    for _ in range(2):
        next(iterator)
    samples, batches, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or batches < 3:
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        assert batch["features"].dtype == torch.float32
        samples += len(batch["question_id"])
        batches += 1
    elapsed = time.perf_counter() - start
    del iterator, loader  # shuts the (persistent) workers down
    dm.teardown("fit")
    result = {
        "samples_per_s": round(samples / elapsed, 1),
        "batches": batches,
        "seconds": round(elapsed, 2),
        **memory(baseline),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        if workers
        else None,
    }
    return result


def _run_phase(*args: str) -> dict[str, Any]:
    """Run one phase of this script in a fresh interpreter and parse its JSON."""
    return run_phase("benchmarks.bench_vqa_loader", *args)


def _configurations() -> list[tuple[str, int, int, str]]:
    """``(dtype, batch size, workers, mode)`` of every measured configuration."""
    batched = [
        (dtype, batch, workers, "batched")
        for dtype in ("float32", "float16")
        for batch in _BATCH_SIZES
        for workers in _WORKERS
    ]
    items = [("float32", batch, workers, "items") for batch in _BATCH_SIZES for workers in _WORKERS]
    return batched + items


def _benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Write the trees, then measure every configuration in its own subprocess."""
    load_before = round(os.getloadavg()[0], 2)
    start = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_vqa_loader_") as folder:
        trees = _write_trees(Path(folder), args.images, args.seed)
        write_seconds = round(time.perf_counter() - start, 1)
        for dtype, batch, workers, mode in _configurations():
            config = {"dtype": dtype, "batch_size": batch, "workers": workers, "mode": mode}
            phase = ("load", str(trees[dtype]), str(batch), str(workers), mode, str(args.seconds))
            runs.append({**config, **_run_phase(*phase)})
    return {
        "images": args.images,
        "boxes_per_image": 36,
        "feature_dim": 2048,
        "train_questions": args.images * _QUESTIONS_PER_IMAGE * 9 // 10,
        "write_seconds": write_seconds,
        "runs": runs,
        "rss": "per-run subprocess: VmHWM at the end, VmRSS after imports, difference; workers: "
        "largest ru_maxrss of the exited workers",
        "total_seconds": round(time.perf_counter() - start, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m": [load_before, round(os.getloadavg()[0], 2)],
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark (or one phase of it) and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        _, data_dir, batch, workers, mode, seconds = args.phase
        result = _phase_load(Path(data_dir), int(batch), int(workers), mode, float(seconds))
    else:
        result = _benchmark(args)
    print(json.dumps(result, indent=None if args.phase else 2))


if __name__ == "__main__":
    main()
