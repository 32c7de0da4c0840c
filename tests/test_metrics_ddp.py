"""Under DDP (2 CPU processes, gloo) the grounding metrics equal one process on all questions:
their states are sums and counts, all-reduced, each question counted once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from hint_lightning.importance.replacement import tile_batch
from hint_lightning.metrics import GroundingMetrics

pytestmark = pytest.mark.slow

CONFIG = {
    "plausibility": {"threshold": 0.5},
    "faithfulness": {},
    "fpvg": {"relevant_threshold": 0.5},
}


def batch(rows: slice) -> dict[str, Tensor]:
    """Questions ``rows`` of one fixed evaluation set of 10 questions x 12 proposals."""
    generator = torch.Generator().manual_seed(0)
    data = {
        "proposals": torch.randn(10, 12, 3, generator=generator, dtype=torch.float64),
        "human": torch.rand(10, 12, generator=generator, dtype=torch.float64),
        "weights": torch.randn(3, 4, generator=generator, dtype=torch.float64),
        "truth": torch.randint(0, 4, (10,), generator=generator),
    }
    data["has"] = torch.arange(10) % 3 != 0
    return {key: value if key == "weights" else value[rows] for key, value in data.items()}


def evaluate(metrics: GroundingMetrics, data: dict[str, Tensor]) -> None:
    def logits(P: Tensor, mask: Tensor) -> Tensor:
        attention = P[..., 0].masked_fill(~mask, float("-inf")).softmax(dim=1)
        return (attention.unsqueeze(-1) * P).sum(1) @ data["weights"]

    full = torch.ones(data["proposals"].shape[:2], dtype=torch.bool)
    answers = logits(data["proposals"], full).argmax(1)

    def forward_fn(P: Tensor, m: Tensor) -> Tensor:
        return logits(P, m).softmax(1).gather(1, tile_batch(answers, P.shape[0])[:, None])[:, 0]

    given = data["proposals"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward_fn(given, full).sum(), given)
    truth = data["truth"]
    metrics.update(
        importance=grad.sum(-1), proposals=data["proposals"], human_importance=data["human"],
        has_importance=data["has"], forward_fn=forward_fn,
        predict_fn=lambda P, m: logits(P, m).argmax(1), correct_fn=lambda p: p == truth,
    )  # fmt: skip


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    metrics = GroundingMetrics.from_config(CONFIG)
    evaluate(metrics, batch(slice(0, 6) if rank == 0 else slice(6, 10)))  # unequal shares
    results = metrics.compute()  # torchmetrics all-reduces the sums and counts
    counts = metrics.counts()
    if rank == 0:
        torch.save({"results": results, "counts": counts}, out)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_give_the_metrics_of_one(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=False)
    single = GroundingMetrics.from_config(CONFIG)
    evaluate(single, batch(slice(0, 10)))
    assert ddp["counts"] == single.counts()
    for name, value in single.compute().items():
        assert ddp["results"][name] == pytest.approx(value, abs=1e-9, nan_ok=True), name
