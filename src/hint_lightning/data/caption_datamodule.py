"""``COCOCaptionDataModule``: COCO captions (Karpathy or robust split) with visual-word HINT.

Files read (the prepared layout of :mod:`hint_lightning.prepare.coco`, under
``<data_dir>/prepared/``): ``features/<features>.h5`` (read lazily per batch, opened in each
worker), ``coco/<family>/vocab.json``, ``coco/<family>/{train,val,test}.h5`` (caption stores),
``coco/<family>/{val,test}_references.json`` (COCO-format references, for the caption metrics)
and ``coco/importance.h5`` (human importance per (image, category)). Nothing is built here:
without them, :meth:`COCOCaptionDataModule.prepare_data` raises ``FileNotFoundError`` naming
the missing files and ``python -m hint_lightning.prepare coco --data-dir <data_dir>``.

Splits are the family's (``karpathy``: train = train + restval, 5,000 val, 5,000 test images;
``robust``: the Neural Baby Talk robust split), one item per caption. ``hinted_only`` keeps the
training captions with at least one decision (the HINT fine-tuning protocol); val and test
keep every caption.

Decisions: a token of ``word_category`` (the COCO category of the visual word it completes,
0 elsewhere) is a decision when the category has a row for the caption's image in
``importance.h5`` (the category has instances there); its step is the token's position minus
one. ``max_decisions_per_caption`` keeps the first ones of a caption.

Memory: the caption arrays (``C x 18`` int64 tokens plus a few ints per caption: ~200 bytes
a caption, ~115 MB for the 566k Karpathy training captions), the decision arrays (16 bytes
each) and the importance rows that some caption uses (``M`` float32 each: ~50 MB for all
~360k COCO (image, category) rows at ``M = 36``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Final

import numpy as np
import torch

from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.data.caption_dataset import CaptionDataset, CaptionTable
from hint_lightning.data.caption_loading import CaptionDataModuleBase
from hint_lightning.data.prepared import (
    check_prepared_coco,
    coco_prepare_command,
    coco_prepared_files,
)
from hint_lightning.stores.captions import read_caption_store, read_references
from hint_lightning.stores.coco_importance import (
    CATEGORY_KEY,
    importance_rows,
    read_coco_importance,
)
from hint_lightning.stores.feature_batches import BatchFeatureStore
from hint_lightning.stores.layout import COCO_FAMILIES
from hint_lightning.stores.vqa_questions import read_vocabulary

__all__ = [
    "CATEGORY_KEY",
    "COCOCaptionDataModule",
    "check_prepared_coco",
    "coco_prepare_command",
    "coco_prepared_files",
    "importance_rows",
]

SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")


class COCOCaptionDataModule(CaptionDataModuleBase):
    """COCO captions with visual-word decisions and their human importance.

    Args:
        data_dir: root data folder (holds ``prepared/``).
        split_family: ``"karpathy"`` or ``"robust"``.
        features: feature store name (``prepared/features/<features>.h5``).
        batch_size: global training batch size in captions (divided by the world size).
        eval_batch_size: global evaluation batch size in captions.
        num_workers: DataLoader worker processes (each opens the feature store lazily).
        pin_memory: passed to the DataLoaders.
        shuffle: shuffle the training captions every epoch.
        hinted_only: train only on captions with at least one decision (HINT fine-tuning).
        max_decisions_per_caption: keep the first this many decisions of each caption (None:
            all).

    Raises:
        ValueError: on an unknown split family or bad sizes.
    """

    def __init__(
        self,
        data_dir: str = "data",
        split_family: str = "karpathy",
        features: str = "trainval_36",
        batch_size: int = 100,
        eval_batch_size: int = 500,
        num_workers: int = 4,
        pin_memory: bool = False,
        shuffle: bool = True,
        hinted_only: bool = False,
        max_decisions_per_caption: int | None = None,
    ) -> None:
        super().__init__()
        if split_family not in COCO_FAMILIES:
            raise ValueError(
                f"split_family must be one of {list(COCO_FAMILIES)}, got {split_family!r}"
            )
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.split_family = split_family
        self.features = features
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.shuffle = shuffle
        self.hinted_only = hinted_only
        self.max_decisions_per_caption = max_decisions_per_caption
        self.info: CaptionDataInfo | None = None
        self._datasets: dict[str, CaptionDataset] = {}
        self._device_batch_size = batch_size
        self._device_eval_batch_size = eval_batch_size

    @property
    def files(self) -> dict[str, Path]:
        """The prepared files, by role (:func:`coco_prepared_files`)."""
        return coco_prepared_files(self.data_dir, self.split_family, self.features)

    def prepare_data(self) -> None:
        """Checks that the prepared files exist.

        Raises:
            FileNotFoundError: naming every missing file and the prepare command.
        """
        check_prepared_coco(self.data_dir, self.split_family, self.features)

    def setup(self, stage: str | None = None) -> None:
        """Reads the caption stores and the importance rows they use; builds every split.

        Raises:
            FileNotFoundError: when prepared files are missing.
            ValueError: when the stores do not match each other (format, feature store, image
                ids, proposal counts) or the training split is empty.
        """
        self._set_batch_sizes()
        if self._datasets:
            return
        self.prepare_data()
        files = self.files
        vocab = read_vocabulary(files["vocab"])
        store = BatchFeatureStore(files["features"])
        keys, importance = read_coco_importance(files["importance"], store.max_boxes)
        tables = {split: self._table(files[split], store, keys, len(vocab)) for split in SPLITS}
        used = np.unique(np.concatenate([t.decision_importance_row for t in tables.values()]))
        remap = np.full(len(keys), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        tables = {
            split: replace(t, decision_importance_row=remap[t.decision_importance_row])
            for split, t in tables.items()
        }
        importance_used = torch.from_numpy(np.ascontiguousarray(importance[used]))
        if self.hinted_only:
            tables["train"] = tables["train"].subset(tables["train"].hinted())
        if len(tables["train"]) == 0:
            raise ValueError(
                f"the training split of {files['train']} is empty"
                + (" after hinted_only" if self.hinted_only else "")
            )
        self._datasets = {
            split: CaptionDataset(table, store, importance_used) for split, table in tables.items()
        }
        self.info = CaptionDataInfo(
            vocab=vocab,
            feature_dim=store.feature_dim,
            max_proposals=store.max_boxes,
            name=f"coco_{self.split_family}",
        )

    def _table(
        self, path: Path, store: BatchFeatureStore, keys: np.ndarray, vocab_size: int
    ) -> CaptionTable:
        """The caption table of one caption store."""
        arrays = read_caption_store(path, self.features, vocab_size)
        image_ids, captions = arrays["image_ids"], arrays["captions"]
        caption_image, category = arrays["caption_image"], arrays["word_category"]
        image_rows = store.rows_of(image_ids)
        if np.any(image_rows < 0):
            missing = int(image_ids[np.argmax(image_rows < 0)])
            raise ValueError(f"image {missing} of {path} is not in the feature store {store.path}")
        caption, position = np.nonzero(category)
        token_rows = np.full(captions.shape, -1, dtype=np.int64)
        token_rows[caption, position] = importance_rows(
            keys, image_ids[caption_image[caption]], category[caption, position]
        )
        return CaptionTable.build(
            captions,
            image_rows[caption_image],
            image_ids[caption_image],
            token_rows,
            self.max_decisions_per_caption,
        )

    def references(self, split: str) -> dict[int, list[str]]:
        """Image id -> raw reference captions of ``split`` (``val`` or ``test``).

        Raises:
            ValueError: for the train split (no references are prepared for it).
        """
        if split not in ("val", "test"):
            raise ValueError(f"references exist for val and test, not {split!r}")
        return read_references(self.files[f"{split}_references"])
