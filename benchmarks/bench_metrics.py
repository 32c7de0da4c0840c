"""Benchmark: the grounding metrics at paper scale, against one plain evaluation pass.

Run from the repository root::

    python -m benchmarks.bench_metrics [--quick] [--questions 10000] [--batch-size 64]

An ``UpDnVQA`` with the reference sizes (300-d embeddings, 1024 hidden, 2048 classifier, 3,129
answers, a 20,000-token vocabulary; eval mode) answers batches of 64 questions of 14 tokens
over 36 proposals x 2048 features, on CPU in float32. Per batch, each timed separately:

* ``plain``: one evaluation pass (forward under ``no_grad``, the predicted answer);
* ``importance``: the plain gradient of the predicted answer's softmax probability with
  respect to the features, summed over the feature dimension (forward + backward, autograd);
* ``plausibility``: :class:`~hint_lightning.metrics.Plausibility` (per-question values and
  the state update) against human importance;
* ``sufficiency_comprehensiveness``: :class:`~hint_lightning.metrics.Faithfulness` at 10, 25,
  50% (6 perturbed copies in one batch);
* ``removal_curves``: both orders at 10, 25, 50, 75, 90% (10 copies);
* ``fpvg``: :class:`~hint_lightning.metrics.FPVG` (2 copies).

Perturbations remove proposals with ``drop``; the decision's probability and the unperturbed
prediction come from the plain pass. Reported: seconds per family over all questions, ms per
question, the ratio of each family to ``plain``, and ``faithfulness_suite`` = importance +
sufficiency/comprehensiveness + curves + FPVG (plausibility included in ``all_metrics``) as a
multiple of ``plain``, both from the totals and as the median of per-batch ratios (steadier
when other processes load the CPUs). ``forward_rows_per_question`` counts the perturbed rows
each family sends through the model. ``make bench`` runs 512 questions (``--quick``: 128) and
reports ``at_10000_questions``, the issue's figure, extrapolated linearly from them (the JSON
says ``"extrapolated": true`` and from how many questions); ``--questions 10000`` measures it
(about 10 minutes on 2 CPU cores). One JSON object is printed on stdout.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from benchmarks.bench_train_step import build_net, make_features
from benchmarks.common import machine, print_json

FAMILIES = (
    "plain",
    "importance",
    "plausibility",
    "sufficiency_comprehensiveness",
    "removal_curves",
    "fpvg",
)
SUITE = ("importance", "sufficiency_comprehensiveness", "removal_curves", "fpvg")
"""The faithfulness suite: what a plain pass does not do, plausibility aside."""


def decision_functions(
    net: torch.nn.Module, batch: dict[str, Tensor], answers: Tensor, rows: list[int]
) -> tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]:
    """``forward_fn`` (the predicted answer's probability) and ``predict_fn`` (argmax) of a
    batch, for copy-major perturbed batches; ``rows`` collects the rows of each call."""
    from hint_lightning.importance.replacement import tile_batch

    def logits(proposals: Tensor, mask: Tensor) -> Tensor:
        count = proposals.shape[0]
        rows.append(count)
        boxes = tile_batch(batch["boxes"], count)
        tokens = tile_batch(batch["question_tokens"], count)
        return net(proposals, boxes, tokens, mask).logits

    def forward_fn(proposals: Tensor, mask: Tensor) -> Tensor:
        index = tile_batch(answers, proposals.shape[0]).unsqueeze(1)
        return logits(proposals, mask).softmax(dim=1).gather(1, index).squeeze(1)

    def predict_fn(proposals: Tensor, mask: Tensor) -> Tensor:
        return logits(proposals, mask).argmax(dim=1)

    return forward_fn, predict_fn


def one_batch(
    net: torch.nn.Module, metrics: dict[str, Any], batch: dict[str, Tensor]
) -> tuple[dict[str, float], dict[str, int]]:
    """Every family on one batch: ``({family: seconds}, {family: perturbed rows})``."""
    truth = batch["targets"].argmax(dim=1)
    features, mask = batch["features"], batch["proposal_mask"]
    times: dict[str, float] = {}
    rows: dict[str, int] = {}

    start = time.perf_counter()
    with torch.no_grad():
        out = net(features, batch["boxes"], batch["question_tokens"], mask).logits
        answers = out.argmax(dim=1)
        scores = out.softmax(dim=1).gather(1, answers.unsqueeze(1)).squeeze(1)
    times["plain"] = time.perf_counter() - start

    calls: list[int] = []
    forward_fn, predict_fn = decision_functions(net, batch, answers, calls)
    start = time.perf_counter()
    given = features.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward_fn(given, mask).sum(), given)
    importance = grad.sum(dim=-1)
    times["importance"] = time.perf_counter() - start

    plausibility = metrics["plausibility"]
    start = time.perf_counter()
    plausibility.update(plausibility.per_question(importance, batch["human_importance"], mask))
    times["plausibility"] = time.perf_counter() - start

    for family in ("sufficiency_comprehensiveness", "removal_curves"):
        metric = metrics[family]
        calls.clear()
        start = time.perf_counter()
        metric.update(metric.per_question(forward_fn, features, importance, mask, scores))
        times[family] = time.perf_counter() - start
        rows[family] = sum(calls)

    calls.clear()
    fpvg = metrics["fpvg"]
    start = time.perf_counter()
    values = fpvg.per_question(
        predict_fn, functools.partial(torch.eq, other=truth), features,
        batch["human_importance"], mask, predictions=answers,
    )  # fmt: skip
    fpvg.update(values)
    times["fpvg"] = time.perf_counter() - start
    rows["fpvg"] = sum(calls)
    return times, rows


def run(questions: int, batch_size: int) -> dict[str, Any]:
    """Time every family over ``questions`` questions (after one untimed batch); the JSON."""
    from hint_lightning.metrics import FPVG, Faithfulness, Plausibility

    torch.set_num_threads(os.cpu_count() or 1)
    net = build_net().eval()
    metrics = {
        "plausibility": Plausibility(),
        "sufficiency_comprehensiveness": Faithfulness(curve_fractions=()),
        "removal_curves": Faithfulness(fractions=()),
        "fpvg": FPVG(),
    }
    one_batch(net, metrics, make_features(batch_size, seed=2**31 - 1))  # warm-up, untimed
    seconds = dict.fromkeys(FAMILIES, 0.0)
    rows = dict.fromkeys(FAMILIES, 0)
    ratios: list[float] = []
    done = batches = 0
    while done < questions:
        size = min(batch_size, questions - done)
        times, perturbed = one_batch(net, metrics, make_features(size, seed=batches))
        for family, value in times.items():
            seconds[family] += value
        for family, value in perturbed.items():
            rows[family] += value
        ratios.append(sum(times[f] for f in SUITE) / times["plain"])
        done += size
        batches += 1
    plain = seconds["plain"]
    return {
        "questions": questions,
        "batch_size": batch_size,
        "proposals": 36,
        "feature_dim": 2048,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "families": {
            family: {
                "seconds": round(value, 3),
                "ms_per_question": round(1000 * value / questions, 3),
                "ratio_to_plain": round(value / plain, 2),
                "forward_rows_per_question": round(rows[family] / questions, 2),
            }
            for family, value in seconds.items()
        },
        "faithfulness_suite": {
            "families": list(SUITE),
            "seconds": round(sum(seconds[f] for f in SUITE), 3),
            "ratio_to_plain": round(sum(seconds[f] for f in SUITE) / plain, 2),
            "median_batch_ratio_to_plain": round(statistics.median(ratios), 2),
            "min_batch_ratio_to_plain": round(min(ratios), 2),
        },
        "all_metrics_ratio_to_plain": round(sum(seconds.values()) / plain - 1.0, 2),
        f"at_{PAPER_QUESTIONS}_questions": at_paper_size(seconds, questions),
        "machine": machine(),
    }


PAPER_QUESTIONS = 10_000
"""The issue's figure: the cost of each family on 10,000 questions."""


def at_paper_size(seconds: dict[str, float], questions: int) -> dict[str, Any]:
    """Seconds per family on :data:`PAPER_QUESTIONS` questions: measured when the run had that
    many, else extrapolated linearly from the measured questions (every family costs the same
    per batch of 64, so the time is linear in the number of batches) and marked so."""
    scale = PAPER_QUESTIONS / questions
    suite = sum(seconds[f] for f in SUITE)
    return {
        "questions": PAPER_QUESTIONS,
        "extrapolated": questions != PAPER_QUESTIONS,
        "from_measured_questions": questions,
        "method": "measured"
        if questions == PAPER_QUESTIONS
        else "linear: seconds x "
        f"{PAPER_QUESTIONS} / {questions} measured questions (same batch size)",
        "seconds": {family: round(value * scale, 1) for family, value in seconds.items()},
        "faithfulness_suite_seconds": round(suite * scale, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 questions")
    parser.add_argument("--questions", type=int, default=None, help="default 512 (quick 128)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    questions = args.questions or (128 if args.quick else 512)
    print_json(run(questions, args.batch_size))


if __name__ == "__main__":
    main()
