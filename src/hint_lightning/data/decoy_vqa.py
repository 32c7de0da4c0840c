"""``DecoyVQADataModule``: easy-VQA with a visual shortcut (a decoy whose colour codes the shape).

The store (:mod:`hint_lightning.stores.decoy_vqa`, built by :mod:`hint_lightning.prepare.
decoy_vqa`) holds every split; this module serves them:

* ``train``: decoy coded with reliability ``decoy.p`` (none with ``train_decoy=false``, the
  decoy-free reference); a ``hinted_fraction`` of its questions carry human importance.
* ``val`` -> ``val_split`` (default ``val_random``: the val images with a *random* decoy colour,
  so selecting on it does not reward the shortcut; ``val`` itself is decoy-coded).
* ``test`` -> ``test_flipped``; all of ``test_clean``, ``test_random`` and ``test_flipped``
  (:attr:`DecoyVQADataModule.test_splits`) are evaluated by ``train``/``evaluate``, each logged
  under its own prefix (``test_flipped/acc``).

Batches carry two extra keys for the decoy metrics (:mod:`hint_lightning.modules.decoy_metrics`):
:data:`DECOY_PROPOSALS` ``[B, N]`` bool (proposals covering the decoy; all False on images
without a decoy) and :data:`SHAPE_QUESTION` ``[B]`` bool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.data.easyvqa_dataset import EasyVQACPDataset, EasyVQACPTensors
from hint_lightning.data.loading import VQADataModuleBase
from hint_lightning.data.patches import patch_images
from hint_lightning.prepare.decoy_vqa import ensure_store
from hint_lightning.prepare.decoy_vqa_patches import ensure_decoy_patch_store
from hint_lightning.stores.decoy_vqa import SPLITS, DecoyVQAArrays, DecoyVQAParams, load_store

__all__ = ["DECOY_PROPOSALS", "SHAPE_QUESTION", "DecoyVQADataModule", "DecoyVQADataset"]

DECOY_PROPOSALS: Final = "decoy_proposals"
"""Batch key: ``[B, N]`` bool, the proposals covering the decoy."""
SHAPE_QUESTION: Final = "shape_question"
"""Batch key: ``[B]`` bool, the answer depends on the shape."""
IMPORTANCE_SOURCES: Final[tuple[str, ...]] = ("human", "random", "one_minus")
TEST_SPLITS: Final[tuple[str, ...]] = ("test_clean", "test_random", "test_flipped")
_DECOY_KEYS: Final = frozenset({"p", "form", "size", "margin", "box"})


class DecoyVQADataset(EasyVQACPDataset):
    """:class:`EasyVQACPDataset` plus the decoy keys (:data:`DECOY_PROPOSALS`,
    :data:`SHAPE_QUESTION`).

    Args:
        decoy_proposals: ``[I, N]`` bool per image row (all False without a decoy).
        shape_question: ``[Q]`` bool per question row.
        *args: As :class:`EasyVQACPDataset`.
    """

    def __init__(self, decoy_proposals: Tensor, shape_question: Tensor, *args: Any) -> None:
        super().__init__(*args)
        self.decoy_proposals = decoy_proposals
        self.shape_question = shape_question

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        row = int(self.rows[index])
        item[DECOY_PROPOSALS] = self.decoy_proposals[int(self.tensors.image_index[row])]
        item[SHAPE_QUESTION] = bool(self.shape_question[row])
        return item

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        batch = super().__getitems__(indices)
        rows = self.rows[torch.as_tensor(indices, dtype=torch.int64)]
        batch[DECOY_PROPOSALS] = self.decoy_proposals[self.tensors.image_index[rows]]
        batch[SHAPE_QUESTION] = self.shape_question[rows]
        return batch


class DecoyVQADataModule(VQADataModuleBase):
    """decoy_vqa: see the module docstring.

    Args:
        data_dir: Root data folder (stores go to ``<data_dir>/decoy_vqa`` unless ``cache_dir``).
        batch_size: Global training batch size.
        eval_batch_size: Global evaluation batch size.
        num_workers: DataLoader workers (0 is fastest: batches are index operations).
        decoy: ``{p, form, size, margin, box}``: the code's reliability in train/val (0.95),
            what codes the shape (``color``; nothing else is implemented), the square's side
            (6 px), its distance to the edge (2 px), one proposal exactly on it (True).
        train_decoy: False: the decoy-free reference (no decoy in train/val; tests unchanged).
        val_split: The split validation (model selection) reads: ``val_random`` (default) or
            ``val`` (decoy-coded: rewards the shortcut).
        val_fraction: Share of the package's train images held out for val.
        hinted_fraction: Share of train questions with human importance.
        hinted_only: Train only on the hinted questions (HINT fine-tuning).
        importance_source: ``human``, ``random`` or ``one_minus`` (train only).
        num_proposals: Proposals per image before the decoy box.
        blur_sigma: Blur of the shape masks (pixels).
        seed: Seed of the store (val images, proposals, corners, colours) and of the hinted
            subset and random importance.
        max_question_length: T.
        max_images: Build from the first this many package train and test images (tests).
        limit_train_questions: Keep a seeded random subset of this many train questions.
        cache_dir: Folder of the stores.
        pin_memory: Passed to the DataLoaders.
        shuffle: Shuffle the training split every epoch.
        proposals: ``regions`` (the box proposals) or ``patches`` (a ViT's patch grid: raw
            pixels per patch, human importance per patch from
            :mod:`hint_lightning.prepare.decoy_vqa_patches`; the decoy patches are those the
            decoy overlaps).
        patch_size: Pixels per patch side with ``proposals=patches``.
    """

    test_split: str = "test"

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        decoy: Mapping[str, Any] | None = None,
        train_decoy: bool = True,
        val_split: str = "val_random",
        val_fraction: float = 0.1,
        hinted_fraction: float = 0.1,
        hinted_only: bool = False,
        importance_source: str = "human",
        num_proposals: int = 24,
        blur_sigma: float = 3.0,
        seed: int = 0,
        max_question_length: int = 14,
        max_images: int | None = None,
        limit_train_questions: int | None = None,
        cache_dir: str | None = None,
        pin_memory: bool = False,
        shuffle: bool = True,
        proposals: str = "regions",
        patch_size: int = 8,
    ) -> None:
        super().__init__()
        if proposals not in ("regions", "patches"):
            raise ValueError(f"data.proposals must be 'regions' or 'patches', got {proposals!r}")
        self.proposals, self.patch_size = proposals, patch_size
        decoy = dict(decoy or {})
        unknown = sorted(set(decoy) - _DECOY_KEYS)
        if unknown:
            raise ValueError(
                f"data.decoy has unknown option(s) {unknown}: expected {sorted(_DECOY_KEYS)}"
            )
        if importance_source not in IMPORTANCE_SOURCES:
            raise ValueError(
                f"data.importance_source must be one of {IMPORTANCE_SOURCES}, "
                f"got {importance_source!r}"
            )
        if val_split not in ("val", "val_random"):
            raise ValueError(f"data.val_split must be 'val' or 'val_random', got {val_split!r}")
        if not 0.0 <= hinted_fraction <= 1.0:
            raise ValueError(f"data.hinted_fraction must be in [0, 1], got {hinted_fraction}")
        self.save_hyperparameters()
        self.params = DecoyVQAParams(
            **decoy,
            train_decoy=train_decoy,
            val_fraction=val_fraction,
            seed=seed,
            num_proposals=num_proposals,
            blur_sigma=blur_sigma,
            max_question_length=max_question_length,
            max_images=max_images,
        )
        self.data_dir = data_dir
        self.cache_dir = Path(cache_dir) if cache_dir else Path(data_dir) / "decoy_vqa"
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.pin_memory, self.shuffle = num_workers, pin_memory, shuffle
        self.val_split = val_split
        self.hinted_fraction, self.hinted_only = hinted_fraction, hinted_only
        self.importance_source = importance_source
        self.seed = seed
        self.limit_train_questions = limit_train_questions
        self.test_splits: tuple[str, ...] = TEST_SPLITS
        self.info: VQADataInfo | None = None
        self.arrays: DecoyVQAArrays | None = None
        self._rows: dict[str, np.ndarray] = {}
        self._datasets: dict[str, DecoyVQADataset] = {}

    @property
    def store_path(self) -> Path:
        """Where the store for these parameters lives."""
        return self.cache_dir / self.params.filename()

    def prepare_data(self) -> None:
        """Builds the store if it is missing."""
        ensure_store(self.cache_dir, self.params)
        if self.proposals == "patches":
            arrays = load_store(self.store_path)
            ensure_decoy_patch_store(self.cache_dir, self.params, arrays, self.patch_size)

    def setup(self, stage: str | None = None) -> None:
        """Loads the store and builds the dataset of every split."""
        self._set_batch_sizes()
        if self.arrays is not None:
            return
        if not self.store_path.is_file():
            raise FileNotFoundError(
                f"no decoy_vqa store at {self.store_path}: call prepare_data() first"
            )
        arrays = self.arrays = load_store(self.store_path)
        images, questions = arrays.images, arrays.questions
        if self.proposals == "patches":
            images = patch_images(self.cache_dir, self.params, images, self.patch_size)
        tensors = EasyVQACPTensors(
            features=torch.from_numpy(images["features"]),
            boxes=torch.from_numpy(images["boxes"]),
            human_importance=torch.from_numpy(images["human_importance"]),
            image_index=torch.from_numpy(questions["image_index"]),
            tokens=torch.from_numpy(questions["tokens"]),
            answer=torch.from_numpy(questions["answer"]),
            answer_type=torch.from_numpy(questions["answer_type"]),
            question_id=torch.from_numpy(questions["question_id"]),
            num_answers=len(arrays.answers),
        )
        with_decoy = images["decoy_color"] >= 0
        decoy = torch.from_numpy(images["decoy_proposals"] & with_decoy[:, None])
        shape = torch.from_numpy(questions["shape_question"])
        rows = {split: arrays.split_rows(split) for split in SPLITS}
        rng = np.random.default_rng((self.seed, 3))
        train = rows["train"]
        num_hinted = int(np.floor(self.hinted_fraction * len(train) + 0.5))
        hinted = np.sort(rng.permutation(train)[:num_hinted])
        if self.hinted_only:
            train = hinted
        if self.limit_train_questions is not None and self.limit_train_questions < len(train):
            train = np.sort(rng.permutation(train)[: self.limit_train_questions])
        rows["train"], rows["hinted"] = train, hinted
        self._rows = rows
        table, index = self._train_importance(tensors, train)
        self._datasets = {
            "train": DecoyVQADataset(
                decoy, shape, tensors, train, np.isin(train, hinted), table, index
            )
        }
        for split in SPLITS[1:]:
            split_rows = rows[split]
            self._datasets[split] = DecoyVQADataset(
                decoy,
                shape,
                tensors,
                split_rows,
                np.ones(len(split_rows), bool),
                tensors.human_importance,
                questions["image_index"][split_rows],
            )
        self.info = VQADataInfo(
            answers=arrays.answers,
            tokens=arrays.tokens_vocab,
            feature_dim=int(images["features"].shape[-1]),
            max_proposals=int(images["features"].shape[1]),
            name="decoy_vqa",
        )

    def _train_importance(
        self, tensors: EasyVQACPTensors, train: np.ndarray
    ) -> tuple[Tensor, np.ndarray]:
        """The train importance table and index (as :class:`EasyVQACPDataModule`)."""
        assert self.arrays is not None
        image_index = self.arrays.questions["image_index"][train]
        if self.importance_source == "human":
            return tensors.human_importance, image_index
        if self.importance_source == "one_minus":
            return 1.0 - tensors.human_importance, image_index
        count = len(self.arrays.questions["question_id"])
        rng = np.random.default_rng((self.seed, 1))
        table = rng.random((count, tensors.human_importance.shape[1]), dtype=np.float32)
        return torch.from_numpy(table), train

    def _resolve(self, split: str) -> str:
        """``val`` -> ``val_split``, ``test`` -> ``test_flipped``; a named split stays."""
        if split == "val":
            return self.val_split
        if split == "test":
            return "test_flipped"
        if split not in SPLITS and split != "hinted":
            raise ValueError(f"split must be one of {(*SPLITS, 'test', 'hinted')}, got {split!r}")
        return split

    def _split_dataset(self, split: str) -> Dataset:
        if not self._datasets:
            raise RuntimeError("call prepare_data() and setup() first")
        return self._datasets[self._resolve(split)]

    def question_ids(self, split: str) -> np.ndarray:
        """Question ids of a split, in the order of its (unshuffled) dataset."""
        if not self._rows:
            raise RuntimeError("call prepare_data() and setup() first")
        assert self.arrays is not None
        return self.arrays.questions["question_id"][self._rows[self._resolve(split)]]

    @property
    def answers(self) -> tuple[str, ...]:
        """The answer vocabulary; requires :meth:`setup`."""
        if self.info is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self.info.answers
