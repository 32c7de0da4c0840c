"""``EasyVQACPDataModule``: easy-VQA re-split VQA-CP style, with human importance, in memory.

Splits (all fixed by ``split_seed``, independent of the training seed):

* **CP-train / CP-test**: the VQA-CP re-split of all 48,248 questions stored by
  :mod:`hint_lightning.stores.easyvqa` (soft CP, ``leak`` 0.1 by default).
* **val**: a random ``val_fraction`` of CP-train (model selection never looks at CP-test); it
  follows the CP-train distribution, so val accuracy is the in-distribution number.
* **train**: CP-train minus val, or, with ``hinted_only``, only the hinted questions (the HINT
  fine-tuning protocol).
* **hinted**: a random ``hinted_fraction`` of train (after removing val). Only these train
  questions carry human importance (``has_importance`` True), mimicking VQA-HAT, which covers a
  small part of VQA. Every val and CP-test question carries human importance, so the
  grounding metrics (rank correlation with human importance) are computed on all of them.

``importance_source`` sets what the hinted *train* questions carry as "human" importance (the
controls of the 2020 follow-up):

* ``"human"``: the importance from the blurred shape mask;
* ``"random"``: fixed U(0, 1) values per (question, proposal), drawn once from
  ``numpy.random.default_rng((seed, 1))`` for all questions of the store in store order;
* ``"one_minus"``: ``1 - human`` importance.

Val and CP-test always carry the real human importance, since the grounding metrics measure
agreement with humans.

The whole store is loaded into memory tensors in ``setup`` (checked: ranges, finite values,
checksums) and datasets build each batch with a few index operations (``__getitems__``); the
loader's speed is in ``make bench``. The real VQA DataModule reads its features lazily from
HDF5 instead.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.data.easyvqa_dataset import (
    EasyVQACPDataset,
    EasyVQACPTensors,
    carve_val_and_hinted,
)
from hint_lightning.data.loading import VQADataModuleBase
from hint_lightning.prepare.easyvqa import ensure_store
from hint_lightning.prepare.easyvqa_patches import ensure_patch_store
from hint_lightning.prepare.patch_importance import patch_boxes
from hint_lightning.stores.easyvqa import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    EasyVQACPArrays,
    EasyVQACPParams,
    answer_type_counts,
    load_store,
)
from hint_lightning.stores.easyvqa_patches import (
    EasyVQACPPatches,
    load_patch_store,
    patch_pixels,
    patch_store_name,
)
from hint_lightning.stores.errors import StoreError

__all__ = [
    "IMPORTANCE_SOURCES",
    "SPLITS",
    "EasyVQACPDataModule",
    "EasyVQACPDataset",
    "EasyVQACPTensors",
    "carve_val_and_hinted",
]

IMPORTANCE_SOURCES: Final[tuple[str, ...]] = ("human", "random", "one_minus")
"""Accepted values of ``importance_source``."""
PROPOSAL_KINDS: Final[tuple[str, ...]] = ("regions", "patches")
"""Accepted values of ``proposals``."""
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test", "hinted")
"""Accepted split names of :meth:`EasyVQACPDataModule.question_ids`."""


class EasyVQACPDataModule(VQADataModuleBase):
    """easy-VQA-CP: a VQA-CP re-split of easy-VQA with shape-mask human importance.

    See the module docstring for the splits and the importance controls, and
    :mod:`hint_lightning.stores.easyvqa` for the processed store.

    Args:
        data_dir: Root data folder.
        batch_size: Global training batch size (divided by ``trainer.world_size``; must be
            divisible by it).
        eval_batch_size: Global evaluation batch size (divided by the world size, rounded up).
        num_workers: DataLoader worker processes (0 is fastest here: batches are index ops).
        split_seed: Seed of the CP split, the val split and the hinted subset.
        test_fraction: Target share of CP-test questions.
        leak: Share of each CP-test (template, answer) group leaked back to CP-train.
        val_fraction: Share of CP-train held out as val.
        hinted_fraction: Share of train (CP-train minus val) with human importance.
        hinted_only: Train only on the hinted questions (HINT fine-tuning).
        importance_source: ``"human"``, ``"random"`` or ``"one_minus"`` (train only).
        num_proposals: N, proposals per image (>= 16).
        blur_sigma: Gaussian blur of the shape masks (pixels).
        seed: Seed of the proposals and of the random importance.
        max_question_length: T, tokens per question.
        limit_train_questions: Keep only this many train questions (a seeded random subset),
            for quick runs; None keeps all.
        cache_dir: Folder of the processed stores; default ``<data_dir>/easyvqa_cp``.
        pin_memory: Passed to the DataLoaders.
        shuffle: Shuffle the training split every epoch (False keeps store order).
        proposals: ``"regions"`` (the N box proposals and their 123-d features) or
            ``"patches"`` (a ViT's patch grid: features are the raw pixels of each patch,
            ``[P, patch_size**2 * 3]`` in [-1, 1], human importance per patch from the
            patch store, :mod:`hint_lightning.stores.easyvqa_patches`).
        patch_size: Pixels per patch side with ``proposals="patches"`` (must divide 64).

    Raises:
        ValueError: On an unknown ``importance_source`` or out-of-range parameters.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 256,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        split_seed: int = 0,
        test_fraction: float = 1 / 3,
        leak: float = 0.1,
        val_fraction: float = 0.1,
        hinted_fraction: float = 0.1,
        hinted_only: bool = False,
        importance_source: str = "human",
        num_proposals: int = 24,
        blur_sigma: float = 3.0,
        seed: int = 0,
        max_question_length: int = 14,
        limit_train_questions: int | None = None,
        cache_dir: str | None = None,
        pin_memory: bool = False,
        shuffle: bool = True,
        proposals: str = "regions",
        patch_size: int = 8,
    ) -> None:
        super().__init__()
        if proposals not in PROPOSAL_KINDS:
            raise ValueError(f"data.proposals must be one of {PROPOSAL_KINDS}, got {proposals!r}")
        if importance_source not in IMPORTANCE_SOURCES:
            raise ValueError(
                f"importance_source must be one of {IMPORTANCE_SOURCES}, got {importance_source!r}"
            )
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        if limit_train_questions is not None and limit_train_questions < 1:
            raise ValueError(f"limit_train_questions must be >= 1, got {limit_train_questions}")
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.cache_dir = Path(cache_dir) if cache_dir else Path(data_dir) / "easyvqa_cp"
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.shuffle = shuffle
        self.split_seed = split_seed
        self.val_fraction = val_fraction
        self.hinted_fraction = hinted_fraction
        self.hinted_only = hinted_only
        self.importance_source = importance_source
        self.seed = seed
        self.limit_train_questions = limit_train_questions
        self.proposals = proposals
        self.patch_size = patch_size
        self.patches: EasyVQACPPatches | None = None
        self.params = EasyVQACPParams(
            split_seed=split_seed,
            test_fraction=test_fraction,
            leak=leak,
            seed=seed,
            num_proposals=num_proposals,
            blur_sigma=blur_sigma,
            max_question_length=max_question_length,
        )
        self.info: VQADataInfo | None = None
        self._arrays: EasyVQACPArrays | None = None
        self._rows: dict[str, np.ndarray] = {}
        self._datasets: dict[str, EasyVQACPDataset] = {}
        self._device_batch_size = batch_size
        self._device_eval_batch_size = eval_batch_size

    @property
    def store_path(self) -> Path:
        """Where the processed store for these parameters lives."""
        return self.cache_dir / self.params.filename()

    def prepare_data(self) -> None:
        """Builds the processed store if it is missing (prints the split report then)."""
        ensure_store(self.cache_dir, self.params)
        if self.proposals == "patches":
            ensure_patch_store(self.cache_dir, self.params, self.patch_size)

    def setup(self, stage: str | None = None) -> None:
        """Loads the store into memory and builds the datasets of every split.

        Args:
            stage: Lightning stage (all splits are built whatever the stage).

        Raises:
            FileNotFoundError: If the store does not exist (call ``prepare_data()`` first).
        """
        self._set_batch_sizes()
        if self._arrays is not None:
            return
        if not self.store_path.is_file():
            raise FileNotFoundError(
                f"no easy-VQA-CP store at {self.store_path}: call prepare_data() first"
            )
        arrays = load_store(self.store_path)
        if self.proposals == "patches":
            arrays = self._with_patches(arrays)
        self._arrays = arrays
        tensors = EasyVQACPTensors.from_arrays(arrays)

        cp_train = np.flatnonzero(arrays.split == SPLIT_TRAIN)
        test = np.flatnonzero(arrays.split == SPLIT_TEST)
        train, val, hinted = carve_val_and_hinted(
            cp_train, self.val_fraction, self.hinted_fraction, self.split_seed
        )
        if self.hinted_only:
            train = hinted
        if self.limit_train_questions is not None and self.limit_train_questions < len(train):
            rng = np.random.default_rng((self.split_seed, 2))
            train = np.sort(rng.permutation(train)[: self.limit_train_questions])
        self._rows = {"train": train, "val": val, "test": test, "hinted": hinted}

        human = tensors.human_importance
        train_table, train_index = self._train_importance(tensors, train)
        self._datasets = {
            "train": EasyVQACPDataset(
                tensors, train, np.isin(train, hinted), train_table, train_index
            ),
            "val": EasyVQACPDataset(
                tensors, val, np.ones(len(val), bool), human, arrays.image_index[val]
            ),
            "test": EasyVQACPDataset(
                tensors, test, np.ones(len(test), bool), human, arrays.image_index[test]
            ),
        }
        self.info = VQADataInfo(
            answers=arrays.answers,
            tokens=arrays.tokens_vocab,
            feature_dim=int(arrays.features.shape[-1]),
            max_proposals=int(arrays.features.shape[1]),
            name="easyvqa_cp",
        )

    def _with_patches(self, arrays: EasyVQACPArrays) -> EasyVQACPArrays:
        """The store's arrays with the patch grid as proposals (``proposals="patches"``)."""
        path = self.cache_dir / patch_store_name(self.params, self.patch_size)
        if not path.is_file():
            raise FileNotFoundError(f"no easy-VQA-CP patch store at {path}: call prepare_data()")
        patches = load_patch_store(path)
        if not np.array_equal(patches.image_id, arrays.image_id):
            raise StoreError(path, "its images differ from the easy-VQA-CP store's")
        self.patches = patches
        height, width = patches.pixels.shape[1:3]
        boxes = patch_boxes((height, width), patches.grid) / np.array([width, height] * 2)
        count = len(patches.image_id)
        return replace(
            arrays,
            features=patch_pixels(patches.pixels, self.patch_size),
            boxes=np.ascontiguousarray(
                np.broadcast_to(boxes.astype(np.float32), (count, *boxes.shape))
            ),
            human_importance=patches.patch_importance,
        )

    def _train_importance(
        self, tensors: EasyVQACPTensors, train: np.ndarray
    ) -> tuple[Tensor, np.ndarray]:
        """The importance table and per-question index of the train split.

        Args:
            tensors: The loaded store.
            train: Int64 array of shape [M], train question rows.

        Returns:
            ``(table [K, N], index [M])`` for :class:`EasyVQACPDataset`.
        """
        assert self._arrays is not None
        image_index = self._arrays.image_index[train]
        if self.importance_source == "human":
            return tensors.human_importance, image_index
        if self.importance_source == "one_minus":
            return 1.0 - tensors.human_importance, image_index
        num_questions = self._arrays.num_questions
        num_proposals = tensors.human_importance.shape[1]
        rng = np.random.default_rng((self.seed, 1))
        table = rng.random((num_questions, num_proposals), dtype=np.float32)
        return torch.from_numpy(table), train

    def _dataset(self, split: str) -> EasyVQACPDataset:
        """The dataset of ``split``; requires :meth:`setup`."""
        if not self._datasets:
            raise RuntimeError("call prepare_data() and setup() first")
        return self._datasets[split]

    def _split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (train, val or test); loaders come from the base class."""
        return self._dataset(split)

    def _split_rows(self, split: str) -> np.ndarray:
        """Question rows of ``split`` (one of :data:`SPLITS`); requires :meth:`setup`."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not self._rows:
            raise RuntimeError("call prepare_data() and setup() first")
        return self._rows[split]

    def question_ids(self, split: str) -> np.ndarray:
        """The question ids of a split, in the order of its (unshuffled) dataset.

        Args:
            split: ``"train"`` (exactly what the train loader iterates), ``"val"``,
                ``"test"`` or ``"hinted"``.

        Returns:
            Int64 array of shape [M].
        """
        rows = self._split_rows(split)
        assert self._arrays is not None
        return self._arrays.question_id[rows]

    def question_metadata(self, split: str) -> dict[str, np.ndarray]:
        """Per-question metadata of a split, for results files and per-template reports.

        Args:
            split: As for :meth:`question_ids`.

        Returns:
            Arrays of shape [M]: ``question_id``, ``image_id``, ``question``, ``template``,
            ``question_type`` and ``answer`` (strings as object arrays).
        """
        rows = self._split_rows(split)
        arrays = self._arrays
        assert arrays is not None
        return {
            "question_id": arrays.question_id[rows],
            "image_id": arrays.image_id[arrays.image_index[rows]],
            "question": arrays.question[rows],
            "template": np.asarray(arrays.templates, dtype=object)[arrays.template[rows]],
            "question_type": arrays.question_type[rows],
            "answer": np.asarray(arrays.answers, dtype=object)[arrays.answer[rows]],
        }

    @property
    def answers(self) -> tuple[str, ...]:
        """The answer vocabulary (class ``a`` is ``answers[a]``); requires :meth:`setup`."""
        if self.info is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self.info.answers

    @property
    def split_stats(self) -> dict[str, Any]:
        """The CP split statistics of the store, plus the sizes of this module's subsets.

        Returns:
            ``CPSplit.stats`` (see :func:`hint_lightning.prepare.cp_split.make_cp_split`) with an
            extra ``"subsets"`` entry: question counts of train/val/test/hinted, their answer
            types, and the fractions and importance source in use.
        """
        arrays = self._arrays
        if arrays is None:
            raise RuntimeError("call prepare_data() and setup() first")
        subsets = {f"n_{name}": len(rows) for name, rows in self._rows.items()} | {
            "answer_types": {
                name: answer_type_counts(arrays, rows) for name, rows in self._rows.items()
            },
            "val_fraction": self.val_fraction,
            "hinted_fraction": self.hinted_fraction,
            "hinted_only": self.hinted_only,
            "importance_source": self.importance_source,
        }
        return {**arrays.split_stats, "subsets": subsets}
