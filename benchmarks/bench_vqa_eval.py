"""Benchmark: official VQA accuracy of 200,000 questions, and the answer scorer of prepare.

Run from the repository root::

    python -m benchmarks.bench_vqa_eval [--quick] [--questions 200000]

1. ``AnswerScorer``: a 3,129-answer vocabulary (the normalized answers of plausible VQA
   annotations from :func:`hint_lightning.prepare.fixture.vqa_files.make_vqa_examples`, padded with
   filler answers) is indexed once (``build_ms``), then every question of a pool (20,000;
   ``--quick``: 2,000) is scored from its 10 raw human answers, as prepare does:
   microseconds per question, and the extrapolated time for VQA v2 train + val (658,111).
2. ``VQAAccuracy``: 200,000 questions drawn from that pool (their sparse scores: 1-4 nonzero
   answers per row) with predictions (60% the best answer, 40% uniform), in batches of 512.
   ``build_scores_s`` is the sampling of the sparse scores; each batch is made dense
   (``[512, 3129]``, as the collate function hands it over; ``densify_s``) and given to
   ``update`` (``update_s``); ``compute`` at the end (``compute_ms``). ``metric_s``, update
   plus compute, is what the target (< 10 s) is about.

One JSON object is printed on stdout.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks.common import print_json

NUM_ANSWERS = 3129
BATCH_SIZE = 512
VQA_V2_TRAINVAL_QUESTIONS = 443_757 + 214_354
_ANSWER_TYPE_INDEX = {"yes/no": 0, "number": 1, "other": 2}


@dataclass
class SparseScores:
    """Official scores of some questions, as a CSR matrix ``[Q, A]`` plus answer types.

    Attributes:
        offsets: ``[Q + 1]`` int64, the nonzeros of row ``q`` are ``offsets[q]:offsets[q+1]``.
        columns: ``[nnz]`` int64 answer indices.
        values: ``[nnz]`` float32 scores in (0, 1].
        answer_type: ``[Q]`` int64.
    """

    offsets: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    answer_type: np.ndarray

    @property
    def num_rows(self) -> int:
        """Q."""
        return len(self.offsets) - 1

    def best(self) -> np.ndarray:
        """``[Q]`` the highest-scoring answer of every row (0 for an empty row)."""
        best = np.zeros(self.num_rows, dtype=np.int64)
        for row in range(self.num_rows):
            start, stop = self.offsets[row], self.offsets[row + 1]
            if stop > start:
                best[row] = self.columns[start + np.argmax(self.values[start:stop])]
        return best

    def take(self, rows: np.ndarray) -> SparseScores:
        """The rows ``rows`` (with repetitions), as a new CSR matrix."""
        counts = np.diff(self.offsets)[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        gather = np.repeat(self.offsets[rows] - offsets[:-1], counts) + np.arange(offsets[-1])
        return SparseScores(
            offsets, self.columns[gather], self.values[gather], self.answer_type[rows]
        )

    def dense(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` as a dense ``[stop - start, A]`` float32 tensor."""
        low, high = self.offsets[start], self.offsets[stop]
        rows = np.repeat(np.arange(stop - start), np.diff(self.offsets[start : stop + 1]))
        out = torch.zeros(stop - start, NUM_ANSWERS)
        out[torch.from_numpy(rows), torch.from_numpy(self.columns[low:high])] = torch.from_numpy(
            self.values[low:high]
        )
        return out


def make_pool(num_questions: int, seed: int) -> tuple[list[list[str]], np.ndarray, tuple]:
    """Human answers and answer types of plausible questions, and a 3,129-answer vocabulary.

    Returns:
        ``(answers, answer_type, vocabulary)``: 10 raw human answers per question, ``[Q]``
        answer-type indices, and the vocabulary (the normalized answers that occur, then
        fillers).
    """
    from hint_lightning.metrics.vqa_accuracy import normalize_answer
    from hint_lightning.prepare.fixture.vqa_files import make_vqa_examples

    images = range(1, num_questions // 5 + 2)
    _, annotations = make_vqa_examples(images, questions_per_image=5, seed=seed)
    annotations = annotations[:num_questions]
    answers = [[a["answer"] for a in item["answers"]] for item in annotations]
    types = np.array([_ANSWER_TYPE_INDEX[item["answer_type"]] for item in annotations])
    seen = dict.fromkeys(normalize_answer(a) for row in answers for a in row)
    vocabulary = [a for a in seen if a][:NUM_ANSWERS]
    vocabulary += [f"filler answer {i}" for i in range(NUM_ANSWERS - len(vocabulary))]
    return answers, types, tuple(vocabulary)


def time_scorer(answers: list[list[str]], vocabulary: tuple[str, ...]) -> tuple[dict, list]:
    """Build an ``AnswerScorer`` and score every question; timings and the scores."""
    from hint_lightning.metrics.vqa_accuracy import AnswerScorer

    start = time.perf_counter()
    scorer = AnswerScorer({answer: i for i, answer in enumerate(vocabulary)})
    build = time.perf_counter() - start
    start = time.perf_counter()
    scores = [scorer(row) for row in answers]
    seconds = time.perf_counter() - start
    per_question = seconds / len(answers)
    return {
        "vocabulary": len(vocabulary),
        "build_ms": round(build * 1000, 1),
        "questions": len(answers),
        "seconds": round(seconds, 3),
        "us_per_question": round(per_question * 1e6, 2),
        "questions_per_s": round(1 / per_question),
        "vqa_v2_trainval_s": round(per_question * VQA_V2_TRAINVAL_QUESTIONS, 1),
    }, scores


def to_sparse(scores: list[dict[int, float]], answer_type: np.ndarray) -> SparseScores:
    """The scorer's ``{index: score}`` rows as a :class:`SparseScores`."""
    counts = np.array([len(row) for row in scores], dtype=np.int64)
    offsets = np.zeros(len(scores) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    columns = np.fromiter((k for row in scores for k in row), np.int64, int(offsets[-1]))
    values = np.fromiter((v for row in scores for v in row.values()), np.float32, int(offsets[-1]))
    return SparseScores(offsets, columns, values, answer_type.astype(np.int64))


def time_metric(scores: SparseScores, predictions: np.ndarray) -> dict[str, Any]:
    """``VQAAccuracy`` over all rows in batches of 512; densify, update and compute times."""
    from hint_lightning.metrics.vqa_accuracy import VQAAccuracy

    metric = VQAAccuracy()
    preds = torch.from_numpy(predictions)
    types = torch.from_numpy(scores.answer_type)
    densify = update = 0.0
    for start in range(0, scores.num_rows, BATCH_SIZE):
        stop = min(start + BATCH_SIZE, scores.num_rows)
        begin = time.perf_counter()
        batch = scores.dense(start, stop)
        middle = time.perf_counter()
        metric.update(preds[start:stop], batch, types[start:stop])
        update += time.perf_counter() - middle
        densify += middle - begin
    begin = time.perf_counter()
    result = metric.compute()
    compute = time.perf_counter() - begin
    return {
        "densify_s": round(densify, 3),
        "update_s": round(update, 3),
        "compute_ms": round(compute * 1000, 3),
        "metric_s": round(update + compute, 3),
        "total_s": round(densify + update + compute, 3),
        "questions_per_s": round(scores.num_rows / (update + compute)),
        "accuracy": {name: round(float(value), 2) for name, value in result.items()},
    }


def run(quick: bool = False, questions: int = 200_000, seed: int = 0) -> dict[str, Any]:
    """The whole benchmark (``quick``: a 2,000-question scorer pool instead of 20,000)."""
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    answers, types, vocabulary = make_pool(2_000 if quick else 20_000, seed)
    scorer, pool_scores = time_scorer(answers, vocabulary)
    pool = to_sparse(pool_scores, types)
    rng = np.random.default_rng(seed)
    begin = time.perf_counter()
    scores = pool.take(rng.integers(0, pool.num_rows, size=questions))
    build = time.perf_counter() - begin
    best = scores.best()
    random = rng.integers(0, NUM_ANSWERS, size=questions)
    predictions = np.where(rng.random(questions) < 0.6, best, random)
    nonzero = np.diff(scores.offsets)
    metric = time_metric(scores, predictions)
    return {
        "answers": NUM_ANSWERS,
        "questions": questions,
        "batch_size": BATCH_SIZE,
        "nonzero_per_question": {
            "mean": round(float(nonzero.mean()), 2),
            "min": int(nonzero.min()),
            "max": int(nonzero.max()),
        },
        "build_scores_s": round(build, 3),
        **metric,
        "answer_scorer": scorer,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller scorer pool")
    parser.add_argument("--questions", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print_json(run(args.quick, args.questions, args.seed))


if __name__ == "__main__":
    main()
