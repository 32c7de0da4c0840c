"""Model-Guidance energy loss (Rao et al. 2023) on proposals, against the public function."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from hint_lightning.objectives.energy import energy_loss
from hint_lightning.objectives.importance import network_importance


def reference_energy(attributions: Tensor, bb_coordinates: list[tuple[int, int, int, int]]):
    """REFERENCE, test only: ``EnergyPointingGameBBMultipleLoss.__call__``, re-stated from
    sukrutrao/Model-Guidance ``losses.py`` lines 37-47 (``attributions`` is ``[H, W]``, each box
    ``(xmin, ymin, xmax, ymax)``)."""
    pos_attributions = attributions.clamp(min=0)
    bb_mask = torch.zeros_like(pos_attributions, dtype=torch.long)
    for coords in bb_coordinates:
        xmin, ymin, xmax, ymax = coords
        bb_mask[ymin:ymax, xmin:xmax] = 1
    num = pos_attributions[torch.where(bb_mask == 1)].sum()
    den = pos_attributions.sum()
    if den < 1e-7:
        return 1 - num
    return 1 - num / den


def reference_batch(importance: Tensor, human: Tensor, threshold: float) -> Tensor:
    """Model-Guidance's training loop (``train.py`` lines 221-230): the sum over images with
    boxes. Proposals are the pixels of a ``1 x N`` map; a human-important proposal ``r`` is the
    box ``(r, 0, r + 1, 1)``."""
    total = torch.zeros((), dtype=importance.dtype)
    for b in range(importance.shape[0]):
        boxes = [(r, 0, r + 1, 1) for r in range(importance.shape[1]) if human[b, r] > threshold]
        if not boxes:
            continue  # an image without boxes
        total = total + reference_energy(importance[b].unsqueeze(0), boxes)
    return total


def test_same_values_as_the_public_function() -> None:
    generator = torch.Generator().manual_seed(0)
    importance = torch.randn(40, 9, generator=generator, dtype=torch.float64)
    human = torch.rand(40, 9, generator=generator, dtype=torch.float64)
    human[3] = 0.1  # no box
    importance[5] = -importance[5].abs()  # no positive importance: 1 - 0
    importance[6] = 1e-9  # positive importance below 1e-7: 1 - inside
    ours = energy_loss(importance, human)
    for b in range(40):
        boxes = [(r, 0, r + 1, 1) for r in range(9) if human[b, r] > 0.5]
        if not boxes:
            assert torch.isnan(ours[b])
            continue
        expected = reference_energy(importance[b].unsqueeze(0), boxes)
        torch.testing.assert_close(ours[b], expected, rtol=1e-12, atol=1e-15)
    assert ours[5].item() == 1.0
    assert 0.99 < ours[6].item() < 1.0
    batch = energy_loss(importance, human, reduction="sum")
    torch.testing.assert_close(batch, reference_batch(importance, human, 0.5))


def test_hand_worked_cases() -> None:
    importance = torch.tensor([[2.0, -1.0, 1.0, 1.0], [0.0, 3.0, 0.0, 1.0]])
    human = torch.tensor([[0.9, 0.9, 0.1, 0.0], [1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(energy_loss(importance, human), torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(energy_loss(importance, human, reduction="sum"), torch.tensor(0.75))
    torch.testing.assert_close(
        energy_loss(importance, human, reduction="mean"), torch.tensor(0.375)
    )
    # all the positive importance on the box: 0; none of it: 1
    assert energy_loss(torch.tensor([[1.0, -5.0]]), torch.tensor([[1.0, 0.0]])).item() == 0.0
    assert energy_loss(torch.tensor([[0.0, 5.0]]), torch.tensor([[1.0, 0.0]])).item() == 1.0
    # the threshold decides the box
    loose = energy_loss(importance[:1], human[:1], threshold=0.05)
    torch.testing.assert_close(loose, torch.tensor([0.25]))


def test_padded_proposals_never_count() -> None:
    importance = torch.tensor([[1.0, 1.0, 100.0]])
    human = torch.tensor([[1.0, 0.0, 1.0]])
    value = energy_loss(importance, human, proposal_mask=torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(value, torch.tensor([0.5]))


def test_nan_without_box_and_empty_reductions() -> None:
    human = torch.zeros(2, 3)
    assert torch.isnan(energy_loss(torch.ones(2, 3), human)).all()
    assert energy_loss(torch.ones(2, 3), human, reduction="mean").item() == 0.0
    assert energy_loss(torch.ones(2, 3), human, reduction="sum").item() == 0.0


def test_gradients_through_the_importance_with_create_graph() -> None:
    torch.manual_seed(0)
    first = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    second = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    objs = torch.randn(5, 7, 4, dtype=torch.float64, requires_grad=True)
    # a quadratic model: each proposal's importance has the sign of its own activations
    logits = (objs @ first).square().mean(dim=1) @ second
    importance = network_importance(logits[:, 0], objs)
    assert bool((importance > 0).any()) and bool((importance < 0).any())
    human = torch.rand(5, 7, dtype=torch.float64)
    loss = energy_loss(importance, human, reduction="mean")
    grads = torch.autograd.grad(loss, [first, second])
    assert all(bool(grad.abs().sum() > 0) for grad in grads)
    assert torch.autograd.gradcheck(
        lambda fi: energy_loss(fi, human, reduction="sum"), (importance.detach().requires_grad_(),)
    )


def test_no_nan_gradient_when_nothing_is_positive() -> None:
    importance = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    energy_loss(importance, torch.tensor([[1.0, 0.0]])).sum().backward()
    assert importance.grad is not None and torch.isfinite(importance.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"human_importance": torch.zeros(2, 4)}, "must both be"),
        ({"reduction": "max"}, "unknown reduction"),
        ({"proposal_mask": torch.full((2, 3), 0.5)}, "proposal_mask must be bool"),
    ],
)
def test_bad_input_names_the_problem(kwargs: dict, message: str) -> None:
    arguments = {"importance": torch.zeros(2, 3), "human_importance": torch.zeros(2, 3)}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        energy_loss(**arguments)
