"""AMC's margin losses and RobustViT's relevance losses against the formulas written out
element by element (re-stated from the papers and their public code), and both training a ViT
with their importance methods (Grad-CAM on attention, Chefer et al.'s relevance)."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.models.vit_vqa import ViTVQA
from hint_lightning.modules.vqa_module import VQAModule
from hint_lightning.objectives.amc import AMCObjective, amc_losses
from hint_lightning.objectives.robustvit import RobustViTObjective, robustvit_losses


def cases() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    importance = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    human = torch.rand(4, 6, generator=generator, dtype=torch.float64)
    human[3] = 0.0  # no foreground: AMC undefined
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    return importance, human, mask


def reference_amc(g, m, real, mean_margin=0.1, max_margin=0.5):
    """AMC-grounding ``model_pretrain.py``: positive part, per-sample min-max, margins."""
    out_mean, out_max = [], []
    for b in range(g.shape[0]):
        keep = [k for k in range(g.shape[1]) if real[b, k]]
        values = [max(float(g[b, k]), 0.0) for k in keep]
        low, high = min(values), max(values)
        cam = [(v - low) / (high - low + 1e-7) for v in values]
        inside = [float(m[b, k]) for k in keep]
        outside = [1 - x for x in inside]
        if sum(inside) == 0 or sum(outside) == 0:
            out_mean.append(float("nan"))
            out_max.append(float("nan"))
            continue
        mean_in = sum(c * w for c, w in zip(cam, inside, strict=True)) / sum(inside)
        mean_out = sum(c * w for c, w in zip(cam, outside, strict=True)) / sum(outside)
        max_in = max(c * w for c, w in zip(cam, inside, strict=True))
        max_out = max(c * w for c, w in zip(cam, outside, strict=True))
        out_mean.append(max(0.0, mean_out - mean_in + mean_margin))
        out_max.append(max(0.0, max_out - max_in + max_margin))
    return torch.tensor(out_mean).double(), torch.tensor(out_max).double()


def reference_robustvit(r, s, real):
    """RobustViT: MSE(R (1 - S), 0) and MSE(R S, S) over the (real) patches, R min-max normed."""
    bg, fg = [], []
    for b in range(r.shape[0]):
        keep = [k for k in range(r.shape[1]) if real[b, k]]
        values = [float(r[b, k]) for k in keep]
        low, high = min(values), max(values)
        rel = [(v - low) / (high - low + 1e-7) for v in values]
        seg = [float(s[b, k]) for k in keep]
        bg.append(sum((x * (1 - y)) ** 2 for x, y in zip(rel, seg, strict=True)) / len(keep))
        fg.append(sum((x * y - y) ** 2 for x, y in zip(rel, seg, strict=True)) / len(keep))
    return torch.tensor(bg).double(), torch.tensor(fg).double()


def test_amc_losses_match_the_formula() -> None:
    importance, human, mask = cases()
    mean, top = amc_losses(importance, human, mask)
    want_mean, want_max = reference_amc(importance, human, mask)
    torch.testing.assert_close(mean, want_mean, equal_nan=True)
    torch.testing.assert_close(top, want_max, equal_nan=True)
    binary = (human > 0.5).double()
    torch.testing.assert_close(
        amc_losses(importance, human, mask, threshold=0.5)[0],
        reference_amc(importance, binary, mask)[0],
        equal_nan=True,
    )


def test_robustvit_losses_match_the_formula() -> None:
    importance, human, mask = cases()
    background, foreground = robustvit_losses(importance, human, mask)
    want_bg, want_fg = reference_robustvit(importance, human, mask)
    torch.testing.assert_close(background, want_bg)
    torch.testing.assert_close(foreground, want_fg)


@pytest.mark.parametrize(
    ("objective", "method"),
    [(AMCObjective(2.0), "attention_gradcam"), (RobustViTObjective(2.0), "chefer_relevance")],
)
def test_objectives_train_a_vit_with_their_importance(objective, method: str) -> None:
    torch.manual_seed(0)
    info = VQADataInfo(("a", "b", "c"), tuple("pqrstuvwxy"), 6, 4)
    net = functools.partial(
        ViTVQA, num_patches=4, embedding_dim=5, hidden_dim=8, heads=2, max_question_length=4
    )
    module = VQAModule(
        net,
        info,
        functools.partial(torch.optim.SGD, lr=0.1),
        objective=objective,
        train_importance=method,
    ).double()
    generator = torch.Generator().manual_seed(1)
    targets = torch.eye(3, dtype=torch.float64)
    batch = {
        "features": torch.rand(3, 4, 6, generator=generator, dtype=torch.float64),
        "boxes": torch.zeros(3, 4, 4, dtype=torch.float64),
        "proposal_mask": torch.ones(3, 4, dtype=torch.bool),
        "question_tokens": torch.tensor([[1, 2, 0], [3, 0, 0], [4, 5, 6]]),
        "targets": targets,
        "answer_scores": targets,
        "answer_type": torch.tensor([0, 2, 2]),
        "human_importance": torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0.5, 1]]).double(),
        "has_importance": torch.ones(3, dtype=torch.bool),
        "question_id": torch.arange(3),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(batch, 0)
    loss.backward()
    grads = module.net.layers[0].attention.qkv.weight.grad
    assert torch.isfinite(loss) and grads is not None and torch.isfinite(grads).all()
