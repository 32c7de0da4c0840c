"""Network importance and the HINT loss on every selected device (``-m device``).

Each test takes ``device`` (``--device cpu|cuda``; default cpu, and cuda when available) and
checks the device's arithmetic against an independent reference: central finite differences,
or the same model in float64 on the CPU. ``make gpu-check`` runs this subset with
``--device cuda``.

The model is a tiny ``UpDnVQA`` in *train* mode with both dropouts at 0: train mode because
cuDNN's GRU refuses a backward pass in eval mode (the second-order gradients reach the GRU's
weights through the question vector), dropout 0 so that train mode is deterministic.

Tolerances (each measured on the CPU over 6 seeds, well inside them):

* float32, TF32 off (cuDNN uses TF32 for float32 GRUs unless told not to): importance within
  ``1e-5 * max|alpha|`` of float64 (measured <= 6e-7), the loss within ``1e-3`` relative,
  second-order gradients within ``1e-4`` relative in norm (measured <= 5e-6).
* ``torch.autocast(bfloat16)`` (8 significant bits, ``2**-8`` = 0.4% per rounding): importance
  within ``0.05 * max|alpha|`` (measured <= 0.021), the loss within ``0.01 * max|alpha|`` per
  ordered pair (measured <= 5e-4; every hinge term moves by at most the error of the two
  importances it compares), second-order gradients with cosine similarity >= 0.9 to float64
  (measured >= 0.94). The loss's *relative* error is not bounded: the ranking loss sums
  differences of importances, and those smaller than bf16's resolution of ``|alpha|`` are
  rounding noise (measured 1-14% here; ``make gpu-check`` reports it at paper scale).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import Tensor

from hint_lightning.models.updn_vqa import UpDnVQA
from hint_lightning.objectives.hint import hint_ranking_loss
from hint_lightning.objectives.importance import network_importance

pytestmark = pytest.mark.device

SIZES = {
    "vocab_size": 12,
    "num_answers": 5,
    "feature_dim": 24,
    "embedding_dim": 8,
    "hidden_dim": 16,
    "classifier_dim": 32,
    "attention_dropout": 0.0,
    "classifier_dropout": 0.0,
}
BATCH, PROPOSALS = 4, 6

FP32_ALPHA, FP32_LOSS, FP32_GRAD = 1e-5, 1e-3, 1e-4
BF16_ALPHA, BF16_LOSS_PER_PAIR, BF16_GRAD_COSINE = 0.05, 0.01, 0.9


def _model(device: torch.device, dtype: torch.dtype, seed: int = 0) -> UpDnVQA:
    """The tiny model, identical weights for every device and dtype (built on the CPU)."""
    torch.manual_seed(seed)
    return UpDnVQA(**SIZES).to(device=device, dtype=dtype).train()


def _batch(device: torch.device, dtype: torch.dtype, seed: int = 0) -> dict[str, Tensor]:
    """Features ``[4, 6, 24]``, boxes, questions of 2-5 tokens, sample 2 with 2 padded
    proposals, ground-truth answers ``[4]`` and human importance ``[4, 6]``."""
    generator = torch.Generator().manual_seed(seed + 100)
    tokens = torch.randint(1, SIZES["vocab_size"], (BATCH, 5), generator=generator)
    tokens[1, 2:] = 0
    tokens[3, 4:] = 0
    mask = torch.ones(BATCH, PROPOSALS, dtype=torch.bool)
    mask[2, 4:] = False
    shape = (BATCH, PROPOSALS)
    batch = {
        "features": torch.rand(
            *shape, SIZES["feature_dim"], generator=generator, dtype=torch.float64
        ),
        "boxes": torch.rand(*shape, 4, generator=generator, dtype=torch.float64),
        "tokens": tokens,
        "mask": mask,
        "answers": torch.randint(0, SIZES["num_answers"], (BATCH,), generator=generator),
        "human": torch.rand(*shape, generator=generator, dtype=torch.float64),
    }
    return {
        key: value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
        for key, value in batch.items()
    }


def _scores(model: UpDnVQA, batch: dict[str, Tensor], features: Tensor, **kwargs: Tensor) -> Tensor:
    """``[B]`` the logit of each sample's ground-truth answer."""
    logits, _ = model(features, batch["boxes"], batch["tokens"], batch["mask"], **kwargs)
    return logits.gather(1, batch["answers"][:, None]).squeeze(1)


def _importance(model: UpDnVQA, batch: dict[str, Tensor], path: str) -> Tensor:
    """``[B, N]`` network importance (differentiable) through the reference or the shift path.

    ``reference``: :func:`network_importance`, the gradient w.r.t. the ``[B, N, D]`` features
    summed over D. ``shift``: the gradient w.r.t. the model's ``[B, N]`` proposal shift.
    """
    if path == "reference":
        features = batch["features"].clone().requires_grad_(True)
        return network_importance(_scores(model, batch, features), features)
    shift = torch.zeros_like(batch["human"], requires_grad=True)
    scores = _scores(model, batch, batch["features"], proposal_shift=shift)
    (alpha,) = torch.autograd.grad(scores.sum(), shift, create_graph=True)
    return alpha


def _hint(model: UpDnVQA, batch: dict[str, Tensor], path: str, bf16: bool = False) -> dict:
    """Importance, HINT loss (summed over the batch) and its gradient w.r.t. every parameter.

    Under ``bf16`` the forward pass, the importance and the loss run under ``torch.autocast``
    and the final backward outside it, as Lightning's bf16-mixed ``training_step`` does.
    """
    device_type = batch["features"].device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        alpha = _importance(model, batch, path)
        loss = hint_ranking_loss(alpha, batch["human"], batch["mask"]).sum()
    parameters = list(model.parameters())
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    flat = [
        (grad if grad is not None else torch.zeros_like(p)).flatten()
        for grad, p in zip(grads, parameters, strict=True)
    ]
    return {
        "alpha": alpha.detach().double().cpu(),
        "loss": loss.detach().double().cpu(),
        "grad": torch.cat(flat).double().cpu(),
    }


@contextmanager
def _strict_float32() -> Iterator[None]:
    """float32 means float32: TF32 off for matmuls and cuDNN (its GRU) while inside."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def _reference(path: str = "reference") -> dict:
    """The float64 CPU result: the oracle for every device and precision."""
    return _hint(
        _model(torch.device("cpu"), torch.float64), _batch(torch.device("cpu"), torch.float64), path
    )


def _ordered_pairs() -> int:
    """The number of pairs ``(i, j)`` of real proposals with ``h_i > h_j`` in the batch."""
    batch = _batch(torch.device("cpu"), torch.float64)
    human, mask = batch["human"], batch["mask"]
    pairs = (human[:, :, None] > human[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    return int(pairs.sum())


def test_importance_equals_the_finite_difference_derivative(device: torch.device) -> None:
    # alpha_r = d score / d t at t = 0 for P_r + t 1 (equation 1): central differences in
    # float64 on the device, shifting proposal r of every sample at once (samples independent).
    model, batch = _model(device, torch.float64), _batch(device, torch.float64)
    alpha = _importance(model, batch, "reference").detach()
    step = 1e-6
    expected = torch.zeros_like(alpha)
    with torch.no_grad():
        for r in range(PROPOSALS):
            bump = torch.zeros_like(batch["features"])
            bump[:, r] = step
            up = _scores(model, batch, batch["features"] + bump)
            down = _scores(model, batch, batch["features"] - bump)
            expected[:, r] = (up - down) / (2 * step)
    assert alpha.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(alpha, expected, rtol=1e-6, atol=1e-9 * alpha.abs().max().item())
    assert (alpha[2, 4:] == 0).all()  # padded proposals carry no importance


@pytest.mark.parametrize("path", ["reference", "shift"])
def test_hint_loss_and_second_order_gradients_in_float32(device: torch.device, path: str) -> None:
    expected = _reference()
    with _strict_float32():
        got = _hint(_model(device, torch.float32), _batch(device, torch.float32), path)
    scale = expected["alpha"].abs().max().item()
    torch.testing.assert_close(got["alpha"], expected["alpha"], rtol=0, atol=FP32_ALPHA * scale)
    torch.testing.assert_close(got["loss"], expected["loss"], rtol=FP32_LOSS, atol=0)
    error = (got["grad"] - expected["grad"]).norm() / expected["grad"].norm()
    assert error <= FP32_GRAD, f"second-order gradients off by {error:.2e} (relative, norm)"


@pytest.mark.parametrize("path", ["reference", "shift"])
def test_hint_loss_and_second_order_gradients_under_bf16_autocast(
    device: torch.device, path: str
) -> None:
    expected = _reference()
    got = _hint(_model(device, torch.float32), _batch(device, torch.float32), path, bf16=True)
    for name, value in got.items():
        assert torch.isfinite(value).all(), f"{name} has NaN/inf under bf16 autocast"
    scale = expected["alpha"].abs().max().item()
    torch.testing.assert_close(got["alpha"], expected["alpha"], rtol=0, atol=BF16_ALPHA * scale)
    loss_error = (got["loss"] - expected["loss"]).abs().item()
    assert loss_error <= BF16_LOSS_PER_PAIR * scale * _ordered_pairs()
    cosine = torch.nn.functional.cosine_similarity(got["grad"], expected["grad"], dim=0)
    assert cosine >= BF16_GRAD_COSINE, f"bf16 second-order gradients: cosine {cosine:.3f}"


def test_shift_fast_path_equals_the_reference_path_on_the_device(device: torch.device) -> None:
    # The same numbers on the device itself (no float64 detour): importance, loss, gradients.
    model, batch = _model(device, torch.float32), _batch(device, torch.float32)
    with _strict_float32():
        reference = _hint(model, batch, "reference")
        fast = _hint(model, batch, "shift")
    scale = reference["alpha"].abs().max().item()
    torch.testing.assert_close(fast["alpha"], reference["alpha"], rtol=0, atol=FP32_ALPHA * scale)
    torch.testing.assert_close(fast["loss"], reference["loss"], rtol=FP32_LOSS, atol=0)
    error = (fast["grad"] - reference["grad"]).norm() / reference["grad"].norm()
    assert error <= FP32_GRAD, f"fast and reference gradients differ by {error:.2e}"
