"""Benchmark: HINT on the ViT's patch tokens vs a plain step, for 16, 64 and 256 patches.

Run from the repository root::

    python -m benchmarks.bench_vit [--quick] [--rounds N]

A real :class:`~hint_lightning.modules.vqa_module.VQAModule` (``self.log`` a no-op) around the
ViT of ``experiment=easyvqa_cp_vit`` (width 64, MLP 128, 2 layers, 4 heads) on batches of 64
easy-VQA-sized questions (64x64 RGB images cut into 16x16, 8x8 or 4x4-pixel patches: 16, 64 or
256 patch tokens, 14 question tokens). One step is ``zero_grad``, ``training_step``,
``backward``, ``AdamW.step``, on CPU in float32:

* ``plain``: no objective;
* ``hint``: HINT with every sample hinted, importance by ``token_input_x_gradient`` (the ViT
  experiments' method: one pass, the tokens after the embedding as the probe, one double
  backward through every layer);
* ``hint_last_layer``: the same with ``token_input_x_gradient`` at ``layer=-1`` (the tokens
  entering the last encoder layer: the double backward spans that layer only).

Timed round-robin after a warm-up round: median/IQR ms, ``ratio`` (HINT median / plain
median) and ``ratio_min`` (of the fastest steps), ``ratio_last_layer`` (the same for
``hint_last_layer``), and the same for the process's CPU time
(``*_cpu_ms``, ``ratio_cpu``: the work done, all threads summed, far less sensitive than wall
time to other processes sharing the cores). Memory: the peak RSS of
one step above the RSS before it (``step_rss_mb``; the double backward's graph for ``hint``),
with the allocator returning freed memory (``MALLOC_MMAP_THRESHOLD_``, set by ``make bench``).
Short by default (1 warm-up and 3 timed rounds, a few minutes on 2 loaded cores; ``--rounds``
for more); ``--quick`` (the test suite's ``make bench --quick``): 16 and 64 patches, 1 round.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import time
import warnings
from typing import Any

import torch

from benchmarks.common import machine, print_json, reset_peak_rss, status_mb, summarize
from hint_lightning.data.batch import VQADataInfo
from hint_lightning.models.vit_vqa import ViTVQA
from hint_lightning.modules.vqa_module import VQAModule
from hint_lightning.objectives.hint import HintObjective

BATCH = 64
PATCHES = (16, 64, 256)
ANSWERS = 13
VOCAB = 28


def make_batch(patches: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of 64 questions over ``patches`` patch tokens of a 64x64 image."""
    generator = torch.Generator().manual_seed(seed)
    dim = (64 * 64 // patches) * 3
    answers = torch.randint(0, ANSWERS, (BATCH,), generator=generator)
    targets = torch.nn.functional.one_hot(answers, ANSWERS).float()
    return {
        "features": torch.rand(BATCH, patches, dim, generator=generator) * 2 - 1,
        "boxes": torch.rand(BATCH, patches, 4, generator=generator),
        "proposal_mask": torch.ones(BATCH, patches, dtype=torch.bool),
        "question_tokens": torch.randint(1, VOCAB, (BATCH, 14), generator=generator),
        "targets": targets,
        "answer_scores": targets,
        "answer_type": torch.zeros(BATCH, dtype=torch.long),
        "human_importance": torch.rand(BATCH, patches, generator=generator),
        "has_importance": torch.ones(BATCH, dtype=torch.bool),
        "question_id": torch.arange(BATCH),
    }


VARIANTS: dict[str, tuple[bool, int | None]] = {
    "plain": (False, None),
    "hint": (True, None),
    "hint_last_layer": (True, -1),
}
"""Setup name -> (with HINT, the importance layer: None for the embedded tokens)."""


def make_module(patches: int, grounded: bool = True, layer: int | None = None) -> VQAModule:
    """The experiment's ViT in a VQAModule, with or without HINT (importance at ``layer``)."""
    torch.manual_seed(0)
    info = VQADataInfo(
        tuple(f"a{i}" for i in range(ANSWERS)),
        tuple(f"t{i}" for i in range(VOCAB)),
        (64 * 64 // patches) * 3,
        patches,
    )
    net = functools.partial(
        ViTVQA,
        num_patches=patches,
        embedding_dim=64,
        hidden_dim=64,
        mlp_dim=128,
        layers=2,
        heads=4,
        dropout=0.0,
    )
    method = {"name": "token_input_x_gradient", "layer": layer}
    module = VQAModule(
        net,
        info,
        functools.partial(torch.optim.AdamW, lr=1e-3),
        objective=HintObjective(1.0) if grounded else None,
        train_importance=method,
        eval_importance=method,
    )
    module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    module.train()
    return module


def step(module: VQAModule, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = module.training_step(batch, 0)
    loss.backward()
    optimizer.step()


def run(patch_counts: tuple[int, ...], warmup: int, rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for patches in patch_counts:
        batch = make_batch(patches)
        setups = {}
        for name, (grounded, layer) in VARIANTS.items():
            module = make_module(patches, grounded, layer)
            setups[name] = (module, torch.optim.AdamW(module.parameters(), lr=1e-3))
        times: dict[str, list[float]] = {name: [] for name in setups}
        cpu: dict[str, list[float]] = {name: [] for name in setups}
        names = list(setups)
        for index in range(warmup + rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                module, optimizer = setups[name]
                start, start_cpu = time.perf_counter(), time.process_time()
                step(module, optimizer, batch)
                if index >= warmup:
                    times[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
        memory = {}
        for name, (module, optimizer) in setups.items():
            gc.collect()
            reset_peak_rss()
            before = status_mb("VmRSS")
            step(module, optimizer, batch)
            memory[name] = round(status_mb("VmHWM") - before, 1)
        stats = {name: summarize(values, 1000.0, 1) for name, values in times.items()}
        work = {name: summarize(values, 1000.0, 1) for name, values in cpu.items()}
        result[str(patches)] = {
            "patch_size": int((64 * 64 // patches) ** 0.5),
            "plain_ms": stats["plain"],
            "hint_ms": stats["hint"],
            "ratio": round(stats["hint"]["median"] / stats["plain"]["median"], 2),
            "ratio_min": round(stats["hint"]["min"] / stats["plain"]["min"], 2),
            "plain_cpu_ms": work["plain"],
            "hint_cpu_ms": work["hint"],
            "ratio_cpu": round(work["hint"]["median"] / work["plain"]["median"], 2),
            "hint_last_layer_ms": stats["hint_last_layer"],
            "hint_last_layer_cpu_ms": work["hint_last_layer"],
            "ratio_last_layer": round(
                stats["hint_last_layer"]["median"] / stats["plain"]["median"], 2
            ),
            "ratio_min_last_layer": round(
                stats["hint_last_layer"]["min"] / stats["plain"]["min"], 2
            ),
            "ratio_cpu_last_layer": round(
                work["hint_last_layer"]["median"] / work["plain"]["median"], 2
            ),
            "step_rss_mb": memory,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="16 and 64 patches, 1 round")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    warnings.simplefilter("ignore")
    rounds = args.rounds or (1 if args.quick else 3)
    began = machine()
    configs = run(PATCHES[:2] if args.quick else PATCHES, 1, rounds)
    print_json(
        {
            "device": "cpu",
            "batch_size": BATCH,
            "importance": "token_input_x_gradient",
            "rounds": rounds,
            "configs": configs,
            "machine": began,
            "load_average_1m_end": machine()["load_average_1m"],
        }
    )


if __name__ == "__main__":
    main()
