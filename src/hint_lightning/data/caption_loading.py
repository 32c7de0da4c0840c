"""What the caption DataModules share on top of :class:`VQADataModuleBase`: caption datasets
per split and the caption collate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from hint_lightning.data.caption_collate import collate_captions
from hint_lightning.data.caption_dataset import CaptionDataset
from hint_lightning.data.loading import VQADataModuleBase


class CaptionDataModuleBase(VQADataModuleBase):
    """Loaders over ``self._datasets`` (split -> :class:`CaptionDataset`, set in ``setup``)."""

    _datasets: dict[str, CaptionDataset]

    def _split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (train, val or test)."""
        if not self._datasets:
            raise RuntimeError("call prepare_data() and setup() first")
        return self._datasets[split]

    def _collate_fn(self) -> Callable[[Any], dict[str, Any]]:
        """Caption items or finished batches -> the caption batch."""
        return collate_captions

    def dataset(self, split: str) -> CaptionDataset:
        """The :class:`CaptionDataset` of ``split``; requires :meth:`setup`."""
        return self._split_dataset(split)  # type: ignore[return-value]
