"""Means of per-question values, exact under DDP: the state of every metric family.

A family (plausibility, faithfulness, FPVG) computes one value per question and per metric
name (NaN where the metric is undefined for that question, e.g. no human importance); this
:class:`~torchmetrics.Metric` keeps, per name, the sum of the defined values and their count.
Sums and counts add up across processes (``dist_reduce_fx="sum"``), so the mean under DDP is
the mean over every question exactly once, provided each question is evaluated by exactly one
process (the package's evaluation sampler does not pad; Lightning's ``DistributedSampler``
would repeat questions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["QuestionMeans", "fraction_name"]


def fraction_name(prefix: str, fraction: float) -> str:
    """The metric name of a fraction of proposals, in percent: ``("sufficiency", 0.1)`` ->
    ``"sufficiency_10"`` (``0.125`` -> ``"_12p5"``).

    Example:
        >>> fraction_name("iou", 0.25), fraction_name("morf", 0.125)
        ('iou_25', 'morf_12p5')
    """
    percent = round(100.0 * float(fraction), 6)
    text = f"{percent:g}".replace(".", "p")
    return f"{prefix}_{text}"


class QuestionMeans(Metric):
    """Per-name mean of per-question values, NaN values skipped, each question counted once.

    Args:
        names: the metric names (valid Python identifiers).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> means = QuestionMeans(["hit"])
        >>> means.update({"hit": torch.tensor([1.0, 0.0, float("nan")])})
        >>> means.update({"hit": torch.tensor([1.0, 1.0])}, include=torch.tensor([True, False]))
        >>> means.compute()["hit"], means.counts()["hit"]
        (tensor(0.6667, dtype=torch.float64), 3)
    """

    is_differentiable: bool = False
    full_state_update: bool = False

    def __init__(self, names: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names: tuple[str, ...] = tuple(names)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate metric names in {list(self.names)}")
        for name in self.names:
            if not name.isidentifier():
                raise ValueError(f"metric name {name!r} is not a Python identifier")
            default = torch.tensor(0.0, dtype=torch.float64)
            self.add_state(f"{name}_sum", default=default, dist_reduce_fx="sum")
            self.add_state(f"{name}_count", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("questions", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, values: Mapping[str, Tensor], include: Tensor | None = None) -> None:
        """Add a batch of per-question values.

        Args:
            values: name -> ``[B]`` values (NaN: undefined for that question, skipped); every
                name of the metric must be present, and no other.
            include: ``[B]`` bool, the questions to count (None: all).
        """
        missing = sorted(set(self.names) - set(values))
        extra = sorted(set(values) - set(self.names))
        if missing or extra:
            raise ValueError(f"values must have exactly {list(self.names)}; missing "
                             f"{missing}, unexpected {extra}")  # fmt: skip
        batch = None
        for name in self.names:
            value = values[name].detach()
            if value.ndim != 1 or (batch is not None and value.shape[0] != batch):
                raise ValueError(f"value {name!r} must be [B], got {tuple(value.shape)}")
            batch = value.shape[0]
            defined = ~torch.isnan(value)
            if include is not None:
                defined &= include.bool()
            total = torch.where(defined, value, 0.0).sum().to(torch.float64)
            setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + total)
            setattr(self, f"{name}_count", getattr(self, f"{name}_count") + defined.sum())
        self.questions += (batch or 0) if include is None else include.bool().sum()

    def compute(self) -> dict[str, Tensor]:
        """Name -> mean over the questions where the value was defined (NaN if none)."""
        return {
            name: getattr(self, f"{name}_sum") / getattr(self, f"{name}_count")
            for name in self.names
        }

    def counts(self) -> dict[str, int]:
        """Name -> the number of questions whose value was defined (over all processes)."""
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn,
            process_group=self.process_group,
            should_sync=self._to_sync and not self._is_synced,
            should_unsync=self._should_unsync,
        ):
            return {name: int(getattr(self, f"{name}_count")) for name in self.names}

    def results(self, prefix: str = "") -> dict[str, float]:
        """:meth:`compute` as plain floats, keys prefixed (e.g. ``"test/"``)."""
        return {f"{prefix}{name}": float(value) for name, value in self.compute().items()}
