"""The measuring parts of ``make gpu-check``, each run in its own subprocess by
:mod:`benchmarks.gpu_check` (``python -m benchmarks.gpu_check --part NAME ...``).

* :func:`environment`: the card, torch, CUDA and cuDNN versions;
* :func:`train_step`: :func:`benchmarks.bench_train_step.run` for plain UpDn, HINT, HINT on a
  batch without human importance and attention alignment, at one precision;
* :func:`precision`: the HINT loss and its second-order gradients at paper scale in float32
  (TF32 off) and under ``torch.autocast(bfloat16)``, through the reference path (gradient
  w.r.t. the ``[B, N, D]`` features) and the shift fast path;
* :func:`loader`: the VQA train loader's samples/s with more and more workers until it reaches
  the target multiple of the HINT step's samples/s.

Only stable public names of the package are used (``UpDnVQA``, ``network_importance``,
``hint_ranking_loss``) besides the benchmark modules it reuses.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

STEP_CONFIGS = ["none", "hint_fast_all", "hint_no_importance", "attn_align"]
"""Plain UpDn, HINT (every sample hinted, fast path), HINT without importance, Attn. Align."""


def environment() -> dict[str, Any]:
    """Python, CPUs, torch, Lightning, CUDA and cuDNN versions, and the card when present."""
    import pytorch_lightning

    cuda = torch.cuda.is_available()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
    }
    if cuda:
        properties = torch.cuda.get_device_properties(0)
        info |= {
            "device_count": torch.cuda.device_count(),
            "card": properties.name,
            "compute_capability": f"{properties.major}.{properties.minor}",
            "memory_gb": round(properties.total_memory / 2**30, 1),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "driver": _nvidia_driver(),
        }
    return info


def _nvidia_driver() -> str | None:
    """The NVIDIA driver version from ``nvidia-smi``, None where it is missing or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def step_figures(step: dict[str, Any]) -> dict[str, Any]:
    """ms/step, samples/s, peak memory and HINT/plain from :func:`bench_train_step.run`'s JSON.

    Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA, the peak RSS on the CPU.
    """
    figures: dict[str, Any] = {}
    for name, config in step["configs"].items():
        memory = config["memory"]
        figures[name] = {
            "ms_per_step": config["median_ms"],
            "iqr_ms": config["iqr_ms"],
            "samples_per_s": config["samples_per_s"],
            "ratio_to_plain": config["ratio_to_none"],
            "peak_memory_mb": memory.get("peak_allocated_mb", memory.get("peak_rss_mb")),
            "step_memory_mb": memory.get("step_allocated_mb", memory.get("step_rss_mb")),
            "nonfinite_losses": config["nonfinite_losses"],
        }
    cuda = step["device"] == "cuda"
    return {
        "device": step["device"],
        "dtype": step["dtype"],
        "batch_size": step["batch_size"],
        "timed_rounds": step["timed_rounds"],
        "memory": "torch.cuda.max_memory_allocated" if cuda else "peak RSS (VmHWM)",
        "configs": figures,
        "hint_to_plain": figures["hint_fast_all"]["ratio_to_plain"],
        "seconds": step["seconds"],
    }


def train_step(device: str, batch_size: int, dtype: str, quick: bool) -> dict[str, Any]:
    """``make bench``'s training-step section for :data:`STEP_CONFIGS` at one precision.

    Returns:
        :func:`step_figures` of :func:`benchmarks.bench_train_step.run` (no profiles).
    """
    from benchmarks.bench_train_step import DTYPES, run

    step = run(
        quick,
        torch.device(device),
        batch_size,
        DTYPES[dtype],
        names=list(STEP_CONFIGS),
        profile=False,
    )
    return step_figures(step)


@contextmanager
def strict_float32() -> Iterator[None]:
    """float32 without TF32 (matmuls and cuDNN, whose GRU uses TF32 by default) while inside."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def _hint_terms(net: nn.Module, batch: dict[str, Tensor], path: str, bf16: bool) -> dict:
    """Importance ``[B, N]``, HINT loss (mean over samples) and its flat parameter gradient.

    The decision is each sample's highest-scored answer; forward, importance and loss run under
    autocast when ``bf16``, the final backward outside it (as in bf16-mixed training).
    """
    from hint_lightning.objectives.hint import hint_ranking_loss
    from hint_lightning.objectives.importance import network_importance

    answers = batch["targets"].argmax(dim=1, keepdim=True)
    device_type = batch["features"].device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        if path == "reference":
            features = batch["features"].clone().requires_grad_(True)
            logits, _ = net(features, batch["boxes"], batch["question_tokens"])
            alpha = network_importance(logits.gather(1, answers).squeeze(1), features)
        else:
            shift = torch.zeros_like(batch["human_importance"], requires_grad=True)
            logits, _ = net(
                batch["features"], batch["boxes"], batch["question_tokens"], proposal_shift=shift
            )
            scores = logits.gather(1, answers).squeeze(1)
            (alpha,) = torch.autograd.grad(scores.sum(), shift, create_graph=True)
        loss = hint_ranking_loss(alpha, batch["human_importance"]).mean()
    parameters = [p for p in net.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    flat = torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).float().flatten()
            for g, p in zip(grads, parameters, strict=True)
        ]
    )
    return {"alpha": alpha.detach().float(), "loss": loss.detach().float(), "grad": flat}


def _compare(got: dict, expected: dict, pairs: float) -> dict[str, Any]:
    """How far ``got`` is from ``expected``: loss, importance and gradient differences."""
    scale = expected["alpha"].abs().max()
    loss_error = (got["loss"] - expected["loss"]).abs()
    got_grad, expected_grad = got["grad"].double(), expected["grad"].double()
    grad_norm = expected_grad.norm()
    cosine = got_grad @ expected_grad / (got_grad.norm() * grad_norm).clamp(min=1e-300)
    return {
        "loss": float(got["loss"]),
        "loss_relative_difference": float(loss_error / expected["loss"].abs().clamp(min=1e-30)),
        "loss_difference_per_pair_of_max_alpha": float(loss_error / (pairs * scale)),
        "alpha_max_difference_of_max_alpha": float(
            (got["alpha"] - expected["alpha"]).abs().max() / scale
        ),
        "grad_relative_difference": float((got_grad - expected_grad).norm() / grad_norm),
        "grad_cosine": float(cosine),
        "finite": bool(all(torch.isfinite(value).all() for value in got.values())),
    }


def precision(device: str, batch_size: int) -> dict[str, Any]:
    """float32 vs bf16 HINT at paper scale, and the shift path vs the reference path.

    The paper-scale ``UpDnVQA`` of the training-step benchmark (random initialization, train
    mode with every dropout at 0: deterministic, and cuDNN's GRU allows a backward pass) on
    its synthetic batch, every sample hinted.

    Returns:
        ``float32``: the reference path's loss; ``bf16_vs_float32``: per path, the bf16
        result compared with the float32 one; ``shift_vs_reference_float32``: the fast path
        compared with the reference path in float32; ``alpha_spread_of_mean``: the mean over
        samples of ``std_r(alpha) / mean_r |alpha|`` (how far apart the proposals' importances
        are, relative to their size: bf16 resolves about ``2**-8`` of ``|alpha|``).
    """
    from benchmarks.bench_train_step import build_net, make_features

    torch.manual_seed(0)
    target = torch.device(device)
    net = build_net().to(target).train()
    for module in net.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    batch = {key: value.to(target) for key, value in make_features(batch_size).items()}
    human = batch["human_importance"]
    pairs = float((human[:, :, None] > human[:, None, :]).sum(dim=(1, 2)).float().mean())
    start = time.perf_counter()
    result: dict[str, Any] = {"device": device, "batch_size": batch_size, "bf16_vs_float32": {}}
    float32 = {}
    for path in ("reference", "shift"):
        with strict_float32():
            float32[path] = _hint_terms(net, batch, path, bf16=False)
        bf16 = _hint_terms(net, batch, path, bf16=True)
        result["bf16_vs_float32"][path] = _compare(bf16, float32[path], pairs)
        del bf16
    result["shift_vs_reference_float32"] = _compare(float32["shift"], float32["reference"], pairs)
    alpha = float32["reference"]["alpha"]
    spread = alpha.std(dim=1) / alpha.abs().mean(dim=1).clamp(min=1e-30)
    result |= {
        "float32_loss": float(float32["reference"]["loss"]),
        "ordered_pairs_per_sample": pairs,
        "alpha_spread_of_mean": float(spread.mean()),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if target.type == "cuda":
        result["peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(target) / 2**20, 1)
    return result


def loader(
    images: int,
    batch_size: int,
    workers: list[int],
    seconds: float,
    hint_samples_per_s: float | None,
    target_ratio: float,
) -> dict[str, Any]:
    """The VQA train loader's samples/s with each worker count until the target is reached.

    Writes a float32 prepared VQA-CP v2 tree (36 x 2048 features per image, the real writers)
    to a temporary folder, then measures each worker count in ascending order in a fresh
    subprocess; stops at the first whose rate is ``target_ratio`` x the HINT step's.

    Args:
        images: images in the tree (5 questions each, 90% in train).
        batch_size: the loader's batch size (the training batch size).
        workers: worker counts to try, ascending.
        seconds: iteration time per worker count.
        hint_samples_per_s: the HINT training step's rate (None: measure every count).
        target_ratio: the wanted loader / HINT ratio.
    """
    from benchmarks.bench_loaders import measure_vqa_loader, write_vqa_tree

    start = time.perf_counter()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_loader_") as folder:
        tree = write_vqa_tree(Path(folder), images)
        write_seconds = round(time.perf_counter() - start, 1)
        for count in workers:
            run = measure_vqa_loader(tree, batch_size, count, seconds)
            if hint_samples_per_s:
                run["ratio_to_hint"] = round(run["samples_per_s"] / hint_samples_per_s, 2)
            runs[f"workers_{count}"] = run
            if run.get("ratio_to_hint", 0.0) >= target_ratio:
                break
    best = max(runs, key=lambda key: runs[key]["samples_per_s"])
    reached = [key for key, run in runs.items() if run.get("ratio_to_hint", 0.0) >= target_ratio]
    return {
        "images": images,
        "batch_size": batch_size,
        "dtype": "float32",
        "write_tree_s": write_seconds,
        "runs": runs,
        "best": best,
        "best_samples_per_s": runs[best]["samples_per_s"],
        "hint_samples_per_s": hint_samples_per_s,
        "best_ratio_to_hint": runs[best].get("ratio_to_hint"),
        "workers_reaching_target": int(reached[0].removeprefix("workers_")) if reached else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
