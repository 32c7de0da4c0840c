"""Benchmark: what each importance method costs per batch, at paper scale.

Run from the repository root::

    python -m benchmarks.bench_importance [--quick] [--batch-size B] [--methods a,b]

The forward function is the shipped ``UpDnVQA`` with the reference sizes (300-d embeddings,
1024 hidden, 2048 classifier, 3,129 answers, a 20,000-token vocabulary) in eval mode, wrapped
in a :class:`~hint_lightning.importance.DecisionFunction` as a module would wrap it (plain
forward, the exact ``proposal_shift`` path, the attention): the decision is each sample's
answer logit, on a batch of 64 samples x 36 proposals x 2048 features with 14-token questions,
float32 on CPU (CUDA when available).

Every method of :data:`hint_lightning.importance.METHODS` runs with its defaults (those of
``conf/importance/``), except that the perturbation methods use ``replacement="zeros"``:
today's UpDn has no answer for an empty proposal set, which ``drop`` needs for keep-one-in and
KernelSHAP (the replacement changes only a ``torch.where`` on the input, not the model's cost).
For each method: ``forward_passes`` per sample and rows per batch, and the median (IQR, min)
milliseconds of

* ``eval``: ``attribute(..., create_graph=False)`` (evaluation, pictures, metrics);
* ``train``: ``attribute(..., create_graph=True)`` and the backward pass of a loss on the
  importance into the parameters (what a grounding objective adds to a training step);

each timed right after a plain reference call: ``plain_forward_ms`` (one forward pass of the
batch, no gradient) for ``eval`` and ``plain_step_ms`` (one forward and backward of a loss on
the logits) for ``train``; ``*_ratio_to_plain`` is the median of the paired ratios, steadier
than the times when other processes load the CPUs. After 2 warm-up calls of each plain pass
and one of each method and mode (the first call pays one-time costs: 4x the steady time for
the double backward of ``gradient``), each method and mode is timed twice (``--repeats``;
``--quick``: once). ``--quick`` also takes a batch of 8 and ``eval`` only: a smoke check of
every method, not the paper-scale numbers. One JSON object is printed on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from benchmarks.common import load_average, machine, print_json, summarize
from hint_lightning.importance import METHODS, DecisionFunction, get_method
from hint_lightning.importance.replacement import tile_batch

NUM_PROPOSALS = 36
FEATURE_DIM = 2048
QUESTION_LENGTH = 14
NUM_ANSWERS = 3129
VOCAB_SIZE = 20_000
BATCH_SIZE = 64
QUICK_BATCH_SIZE = 8
PERTURBATION = ("leave_one_out", "keep_one_in", "kernel_shap")
"""Methods benchmarked with ``replacement="zeros"`` (see the module docstring)."""


def build_net(seed: int = 0) -> torch.nn.Module:
    """``UpDnVQA`` with the reference sizes, in eval mode."""
    from hint_lightning.models.updn_vqa import UpDnVQA

    torch.manual_seed(seed)
    return UpDnVQA(
        vocab_size=VOCAB_SIZE,
        num_answers=NUM_ANSWERS,
        feature_dim=FEATURE_DIM,
        embedding_dim=300,
        hidden_dim=1024,
        classifier_dim=2048,
    ).eval()


def make_inputs(batch_size: int, device: torch.device, seed: int = 0) -> dict[str, Tensor]:
    """Random features, boxes, question tokens and answers for one batch."""
    generator = torch.Generator().manual_seed(seed)
    boxes = torch.rand(batch_size, NUM_PROPOSALS, 4, generator=generator)
    inputs = {
        "features": torch.rand(batch_size, NUM_PROPOSALS, FEATURE_DIM, generator=generator),
        "boxes": torch.cat([boxes[..., :2] / 2, 0.5 + boxes[..., 2:] / 2], dim=-1),
        "tokens": torch.randint(1, VOCAB_SIZE, (batch_size, QUESTION_LENGTH), generator=generator),
        "answers": torch.randint(0, NUM_ANSWERS, (batch_size,), generator=generator),
    }
    return {key: value.to(device) for key, value in inputs.items()}


def decision_function(net: torch.nn.Module, inputs: dict[str, Tensor]) -> DecisionFunction:
    """The answer logit of each sample, with the shift path and the attention (copy-major)."""

    def run(proposals: Tensor, mask: Tensor, shift: Tensor | None = None) -> Any:
        rows = proposals.shape[0]
        boxes, tokens = tile_batch(inputs["boxes"], rows), tile_batch(inputs["tokens"], rows)
        return net(proposals, boxes, tokens, mask, proposal_shift=shift)

    def score(output: Any, rows: int) -> Tensor:
        answers = tile_batch(inputs["answers"], rows).unsqueeze(1)
        return output.logits.gather(1, answers).squeeze(1)

    return DecisionFunction(
        lambda p, m: score(run(p, m), p.shape[0]),
        with_shift=lambda p, m, t: score(run(p, m, t), p.shape[0]),
        attention=lambda p, m: run(p, m).attention,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(function: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list:
    """Seconds of each of ``repeats`` calls of ``function``, after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        function()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def time_paired(
    function: Callable[[], Any], reference: Callable[[], Any], device: torch.device, repeats: int
) -> tuple[list[float], list[float]]:
    """Seconds of ``repeats`` calls of ``function``, each right after a call of ``reference``.

    Pairing keeps each ratio's two times close together, so that a load that drifts over the
    run (other processes on the CPUs) shifts both.
    """
    seconds, reference_seconds = [], []
    for _ in range(repeats):
        reference_seconds += time_it(reference, device, 0, 1)
        seconds += time_it(function, device, 0, 1)
    return seconds, reference_seconds


def run(
    quick: bool,
    batch_size: int | None = None,
    methods: list[str] | None = None,
    modes: tuple[str, ...] | None = None,
    repeats: int | None = None,
) -> dict[str, Any]:
    """Time every method; the JSON object."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch_size = batch_size or (QUICK_BATCH_SIZE if quick else BATCH_SIZE)
    modes = modes or (("eval",) if quick else ("eval", "train"))
    repeats = repeats or (1 if quick else 2)
    net = build_net().to(device)
    inputs = make_inputs(batch_size, device)
    decision = decision_function(net, inputs)
    proposals = inputs["features"]
    mask = torch.ones(batch_size, NUM_PROPOSALS, dtype=torch.bool, device=device)
    parameters = [p for p in net.parameters() if p.requires_grad]

    def plain_forward() -> None:
        with torch.no_grad():
            decision(proposals, mask)

    def plain_step() -> None:
        loss = decision(proposals, mask).pow(2).sum()
        torch.autograd.grad(loss, parameters, allow_unused=True)

    plain = {"eval": plain_forward, "train": plain_step}
    plain_seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode in modes:
        time_it(plain[mode], device, 2, 0)  # warm-up (also of the kernels the methods use)
    results: dict[str, Any] = {}
    for name in methods or list(METHODS):
        settings = {"replacement": "zeros"} if name in PERTURBATION else {}
        method = get_method(name, **settings)
        try:
            method.check(decision)
        except ValueError as error:  # a transformer method on UpDn: see benchmarks.bench_vit
            results[name] = {"method": repr(method), "skipped": str(error)}
            continue
        entry: dict[str, Any] = {
            "method": repr(method),
            "forward_passes": method.forward_passes(NUM_PROPOSALS),
            "rows_per_batch": method.forward_passes(NUM_PROPOSALS) * batch_size,
        }

        def evaluate(method: Any = method) -> None:
            method.attribute(decision, proposals, mask, create_graph=False)

        def train(method: Any = method) -> None:
            importance = method.attribute(decision, proposals, mask, create_graph=True)
            torch.autograd.grad(importance.pow(2).sum(), parameters, allow_unused=True)

        for mode, function in (("eval", evaluate), ("train", train)):
            if mode not in modes:
                continue
            print(f"[bench_importance] {name} {mode}", flush=True, file=sys.stderr)
            time_it(function, device, 1, 0)  # warm-up: the first call pays one-time costs
            seconds, reference = time_paired(function, plain[mode], device, repeats)
            plain_seconds[mode] += reference
            ratios = [time / base for time, base in zip(seconds, reference, strict=True)]
            entry[f"{mode}_ms"] = summarize(seconds, 1000)
            entry[f"{mode}_ratio_to_plain"] = summarize(ratios, digits=2)["median"]
        entry["load_average_1m"] = load_average()
        results[name] = entry
    return {
        "device": str(device),
        "batch_size": batch_size,
        "num_proposals": NUM_PROPOSALS,
        "feature_dim": FEATURE_DIM,
        "modes": list(modes),
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        **{
            f"plain_{'forward' if mode == 'eval' else 'step'}_ms": summarize(times, 1000)
            for mode, times in plain_seconds.items()
        },
        "methods": results,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8, eval only, 1 repetition")
    parser.add_argument("--batch-size", type=int, help="override the batch size")
    parser.add_argument("--methods", help="comma-separated method names (default: all)")
    parser.add_argument("--modes", help="comma-separated: eval, train (default: both)")
    parser.add_argument("--repeats", type=int, help="timed calls per method and mode")
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's; 1 is steadier on busy CPUs)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods.split(",") if args.methods else None
    modes = tuple(args.modes.split(",")) if args.modes else None
    print_json(run(args.quick, args.batch_size, methods, modes, args.repeats))


if __name__ == "__main__":
    main()
