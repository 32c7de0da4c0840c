"""Benchmark: one full UpDn training step at paper scale, plain and with grounding objectives.

Run from the repository root::

    python -m benchmarks.bench_train_step [--quick]

The measured code is the shipped code: a real :class:`~hint_lightning.modules.vqa_module.VQAModule`
(``self.log`` replaced by a no-op, since there is no Trainer) around an ``UpDnVQA`` with the
reference sizes (300-d embeddings, 1024 hidden, 2048 classifier, 3,129 answers, a 20,000-token
vocabulary), on batches of 36 proposals x 2048 features and 14-token questions. One step is
``zero_grad``, ``training_step`` (forward, task loss, grounding term), ``backward`` and an
Adamax ``step``: what Lightning's automatic optimization runs. Batch 64 in float32 on CPU; 512
under ``torch.autocast(bfloat16)`` when CUDA is available. :func:`run` also takes the device,
the batch size, the precision and the configurations explicitly (``make gpu-check`` measures
bf16 and fp32 at batch 512 through it).

Configurations (one shared network and optimizer, one ``VQAModule`` per configuration; the
objectives with their YAML defaults, RRR with ``threshold=0.5``):

* ``none``: no objective (plain UpDn);
* ``hint_fast_all``: HINT, every sample hinted, network importance through the proposal shift
  (``Gradient``, the default training method, from the step's own forward pass);
* ``hint_fast_10pct``: the same with 10% of the samples hinted (VQA-HAT covers about 9%);
* ``hint_no_importance``: HINT on a batch without any human importance (must cost ``none``);
* ``hint_reference_all``: HINT, every sample hinted, gradient w.r.t. the ``[B, N, D]`` features;
* ``attn_align``: attention alignment (KL), every sample hinted;
* ``rrr_all``, ``scr_all``, ``visfis_all``, ``energy_all``: each other objective, every sample
  hinted (SCR: 4 more gradients of the same pass; VisFIS: one extra forward of ``2B`` rows);
* ``hint_rrr_all``: HINT and RRR together (one shared importance);
* ``<objective>_no_importance``: each objective on a batch without human importance (every one
  must cost ``none``: no probe, no extra pass, no double backward).

They are timed in one process, round-robin (each round visits every configuration, starting
one further each round), after warm-up rounds: median and IQR milliseconds, the ratio of each
median to ``none``'s (``ratio_min_to_none``: of the fastest steps, steadier when other
processes load the CPUs), samples/s. Peak memory: on CPU, each configuration runs in a fresh
subprocess (``--quick``: one subprocess for all, the peak RSS reset between them), with
``MALLOC_MMAP_THRESHOLD_`` fixed so that freed tensors go back to the system and RSS follows
live memory: ``work_rss_mb`` is the peak RSS over the steps above the RSS before the
first step (it includes the gradients and the optimizer state allocated by that step) and
``step_rss_mb`` the peak of later steps above the RSS between steps (activations, autograd
graph, importance graph). On CUDA: ``torch.cuda.max_memory_allocated`` above the allocation
before a step. Finally ``torch.profiler`` records one step of ``none``, ``hint_fast_all`` and
``hint_reference_all`` (``--quick``: ``hint_fast_all`` only): the top operators by self CPU
time. ``--quick`` also runs fewer rounds (1 warm-up, 2 timed) and one step per memory run.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from benchmarks.common import print_json, reset_peak_rss, run_phase, status_mb, summarize

NUM_PROPOSALS = 36
FEATURE_DIM = 2048
QUESTION_LENGTH = 14
NUM_ANSWERS = 3129
VOCAB_SIZE = 20_000
CPU_BATCH = 64
CUDA_BATCH = 512
TOP_OPERATORS = 8
PROFILED = ("none", "hint_fast_all", "hint_reference_all")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
"""Precisions by name: ``float32`` runs as is, ``bfloat16`` under ``torch.autocast``."""
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


@dataclass(frozen=True)
class Config:
    """One measured training configuration.

    Attributes:
        objectives: the objectives' names (``conf/objective``); empty: plain training.
        fast_importance: ``VQAModule(fast_importance=...)``.
        hinted_fraction: share of the batch with human importance.
    """

    objectives: tuple[str, ...]
    fast_importance: bool
    hinted_fraction: float


OBJECTIVES = ("hint", "attn_align", "rrr", "scr", "visfis", "energy")
"""Every objective that ships, each measured on a batch without human importance."""

CONFIGS: dict[str, Config] = {
    "none": Config((), True, 0.1),
    "hint_fast_all": Config(("hint",), True, 1.0),
    "hint_fast_10pct": Config(("hint",), True, 0.1),
    "hint_no_importance": Config(("hint",), True, 0.0),
    "hint_reference_all": Config(("hint",), False, 1.0),
    "attn_align": Config(("attn_align",), True, 1.0),
    **{f"{name}_all": Config((name,), True, 1.0) for name in ("rrr", "scr", "visfis", "energy")},
    "hint_rrr_all": Config(("hint", "rrr"), True, 1.0),
    **{f"{name}_no_importance": Config((name,), True, 0.0) for name in OBJECTIVES[1:]},
}
"""The measured configurations, by name."""


def device_and_batch_size() -> tuple[torch.device, int]:
    """CUDA with batch 512 when available, else CPU with batch 64."""
    if torch.cuda.is_available():
        return torch.device("cuda"), CUDA_BATCH
    return torch.device("cpu"), CPU_BATCH


def _no_log(*args: Any, **kwargs: Any) -> None:
    """Stand-in for ``LightningModule.log`` outside a Trainer."""


def build_net(seed: int = 0) -> torch.nn.Module:
    """``UpDnVQA`` with the reference sizes (dropouts on, as in training)."""
    from hint_lightning.models.updn_vqa import UpDnVQA

    torch.manual_seed(seed)
    return UpDnVQA(
        vocab_size=VOCAB_SIZE,
        num_answers=NUM_ANSWERS,
        feature_dim=FEATURE_DIM,
        embedding_dim=300,
        hidden_dim=1024,
        classifier_dim=2048,
    )


def _objectives(names: tuple[str, ...]) -> dict[str, torch.nn.Module] | None:
    """The grounding objectives of a configuration, with their default settings."""
    from hint_lightning.objectives.attn_align import AttnAlignObjective
    from hint_lightning.objectives.energy import EnergyObjective
    from hint_lightning.objectives.hint import HintObjective
    from hint_lightning.objectives.rrr import RRRObjective
    from hint_lightning.objectives.scr_objective import SCRObjective
    from hint_lightning.objectives.visfis_objective import VisFISObjective

    builders = {
        "hint": HintObjective,
        "attn_align": AttnAlignObjective,
        "rrr": functools.partial(RRRObjective, threshold=0.5),
        "scr": SCRObjective,
        "visfis": VisFISObjective,
        "energy": EnergyObjective,
    }
    return {name: builders[name](weight=1.0) for name in names} or None


def build_module(config: Config, net: torch.nn.Module) -> Any:
    """A ``VQAModule`` around ``net`` for one configuration (``log`` is a no-op).

    Args:
        config: the configuration.
        net: the (shared) network.
    """
    from hint_lightning.data.batch import VQADataInfo
    from hint_lightning.modules.vqa_module import VQAModule

    info = VQADataInfo(
        answers=tuple(f"answer{i}" for i in range(NUM_ANSWERS)),
        tokens=tuple(f"token{i}" for i in range(VOCAB_SIZE)),
        feature_dim=FEATURE_DIM,
        max_proposals=NUM_PROPOSALS,
        name="bench",
    )
    module = VQAModule(
        net,
        info,
        functools.partial(torch.optim.Adamax, lr=0.002),
        objective=_objectives(config.objectives),
        fast_importance=config.fast_importance,
    )
    module.log = _no_log
    return module


def make_features(batch_size: int, seed: int = 0) -> dict[str, Tensor]:
    """The parts of a batch that every configuration shares (features, questions, answers).

    Features are non-negative like bottom-up features; questions have 4-14 tokens; every
    question has 1-4 candidate answers with soft scores in {0.3, 0.6, 0.9, 1}.
    """
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, QUESTION_LENGTH + 1, (batch_size,), generator=generator)
    tokens = torch.randint(1, VOCAB_SIZE, (batch_size, QUESTION_LENGTH), generator=generator)
    tokens[torch.arange(QUESTION_LENGTH)[None, :] >= lengths[:, None]] = 0
    targets = torch.zeros(batch_size, NUM_ANSWERS)
    levels = torch.tensor([0.3, 0.6, 0.9, 1.0])
    for row in range(batch_size):
        count = int(torch.randint(1, 5, (), generator=generator))
        answers = torch.randint(0, NUM_ANSWERS, (count,), generator=generator)
        targets[row, answers] = levels[torch.randint(0, 4, (count,), generator=generator)]
    return {
        "features": torch.rand(batch_size, NUM_PROPOSALS, FEATURE_DIM, generator=generator),
        "boxes": torch.rand(batch_size, NUM_PROPOSALS, 4, generator=generator).sort(-1).values,
        "proposal_mask": torch.ones(batch_size, NUM_PROPOSALS, dtype=torch.bool),
        "question_tokens": tokens,
        "targets": targets,
        "answer_scores": targets.clone(),
        "answer_type": torch.randint(0, 3, (batch_size,), generator=generator),
        "human_importance": torch.rand(batch_size, NUM_PROPOSALS, generator=generator),
        "question_id": torch.arange(batch_size),
    }


def make_batch(
    shared: dict[str, Tensor], hinted_fraction: float, device: torch.device
) -> dict[str, Tensor]:
    """A batch with the first ``round(hinted_fraction * B)`` samples hinted, on ``device``.

    Samples without human importance carry zeros, as the collate function gives them.
    """
    batch_size = shared["features"].shape[0]
    has_importance = torch.arange(batch_size) < round(hinted_fraction * batch_size)
    batch = dict(shared)
    batch["has_importance"] = has_importance
    batch["human_importance"] = shared["human_importance"] * has_importance[:, None]
    return {key: value.to(device) for key, value in batch.items()}


def train_step(
    module: Any,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    autocast: Callable[[], AbstractContextManager[Any]],
) -> Tensor:
    """One full step: ``zero_grad``, ``training_step``, ``backward``, ``step``.

    Returns:
        The step's loss, detached (a scalar on the device: reading it would synchronize).
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        loss = module.training_step(batch, 0)
    loss.backward()
    optimizer.step()
    return loss.detach()


def default_dtype(device: torch.device) -> torch.dtype:
    """The benchmark's precision when none is given: bf16 autocast on CUDA, float32 on CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def autocast_for(
    device: torch.device, dtype: torch.dtype | None = None
) -> Callable[[], AbstractContextManager[Any]]:
    """``torch.autocast(device, bfloat16)`` for bf16, nothing for float32.

    Args:
        device: where the step runs.
        dtype: ``torch.bfloat16`` or ``torch.float32``; None: :func:`default_dtype`.
    """
    dtype = dtype or default_dtype(device)
    if dtype == torch.float32:
        return nullcontext
    return functools.partial(torch.autocast, device.type, dtype=dtype)


def dtype_name(dtype: torch.dtype) -> str:
    """``"bfloat16-autocast"`` or ``"float32"`` (the JSON's ``dtype``)."""
    return "float32" if dtype == torch.float32 else f"{str(dtype).removeprefix('torch.')}-autocast"


def _sync(device: torch.device) -> None:
    """Wait for the device (CUDA) before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Bench:
    """Everything the timing loop needs: modules, batches, the shared optimizer.

    ``losses`` collects every step's loss (detached, on the device) per configuration, so that
    a caller can check them (e.g. for NaN/inf under bf16) after the timing.
    """

    device: torch.device
    batch_size: int
    modules: dict[str, Any]
    batches: dict[str, dict[str, Tensor]]
    optimizer: torch.optim.Optimizer
    autocast: Callable[[], AbstractContextManager[Any]]
    losses: dict[str, list[Tensor]] = field(default_factory=dict)

    def step(self, name: str) -> float:
        """Run one step of configuration ``name``; its wall-clock seconds."""
        _sync(self.device)
        start = time.perf_counter()
        loss = train_step(self.modules[name], self.optimizer, self.batches[name], self.autocast)
        _sync(self.device)
        seconds = time.perf_counter() - start
        self.losses.setdefault(name, []).append(loss)
        return seconds


def setup(
    names: list[str], batch_size: int, device: torch.device, dtype: torch.dtype | None = None
) -> Bench:
    """Build the shared network, optimizer and shared batch parts, and one module per name.

    Args:
        names: configurations (keys of :data:`CONFIGS`).
        batch_size: samples per step.
        device: where the network and the batches live.
        dtype: ``torch.float32`` or ``torch.bfloat16`` (autocast); None: :func:`default_dtype`.
    """
    net = build_net().to(device)
    shared = make_features(batch_size)
    modules = {name: build_module(CONFIGS[name], net) for name in names}
    batches = {name: make_batch(shared, CONFIGS[name].hinted_fraction, device) for name in names}
    optimizer = modules[names[0]].configure_optimizers()
    return Bench(device, batch_size, modules, batches, optimizer, autocast_for(device, dtype))


def nonfinite_losses(bench: Bench) -> dict[str, int]:
    """How many recorded steps of each configuration had a NaN or infinite loss."""
    return {
        name: int((~torch.isfinite(torch.stack(losses).float())).sum())
        for name, losses in bench.losses.items()
    }


def time_round_robin(bench: Bench, warmup: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per step of every configuration, alternating between them.

    Args:
        bench: the prepared modules and batches.
        warmup: untimed rounds first.
        rounds: timed rounds; round ``r`` starts at configuration ``r`` (mod the count).
    """
    names = list(bench.modules)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = bench.step(name)
            if index >= warmup:
                times[name].append(seconds)
    return times


def _operator_rows(events: list[Any], total_ms: float, shapes: bool) -> list[dict[str, Any]]:
    """JSON rows of profiler events: name (and input shapes), self CPU ms, share, calls."""
    rows = []
    for event in events:
        row: dict[str, Any] = {"name": event.key}
        if shapes:
            row["input_shapes"] = str(event.input_shapes)
        self_ms = event.self_cpu_time_total / 1000
        row |= {
            "self_cpu_ms": round(self_ms, 2),
            "share": round(self_ms / total_ms, 3),
            "calls": event.count,
        }
        rows.append(row)
    return rows


def profile_step(bench: Bench, name: str, top: int = TOP_OPERATORS) -> dict[str, Any]:
    """``torch.profiler`` (CPU) of one step: the operators with the most self CPU time.

    Returns:
        ``step_ms`` (profiled, so slower than unprofiled), ``self_cpu_total_ms``,
        ``top_operators`` (``name``, ``self_cpu_ms``, ``share`` of the total, ``calls``) and
        ``top_operators_by_shape`` (the same, grouped by input shapes too, which tells the
        layers apart: e.g. ``[2304, 2048] x [2048, 1024]`` is the attention's proposal
        projection, ``[64, 1024] x [1024, 3072]`` a GRU step).
    """
    from torch.profiler import ProfilerActivity, profile

    bench.step(name)  # warm
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        bench.step(name)
    step_ms = (time.perf_counter() - start) * 1000

    def by_self_time(group_by_shape: bool) -> list[Any]:
        averages = prof.key_averages(group_by_input_shape=group_by_shape)
        return sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)

    events = by_self_time(False)
    total = sum(e.self_cpu_time_total for e in events) / 1000
    return {
        "step_ms": round(step_ms, 1),
        "self_cpu_total_ms": round(total, 1),
        "top_operators": _operator_rows(events[:top], total, shapes=False),
        "top_operators_by_shape": _operator_rows(by_self_time(True)[:top], total, shapes=True),
    }


def _memory_of(
    name: str, batch_size: int, steps: int, dtype: torch.dtype = torch.float32
) -> dict[str, Any]:
    """CPU memory of one configuration, built and run in this process.

    The peak RSS is reset first (``clear_refs``), so configurations measured one after the
    other in one process do not see each other's peaks.
    """
    bench = setup([name], batch_size, torch.device("cpu"), dtype)
    gc.collect()
    before = status_mb("VmRSS")
    reset_peak_rss()
    bench.step(name)
    first_peak = status_mb("VmHWM")
    between = status_mb("VmRSS")
    result: dict[str, Any] = {"rss_before_first_step_mb": before, "rss_between_steps_mb": between}
    if steps > 1 and reset_peak_rss():
        for _ in range(steps - 1):
            bench.step(name)
        later_peak = status_mb("VmHWM")
        result["step_rss_mb"] = round(later_peak - between, 1)
        first_peak = max(first_peak, later_peak)
    else:
        result["step_rss_mb"] = round(first_peak - between, 1)
    result["peak_rss_mb"] = first_peak
    result["work_rss_mb"] = round(first_peak - before, 1)
    del bench
    gc.collect()
    return result


def _phase_memory(names: list[str], batch_size: int, steps: int, dtype: str) -> dict[str, Any]:
    """CPU memory of some configurations, one after the other, in this (fresh) process."""
    torch.set_num_threads(os.cpu_count() or 1)
    return {name: _memory_of(name, batch_size, steps, DTYPES[dtype]) for name in names}


def _cpu_memory(
    names: list[str],
    batch_size: int,
    steps: int,
    one_process: bool,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """CPU memory of every configuration: a subprocess each, or one for all (``one_process``)."""
    groups = [names] if one_process else [[name] for name in names]
    dtype_arg = next(key for key, value in DTYPES.items() if value == dtype)
    memory: dict[str, Any] = {}
    for group in groups:
        memory |= run_phase(
            "benchmarks.bench_train_step",
            "memory",
            str(batch_size),
            str(steps),
            dtype_arg,
            *group,
            env=_MALLOC_ENV,
        )
    return memory


def _cuda_memory(bench: Bench, name: str) -> dict[str, Any]:
    """CUDA memory of one step of a configuration (allocator statistics)."""
    bench.step(name)
    torch.cuda.reset_peak_memory_stats(bench.device)
    before = torch.cuda.memory_allocated(bench.device)
    bench.step(name)
    peak = torch.cuda.max_memory_allocated(bench.device)
    return {
        "allocated_before_step_mb": round(before / 2**20, 1),
        "peak_allocated_mb": round(peak / 2**20, 1),
        "step_allocated_mb": round((peak - before) / 2**20, 1),
    }


def _parameter_mb(bench: Bench) -> dict[str, float]:
    """Sizes of the model state: parameters, and parameters + gradients + Adamax buffers."""
    net = next(iter(bench.modules.values())).net
    count = sum(p.numel() for p in net.parameters())
    return {
        "parameters_millions": round(count / 1e6, 2),
        "model_state_mb": round(count * 4 * 4 / 2**20, 1),
    }


def _summaries(times: dict[str, list[float]], batch_size: int) -> dict[str, dict[str, Any]]:
    """Median/IQR ms, ratio to ``none`` and samples/s of every configuration."""
    base = summarize(times["none"], 1000)["median"]
    base_min = min(times["none"]) * 1000
    result = {}
    for name, values in times.items():
        ms = summarize(values, 1000, digits=1)
        result[name] = {
            "median_ms": ms["median"],
            "iqr_ms": ms["iqr"],
            "min_ms": ms["min"],
            "steps": ms["n"],
            "ratio_to_none": round(ms["median"] / base, 3),
            "ratio_min_to_none": round(ms["min"] / base_min, 3),
            "samples_per_s": round(batch_size / (ms["median"] / 1000), 1),
            "hinted_fraction": CONFIGS[name].hinted_fraction,
        }
    return result


def run(
    quick: bool = False,
    device: torch.device | None = None,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    names: list[str] | None = None,
    profile: bool = True,
) -> dict[str, Any]:
    """The whole benchmark (``quick``: fewer rounds and memory steps).

    Args:
        quick: 1 warm-up and 2 timed rounds, one memory step, one profile.
        device: None: CUDA when available, else CPU (:func:`device_and_batch_size`).
        batch_size: None: 512 on CUDA, 64 on CPU.
        dtype: ``torch.float32`` or ``torch.bfloat16`` (autocast); None: :func:`default_dtype`.
        names: the configurations (keys of :data:`CONFIGS`, ``"none"`` first or anywhere, but
            present: ratios are to it); None: all of them.
        profile: record the ``torch.profiler`` tables.
    """
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    device = device or device_and_batch_size()[0]
    batch_size = batch_size or (CUDA_BATCH if device.type == "cuda" else CPU_BATCH)
    dtype = dtype or default_dtype(device)
    warmup, rounds, memory_steps = (1, 2, 1) if quick else (5, 20, 2)
    names = names or list(CONFIGS)
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown configurations {unknown}; choose from {', '.join(CONFIGS)}")
    start = time.perf_counter()
    bench = setup(names, batch_size, device, dtype)
    times = time_round_robin(bench, warmup, rounds)
    configs = _summaries(times, batch_size)
    for name, count in nonfinite_losses(bench).items():
        configs[name]["nonfinite_losses"] = count
    profiled = [name for name in (("hint_fast_all",) if quick else PROFILED) if name in names]
    profiles = {name: profile_step(bench, name) for name in profiled} if profile else {}
    memory = {name: _cuda_memory(bench, name) for name in names} if device.type == "cuda" else {}
    sizes = _parameter_mb(bench)
    del bench
    gc.collect()
    if device.type != "cuda":
        memory = _cpu_memory(names, batch_size, memory_steps, one_process=quick, dtype=dtype)
    for name in names:
        configs[name]["memory"] = memory[name]
    return {
        "device": device.type,
        "dtype": dtype_name(dtype),
        "batch_size": batch_size,
        "sizes": {
            "proposals": NUM_PROPOSALS,
            "feature_dim": FEATURE_DIM,
            "question_tokens": QUESTION_LENGTH,
            "answers": NUM_ANSWERS,
            "vocabulary": VOCAB_SIZE,
            "embedding": 300,
            "hidden": 1024,
            "classifier": 2048,
            **sizes,
        },
        "threads": torch.get_num_threads(),
        "warmup_rounds": warmup,
        "timed_rounds": rounds,
        "configs": configs,
        "profile": profiles,
        "memory_note": "CPU: a subprocess per configuration (--quick: one for all, peak reset "
        "between them), MALLOC_MMAP_THRESHOLD_=65536; "
        "work_rss_mb = peak RSS over the steps - RSS before the first step (includes "
        "gradients and optimizer state); step_rss_mb = peak of later steps - RSS between steps",
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark (or one memory phase) and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and profiles")
    parser.add_argument("--configs", nargs="+", help="measure only these configurations")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        _, batch_size, steps, dtype, *names = args.phase
        print_json(_phase_memory(names, int(batch_size), int(steps), dtype), compact=True)
    else:
        names = ["none", *(c for c in args.configs if c != "none")] if args.configs else None
        print_json(run(args.quick, names=names))


if __name__ == "__main__":
    main()
